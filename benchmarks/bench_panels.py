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

import statistics
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the page and notebook harnesses live with the tests
from static_page import launch, static_page  # noqa: E402

STYLE = ".box{display:inline-block;font-size:9px;padding:2px;margin:1px}"
LAYERS = 200
STEPS = 1000


def fmt(runs: list[dict[str, float]], key: str) -> str:
    xs = [r[key] for r in runs]
    return f"median {statistics.median(xs):.1f} ms (max {max(xs):.1f})"


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in ("sync", "frame")}


def measure(page: Page) -> dict[str, Any]:
    """Every measurement on the loaded static page, printed as it goes."""
    bench = "window.nbvizPanelsBench"
    page.wait_for_function(f"{bench} !== undefined", timeout=60_000)
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
    print("  of which script, median: " + ", ".join(f"{k} {v:.2f} ms" for k, v in parts.items()))

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
    return {
        "uncached": medians(uncached),
        "cached": medians(cached),
        "step": medians(steps),
        "dropped": dropped,
        "ok": dropped == 0 and scrub["step"] == STEPS - 1,
    }


def run(page: Page) -> dict[str, Any]:
    """Bundles and serves the static page, measures it in `page`."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with static_page("js/tests/bench/panels-page.ts", style=STYLE) as url:
        page.goto(url)
        result = measure(page)
    if errors:
        print("page errors:", *errors, sep="\n  ")
    return {**result, "ok": result["ok"] and not errors}


def main() -> None:
    with sync_playwright() as pw:
        browser = launch(pw)
        result = run(browser.new_page(viewport={"width": 1280, "height": 900}))
        browser.close()
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
