"""Structure diagram in headless Chromium: first paint, expand, full layout, pan/zoom.

Run: `.venv/bin/python benchmarks/bench_graph_view.py` (needs node_modules and Debian's
chromium). Bundles js/tests/bench/graph-page.ts (the renderer with its layout worker inlined,
as js/build.mjs does for the widget; harness in tests/static_page.py) into a temporary folder
with the fixture graphs of js/tests/fixtures, serves it on 127.0.0.1 and prints medians.
Targets (issue 4): first paint <= 1 s, expand <= 100 ms, full layout <= 5 s with no
main-thread task > 100 ms, >= 30 fps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the page harness lives with the tests
from static_page import launch, static_page  # noqa: E402

FIXTURES = ROOT / "js" / "tests" / "fixtures"
REPEATS = 5
#: Pause between the diagram appearing and the first click on it.
PAUSE_MS = 500


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("expand",), help="run only this part")
    only = parser.parse_args().only
    fixtures = [FIXTURES / f"{name}.json" for name in ("gpt48", "mlp500", "resnet")]
    with (
        sync_playwright() as pw,
        static_page("js/tests/bench/graph-page.ts", files=fixtures) as url,
    ):
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on("pageerror", lambda e: print("page error:", e, file=sys.stderr))

        def fresh() -> None:
            page.goto(url)
            page.wait_for_function("window.nbvizBench !== undefined")

        bench = "window.nbvizBench"
        for name in ("gpt48", "mlp500") if only is None else ():
            paints, boxes, paint_frames = [], 0, []
            for _ in range(REPEATS):
                fresh()
                r = page.evaluate(f"{bench}.firstPaint({name!r})")
                paints.append(r["ms"])
                paint_frames.append(r["frame"])
                boxes = r["boxes"]
            print(
                f"{name}: first paint of the collapsed view (cold page, worker start included): "
                f"median {median(paints):.0f} ms over {REPEATS} ({boxes} boxes; longest frame "
                f"{max(paint_frames):.0f} ms)"
            )

        # expanding one block: unfold the 48 blocks, then open blocks one at a time; the first
        # open of a page after a pause, as a user reading the diagram first would leave
        firsts, opens, closes, unfolds, splits = [], [], [], [], []
        for _ in range(REPEATS):
            fresh()
            page.evaluate(f"{bench}.firstPaint('gpt48')")
            unfolds.append(page.evaluate(f"{bench}.unfold('blocks.0#0')"))
            page.wait_for_timeout(PAUSE_MS)
            firsts.append(page.evaluate(f"{bench}.toggle('blocks.0', true)"))
            splits.append(page.evaluate(f"{bench}.lastStats()"))
            page.evaluate(f"{bench}.toggle('blocks.0', false)")
            for i in range(1, 3):
                opens.append(page.evaluate(f"{bench}.toggle('blocks.{i}', true)"))
                closes.append(page.evaluate(f"{bench}.toggle('blocks.{i}', false)"))
        print(
            f"gpt48: unfold 48 blocks median {median(unfolds):.0f} ms; expand one block: first "
            f"(after {PAUSE_MS} ms) median {median(firsts):.0f} ms (max {max(firsts):.0f}; "
            f"layout {median([s['layoutMs'] for s in splits]):.0f} ms, drawing "
            f"{median([s['drawMs'] for s in splits]):.0f} ms), then median {median(opens):.0f} ms "
            f"(max {max(opens):.0f}); collapse median {median(closes):.0f} ms"
        )
        if only == "expand":
            return

        # fully expanded graph on a fresh page (empty layout cache)
        for name, share in (("gpt48", True), ("gpt48", False), ("mlp500", True)):
            times, longest, boxes, tasks, fits, fit_longest = [], [], 0, [], [], []
            frames, fit_frames = [], []
            for _ in range(3):
                fresh()
                page.evaluate(f"{bench}.firstPaint({name!r}, {str(share).lower()})")
                r = page.evaluate(f"{bench}.expandAll()")
                times.append(r["ms"])
                longest.append(r["longest"])
                boxes, tasks = r["boxes"], r["tasks"]
                fits.append(r["fitMs"])
                fit_longest.append(r["fitLongest"])
                frames.append(r["frame"])
                fit_frames.append(r["fitFrame"])
                stats = r["stats"]
            label = name if share else f"{name} (identical blocks not sharing layouts)"
            print(
                f"{label}: fully expanded ({stats['boxes']} boxes) laid out and painted: median "
                f"{median(times):.0f} ms; longest main-thread task: median "
                f"{median(longest):.0f} ms, max {max(longest):.0f} ms (last run's long "
                f"tasks: {tasks}); worker layout {stats['layoutMs']:.0f} ms for "
                f"{stats['levelsComputed']} distinct levels, drawing {stats['drawMs']:.0f} ms "
                f"(in slices) for {stats['levelsDrawn']} levels; longest animation frame "
                f"(script + style + layout + paint): max {max(frames):.0f} ms"
            )
            print(
                f"{label}: fit-to-view of the expanded graph ({boxes} boxes drawn): median "
                f"{median(fits):.0f} ms, "
                f"longest task {max(fit_longest):.0f} ms, longest frame {max(fit_frames):.0f} ms"
            )
            for kind in ("pan", "zoom") if share else ():
                for k, where in ((0.0, "25% (text hidden)"), (1.0, "100%")):
                    if k == 0.0:
                        page.evaluate(f"{bench}.interact({kind!r}, 0.25, 300)")
                    runs = [
                        page.evaluate(f"{bench}.interact({kind!r}, {k or 0.25}, 2000)")
                        for _ in range(3)
                    ]
                    fps = [r["fps"] for r in runs]
                    longest = max(r["longest"] for r in runs)
                    frame = max(r["frame"] for r in runs)
                    print(
                        f"{name}: {kind} at {where}: median {median(fps):.1f} fps "
                        f"(gesture end included: longest task {longest:.0f} ms, longest "
                        f"frame {frame:.0f} ms)"
                    )
        version = browser.version
        browser.close()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"(load average at the end: {load} on {os.cpu_count()} CPUs; Chromium {version})")


if __name__ == "__main__":
    main()
