"""Statistics panels in headless Chromium: layer switch, one slider step, a scrub of 1,000 steps.

Run: `/work/main/.venv/bin/python benchmarks/bench_panels.py` (needs node_modules and Debian's
chromium; never `playwright install`). Bundles js/tests/bench/panels-page.ts (every panel of
js/src/panels over a fake source of 200 layers x 1,000 steps, wired as the widget wires them,
plus 200 boxes recoloured per step as the structure overlay would be) into a temporary folder,
serves it on 127.0.0.1 and prints medians. Targets (issue 5): switching to a not-yet-cached
layer <= 50 ms after its data arrive, a cached one <= 16 ms; one slider step redraws the panels
and recolours <= 16 ms; scrubbing across all 1,000 steps drops no input.

Each update runs at the start of an animation frame. "sync" is its script plus forced style and
layout; "next frame" is the interval to the next frame's start: one vsync interval (~16.7 ms at
60 Hz) when the update, paint included, fitted in its frame, a multiple of it when frames were
dropped.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BUILD = """
import * as esbuild from "esbuild";
await esbuild.build({
  entryPoints: { bench: "js/tests/bench/panels-page.ts", style: "js/src/style.css" },
  outdir: process.argv[1], bundle: true, format: "esm", target: "es2020", minify: true,
  logLevel: "warning",
});
"""
PAGE = """<!doctype html><meta charset="utf-8"><link rel="stylesheet" href="style.css">
<style>body{margin:0} #host{width:1200px} .box{display:inline-block;font-size:9px;padding:2px;
margin:1px}</style><div id="host"></div><script type="module" src="bench.js"></script>"""
LAYERS = 200
STEPS = 1000


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def build(out: Path) -> None:
    subprocess.run(["node", "--input-type=module", "-e", BUILD, str(out)], cwd=ROOT, check=True)
    (out / "index.html").write_text(PAGE)


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/index.html"


def fmt(runs: list[dict[str, float]], key: str) -> str:
    xs = [r[key] for r in runs]
    return f"median {statistics.median(xs):.1f} ms (max {max(xs):.1f})"


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium not found")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        folder = Path(tmp)
        build(folder)
        server, url = serve(folder)
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_function("window.nbvizPanelsBench !== undefined", timeout=60_000)
        bench = "window.nbvizPanelsBench"
        info = page.evaluate(f"{bench}.info()")
        print(
            f"fake run: {LAYERS} layers x {STEPS} steps, {info['series']} series "
            f"(generated in {info['generateMs']:.0f} ms); all panels created in "
            f"{info['createMs']:.0f} ms (heatmap matrix and run scales included)"
        )

        uncached = [page.evaluate(f"{bench}.switchLayer({i})") for i in range(10, 40, 2)]
        assert not any(r["cached"] for r in uncached)
        print(
            f"switch to a not-yet-shown layer ({len(uncached)} layers, after its histograms "
            f"arrive): sync {fmt(uncached, 'sync')}; next frame {fmt(uncached, 'frame')}  "
            f"[target <= 50 ms]"
        )
        cached = [page.evaluate(f"{bench}.switchLayer({i})") for i in range(10, 40, 2)]
        print(
            f"switch back to a shown layer: sync {fmt(cached, 'sync')}; next frame "
            f"{fmt(cached, 'frame')}  [target <= 16 ms]"
        )

        page.evaluate(f"{bench}.resetParts()")
        steps = [page.evaluate(f"{bench}.step({s})") for s in range(100, 900, 23)]
        parts = page.evaluate(f"{bench}.parts()")
        print(
            f"one slider step (histogram panel, distribution marker, gradient bars, heatmap "
            f"marker, {LAYERS} overlay colours): sync {fmt(steps, 'sync')}; next frame "
            f"{fmt(steps, 'frame')}  [target <= 16 ms]"
        )
        print(
            "  of which script, median: " + ", ".join(f"{k} {v:.2f} ms" for k, v in parts.items())
        )

        page.evaluate(f"{bench}.resetScrub()")
        for _ in range(STEPS - 1):
            page.keyboard.press("ArrowRight")
        page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        scrub = page.evaluate(f"{bench}.scrubResult()")
        dropped = scrub["inputs"] - scrub["redraws"]
        print(
            f"scrub across {STEPS} steps with the arrow key: {scrub['inputs']} input events, "
            f"{scrub['redraws']} redraws, {dropped} dropped, ended at step {scrub['step']}; "
            f"redraw script median {scrub['p50']:.2f} ms, p99 {scrub['p99']:.1f} ms, slowest "
            f"{scrub['slowest']:.1f} ms, {scrub['over16']} over 16 ms"
        )
        if errors:
            print("page errors:", *errors, sep="\n  ")
        browser.close()
        server.shutdown()
        ok = dropped == 0 and scrub["step"] == STEPS - 1 and not errors
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
