/**
 * Browser entry for benchmarks/bench_graph_view.py: exposes `window.nbvizBench`, which draws
 * fixture graphs with the structure view (layout in the bundled worker) and times it.
 */

import { createGraphView, type GraphView } from "../../src/graph/render";
import type { WireGraph } from "../../src/graph/wire";

const longTasks: { start: number; duration: number }[] = [];
/** Long animation frames: script plus style, layout and paint of one frame, over 50 ms. */
const longFrames: { start: number; duration: number }[] = [];
function observe(type: string, into: { start: number; duration: number }[]): void {
  if (typeof PerformanceObserver === "undefined") return;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) into.push({ start: e.startTime, duration: e.duration });
    }).observe({ type, buffered: true });
  } catch {
    // not supported by this browser: the figure stays empty
  }
}
observe("longtask", longTasks);
observe("long-animation-frame", longFrames);

const frame = (): Promise<number> => new Promise((r) => requestAnimationFrame(r));
/** Resolves after the next frame has been painted. */
const painted = async (): Promise<void> => {
  await frame();
  await frame();
};

let view: GraphView | null = null;

function host(): HTMLElement {
  const el = document.getElementById("host");
  if (el === null) throw new Error("no #host");
  return el;
}

function longestSince(t0: number, list = longTasks): number {
  return list.filter((t) => t.start >= t0).reduce((m, t) => Math.max(m, t.duration), 0);
}

async function load(name: string): Promise<WireGraph> {
  return (await (await fetch(`${name}.json`)).json()) as WireGraph;
}

const api = {
  /** From fetching the JSON to the collapsed view painted. */
  async firstPaint(
    name: string,
    shareLayouts = true,
  ): Promise<{ ms: number; boxes: number; longest: number; frame: number }> {
    view?.destroy();
    host().replaceChildren();
    const t0 = performance.now();
    const graph = await load(name);
    view = createGraphView({ graph, selected: null }, { shareLayouts });
    host().append(view.el);
    await view.idle();
    await painted();
    const ms = performance.now() - t0;
    return {
      ms,
      boxes: view.el.querySelectorAll("[data-box]").length,
      longest: longestSince(t0),
      frame: longestSince(t0, longFrames),
    };
  },

  async unfold(key: string): Promise<number> {
    if (view === null) throw new Error("no view");
    const t0 = performance.now();
    await view.setUnfolded(key, true);
    await painted();
    return performance.now() - t0;
  },

  /** Expands (or collapses) the group with this module name; ms to painted. */
  async toggle(name: string, open: boolean): Promise<number> {
    if (view === null) throw new Error("no view");
    const id = view.index.nodes.findIndex((n) => n?.name === name && n.kind === "module");
    const t0 = performance.now();
    await view.setExpanded(id, open);
    await painted();
    return performance.now() - t0;
  },

  /** The view's timings of its last refresh. */
  lastStats(): object {
    if (view === null) throw new Error("no view");
    return { ...view.stats };
  },

  /** Every group expanded and every fold unfolded: ms to painted, and the longest task. */
  async expandAll(): Promise<{
    ms: number;
    stats: object;
    boxes: number;
    longest: number;
    tasks: number[];
    fitMs: number;
    fitLongest: number;
    frame: number;
    fitFrame: number;
  }> {
    if (view === null) throw new Error("no view");
    const t0 = performance.now();
    await view.expandAll();
    await painted();
    const ms = performance.now() - t0;
    const tasks = longTasks.filter((t) => t.start >= t0).map((t) => Math.round(t.duration));
    const longest = longestSince(t0);
    const t1 = performance.now();
    view.fit();
    await view.idle(); // every box in view, i.e. all of them, created and shown
    await painted();
    const fitMs = performance.now() - t1;
    return {
      ms,
      stats: { ...view.stats },
      boxes: view.el.querySelectorAll("[data-box]").length,
      longest,
      tasks,
      fitMs,
      fitLongest: longestSince(t1),
      frame: longestSince(t0, longFrames),
      fitFrame: longestSince(t1, longFrames),
    };
  },

  /** Frames per second while panning (drag) or zooming (wheel) for `ms`, at zoom `k`. */
  async interact(
    kind: "pan" | "zoom",
    k: number,
    ms = 2000,
  ): Promise<{ fps: number; longest: number; frame: number }> {
    if (view === null) throw new Error("no view");
    const svg = view.el.querySelector("svg");
    if (svg === null) throw new Error("no svg");
    view.setTransform({ k, x: 0, y: 0 });
    await painted();
    const rect = svg.getBoundingClientRect();
    const cx = rect.left + rect.width / 2;
    const cy = rect.top + rect.height / 2;
    if (kind === "pan") {
      svg.dispatchEvent(
        new PointerEvent("pointerdown", { clientX: cx, clientY: cy, button: 0, bubbles: true }),
      );
    }
    let frames = 0;
    const t0 = performance.now();
    let now = t0;
    while (now - t0 < ms) {
      const i = frames;
      if (kind === "pan") {
        const x = cx + 200 * Math.sin(i / 10);
        svg.dispatchEvent(
          new PointerEvent("pointermove", { clientX: x, clientY: cy, bubbles: true }),
        );
      } else {
        const deltaY = 15 * Math.sin(i / 8);
        svg.dispatchEvent(
          new WheelEvent("wheel", {
            deltaY,
            clientX: cx,
            clientY: cy,
            bubbles: true,
            cancelable: true,
          }),
        );
      }
      now = await frame();
      frames += 1;
    }
    if (kind === "pan") {
      svg.dispatchEvent(new PointerEvent("pointerup", { clientX: cx, clientY: cy, bubbles: true }));
    }
    const fps = (1000 * frames) / (now - t0);
    // include the frame where text comes back after the gesture
    await new Promise((r) => setTimeout(r, 300));
    await painted();
    return { fps, longest: longestSince(t0), frame: longestSince(t0, longFrames) };
  },
};

(window as unknown as { nbvizBench: typeof api }).nbvizBench = api;
