"""The statistics panels inside JupyterLab, fed by a real kernel through the LiveFeed and RunStore.

Run: `PYTHONPATH=. /work/main/.venv/bin/python benchmarks/bench_panels_lab.py` (a few minutes;
needs node_modules, the built bundles in nbviz/static and Debian's chromium). Writes a run of
200 layers x 1,000 steps (weights and their gradients, histograms every 10 steps), starts a
JupyterLab on 127.0.0.1, shows the run with `nbviz.show(path)` and measures in the page, with
performance.now() and requestAnimationFrame, the issue-5 targets: switching to a not-yet-cached
layer shows its histograms <= 50 ms after the data arrive, a cached one <= 16 ms; one slider step
redraws the panels <= 16 ms; scrubbing across all 1,000 steps drops no input. Then, unless
--no-static, the same measurements on bench_panels.py's static page, side by side.

The data path is the real one (snapshot request, `run_histograms` requests, binary buffers, the
browser's RunStore), with two bench settings: the feed's pushes are stopped once the widget is
shown, so the statistics come in one snapshot and every histogram comes on request (else pushes
would cache every layer before it is clicked), and the server's iopub rate limit is off so the
25 MB snapshot is not dropped. A run file has no traced graph, so no graph is recoloured here.

"After the data arrive" starts at the largest websocket frame received after the click (the
histograms), stamped by a listener added before JupyterLab's own; "next frame" is the start of
the first animation frame after the panel changed. Timings are noisy on a loaded machine: medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Page, expect, sync_playwright

import nbviz
from nbviz._protocol import HIST_BINS
from nbviz.live import STAT_ROW_BYTES
from nbviz.records import RECORD_FIELDS, LayerMeta, SeriesKey, StatRecord, StepRecord
from nbviz.stats import Histogram
from nbviz.store import RunWriter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the page and notebook harnesses live with the tests
from jupyter_server import jupyter_server  # noqa: E402
from notebook_ui import CELL_TIMEOUT_MS, append_and_run, open_notebook  # noqa: E402
from static_page import launch  # noqa: E402

LAYERS = 200
STEPS = 1000
HIST_EVERY = 10
KINDS = ("weight", "grad")
SWITCHES = 10

# Stamps every websocket frame as it arrives, before JupyterLab's handlers run.
FRAME_CLOCK = """
(() => {
  const Native = window.WebSocket;
  window.nbvizFrames = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        const size = event.data.byteLength ?? event.data.length ?? 0;
        window.nbvizFrames.push([performance.now(), size]);
      });
    }
  };
})();
"""

# Measurements in the page; `view(...)` reads what the first statistics view shows.
PAGE_BENCH = """
(() => {
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  const settle = () => new Promise((r) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => r();
    channel.port2.postMessage(0);
  });
  const stats = () => document.querySelector("[data-nbviz-view='stats']");
  const range = () => document.querySelector(".nbviz-slider input.nbviz-range");
  const shown = () => {
    const s = stats();
    const step = s.querySelector(".nbviz-hp-step")?.textContent ?? "";
    return {
      layer: s.querySelector(".nbviz-hp-title .nbviz-name")?.textContent ?? "",
      step: Number(step.replace(/[^0-9]/g, "")),
      bars: s.querySelector(".nbviz-hp-row[data-kind='weight'] path.nbviz-bars")
        ?.getAttribute("d") ?? "",
    };
  };
  function clickBar(index, count) {
    const canvas = document.querySelector("canvas.nbviz-gf-bars");
    const r = canvas.getBoundingClientRect();
    const x = r.left + 8 + ((index + 0.5) * (r.width - 16)) / count;
    canvas.dispatchEvent(new MouseEvent("click", { clientX: x, clientY: r.top + 20 }));
  }
  /** Runs `act` at a frame's start; resolves once `done()` holds, with the times. */
  async function timed(act, done) {
    await frame();
    const t0 = performance.now();
    const frames = window.nbvizFrames.length;
    let changed = null;
    const observer = new MutationObserver(() => {
      if (changed === null && done()) changed = performance.now();
    });
    observer.observe(stats(), { subtree: true, childList: true, attributes: true,
                                characterData: true });
    act();
    await settle();
    document.body.offsetHeight; // style and layout, as the static bench forces them
    const sync = performance.now() - t0;
    const deadline = t0 + 60_000;
    while (!done()) {
      if (performance.now() > deadline) {
        throw new Error(`the view did not change in 60 s: ${JSON.stringify(shown())}`);
      }
      await frame();
    }
    changed ??= performance.now();
    const next = await frame();
    observer.disconnect();
    const arrived = window.nbvizFrames.slice(frames).filter(([t]) => t <= changed);
    const largest = arrived.reduce((a, b) => (b[1] > a[1] ? b : a), [t0, 0]);
    return { sync, frame: next - t0, arrived: largest[0] - t0, bytes: largest[1],
             shown: changed - largest[0], shownFrame: next - largest[0] };
  }
  async function switchLayer(index, count, layer) {
    return timed(() => clickBar(index, count),
                 () => { const v = shown(); return v.layer === layer && v.bars !== ""; });
  }
  async function step(index, value) {
    const input = range();
    return timed(() => {
      input.value = String(index);
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }, () => shown().step === value);
  }
  let scrub = null;
  async function startScrub() {
    const input = range();
    input.value = "0";
    input.dispatchEvent(new Event("input", { bubbles: true }));
    await settle();
    scrub = { inputs: 0, redraws: 0, last: 0, at: 0, latency: [] };
    const label = stats().querySelector(".nbviz-hp-step");
    // Counted before the slider's own listener (capture, on the window): the browser runs
    // microtasks between listeners, so the panels redraw before a listener added after it runs.
    window.addEventListener("input", (event) => {
      if (event.target !== input) return;
      scrub.inputs += 1;
      scrub.at = performance.now();
    }, true);
    new MutationObserver(() => {
      const value = shown().step;
      if (value === scrub.last || scrub.inputs === 0) return;
      scrub.last = value;
      scrub.redraws += 1;
      scrub.latency.push(performance.now() - scrub.at);
    }).observe(label, { subtree: true, childList: true, characterData: true });
  }
  const scrubResult = () => ({ ...scrub, step: shown().step });
  return { switchLayer, step, startScrub, scrubResult };
})()
"""


def write_run(path: Path) -> int:
    """A run of LAYERS linear layers x STEPS steps; returns its number of statistics rows."""
    rng = np.random.default_rng(0)
    layers = [LayerMeta("", "Sequential", None)]
    layers += [LayerMeta(str(i), "Linear", "", ("weight",)) for i in range(LAYERS)]
    keys = [SeriesKey(str(i), kind, "weight") for i in range(LAYERS) for kind in KINDS]
    scale = rng.lognormal(0, 1.5, len(keys))  # gradient norms spread over decades
    counts, _ = np.histogram(rng.normal(0, 1, 4096), bins=HIST_BINS, range=(-4, 4))
    field = {name: i for i, name in enumerate(RECORD_FIELDS)}
    with RunWriter(path, layers=layers) as writer:
        for step in range(STEPS):
            decay = np.exp(-step / 400)
            records = []
            for i, key in enumerate(keys):
                stats = np.full(len(RECORD_FIELDS), np.nan)
                std = scale[i] * (decay if key.kind == "grad" else 1.0)
                stats[[field["numel"], field["min"], field["max"]]] = (256, -3 * std, 3 * std)
                stats[[field["mean"], field["std"], field["l2"]]] = (0.0, std, 16 * std)
                stats[[field["zeros"], field["nan"], field["posinf"], field["neginf"]]] = 0
                hist = None
                if step % HIST_EVERY == 0:
                    width = 8 * std / HIST_BINS
                    hist = Histogram(-4 * std, width, counts.astype(np.float64), 4096)
                records.append(StatRecord(step, key, stats, hist, "float32"))
            writer.add(records)
            writer.end_step(StepRecord(step, wall_time=time.time()))
    return STEPS * len(keys)


def show_cell(path: Path, rows: int) -> str:
    return f"""\
import nbviz
viz = nbviz.show({str(path)!r})
viz.feed.stop()  # no pushes: statistics by the snapshot, histograms on request
viz.state.num_steps = viz.feed.run.last_step + 1  # as the feed's first push would have
viz.feed.snapshot_budget = {rows} * nbviz.live.STAT_ROW_BYTES  # every statistic, no histogram
print("pushes before stop:", viz.feed.pushes)
display(viz)"""


def fmt(runs: list[dict[str, float]], key: str) -> str:
    xs = [r[key] for r in runs]
    return f"median {statistics.median(xs):.1f} ms (max {max(xs):.1f})"


def medians(runs: list[dict[str, float]], key: str, frame_key: str) -> dict[str, float]:
    return {
        "sync": statistics.median(r[key] for r in runs),
        "frame": statistics.median(r[frame_key] for r in runs),
    }


def measure(page: Page) -> dict[str, Any]:
    page.evaluate(f"window.nbvizLab = {PAGE_BENCH}")
    lab = "window.nbvizLab"
    uncached = [
        page.evaluate(f"{lab}.switchLayer({i}, {LAYERS}, {json.dumps(str(i))})")
        for i in range(20, 20 + 7 * SWITCHES, 7)
    ]
    print(
        f"switch to a not-yet-cached layer ({SWITCHES} layers): click to histograms received "
        f"{fmt(uncached, 'arrived')} ({uncached[0]['bytes'] / 1024:.0f} KiB); from their "
        f"arrival to the panel drawn {fmt(uncached, 'shown')}, to the next frame "
        f"{fmt(uncached, 'shownFrame')}  [target <= 50 ms]"
    )
    cached = [
        page.evaluate(f"{lab}.switchLayer({i}, {LAYERS}, {json.dumps(str(i))})")
        for i in range(20, 20 + 7 * SWITCHES, 7)
    ]
    print(
        f"switch back to a cached layer: sync {fmt(cached, 'sync')}; next frame "
        f"{fmt(cached, 'frame')}  [target <= 16 ms]"
    )
    steps = [
        page.evaluate(f"{lab}.step({s}, {s})") for s in range(STEPS // 10, STEPS * 9 // 10, 23)
    ]
    print(
        f"one slider step (histogram panel, distribution marker, gradient bars, heatmap "
        f"marker, slider): sync {fmt(steps, 'sync')}; next frame {fmt(steps, 'frame')}  "
        f"[target <= 16 ms]"
    )
    page.evaluate(f"{lab}.startScrub()")
    slider = page.locator(".nbviz-slider input.nbviz-range").first
    for _ in range(STEPS - 1):
        slider.press("ArrowRight")
    page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
    scrub = page.evaluate(f"{lab}.scrubResult()")
    dropped = scrub["inputs"] - scrub["redraws"]
    latency = sorted(scrub["latency"]) or [float("nan")]
    print(
        f"scrub across {STEPS} steps with the arrow key: {scrub['inputs']} input events, "
        f"{scrub['redraws']} redraws, {dropped} dropped, ended at step {scrub['step']}; input "
        f"to redraw median {statistics.median(latency):.2f} ms, slowest {latency[-1]:.1f} ms"
    )
    return {
        "uncached": medians(uncached, "shown", "shownFrame"),
        "cached": medians(cached, "sync", "frame"),
        "step": medians(steps, "sync", "frame"),
        "dropped": dropped,
        "ok": dropped == 0 and scrub["step"] == STEPS - 1,
    }


def in_lab(page: Page, scratch: Path) -> dict[str, Any]:
    root = scratch / "root"
    root.mkdir()
    start = time.monotonic()
    rows = write_run(root / "bench.nbviz")
    print(
        f"wrote {LAYERS} layers x {STEPS} steps ({rows} statistics rows, histograms every "
        f"{HIST_EVERY} steps) in {time.monotonic() - start:.0f} s"
    )
    notebook = {
        "cells": [],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "bench.ipynb").write_text(json.dumps(notebook))
    limits = ["--ServerApp.iopub_data_rate_limit=0"]
    with jupyter_server("lab", root, scratch / "lab", limits) as server:
        page.add_init_script(FRAME_CLOCK)
        open_notebook(page, server.url, "lab", "bench.ipynb")
        start = time.monotonic()
        output = append_and_run(page, show_cell(root / "bench.nbviz", rows))
        assert "pushes before stop: 0" in output, output
        label = page.locator(".nbviz-step-label").first
        expect(label).to_contain_text(f"of {STEPS})", timeout=CELL_TIMEOUT_MS)
        # The slider counts num_steps at once; the flow view waits for the snapshot.
        rows_shown = page.locator("table.nbviz-gf-table tr[data-layer]")
        expect(rows_shown).to_have_count(LAYERS, timeout=CELL_TIMEOUT_MS)
        print(
            f"shown, snapshot of {rows * STAT_ROW_BYTES / 2**20:.0f} MiB applied, in "
            f"{time.monotonic() - start:.1f} s"
        )
        page.locator("[data-nbviz-view='flow']").first.scroll_into_view_if_needed()
        return measure(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-static", action="store_true", help="skip the static page")
    parser.add_argument("--steps", type=int, help="fewer steps than 1,000, to try it out")
    args = parser.parse_args()
    if args.steps is not None:
        global STEPS
        STEPS = args.steps
    print(f"nbviz {nbviz.__version__} from {Path(nbviz.__file__).parent}")
    errors: list[str] = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.on("pageerror", lambda e: errors.append(str(e)))
        print("== in JupyterLab, real kernel and RunStore")
        lab = in_lab(page, Path(tmp))
        static = None
        if not args.no_static:
            import bench_panels

            print("== static page, fake source (bench_panels.py)")
            static = bench_panels.run(browser.new_page(viewport={"width": 1280, "height": 900}))
        browser.close()
    rows = [
        ("not-yet-cached layer, after the data (ms)", "uncached"),
        ("cached layer (ms)", "cached"),
        ("one slider step (ms)", "step"),
    ]
    print(
        f"\n{'median':<44}{'lab sync':>10}{'frame':>8}"
        + ("" if static is None else f"{'static sync':>13}{'frame':>8}")
    )
    for title, key in rows:
        line = f"{title:<44}{lab[key]['sync']:>10.1f}{lab[key]['frame']:>8.1f}"
        if static is not None:
            line += f"{static[key]['sync']:>13.1f}{static[key]['frame']:>8.1f}"
        print(line)
    if errors:
        print("page errors:", *errors, sep="\n  ")
    ok = lab["ok"] and (static is None or static["ok"]) and not errors
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
