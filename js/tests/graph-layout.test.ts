import { afterEach, describe, expect, it, vi } from "vitest";
import { Culler, visibleRect } from "../src/graph/cull";
import { besideMiddle, type LazyItem, type Placed } from "../src/graph/draw";
import { createElkCompute } from "../src/graph/elk-layout";
import {
  createLayoutEngine,
  createWorkerEngine,
  GROUP_HEADER,
  GROUP_PAD,
  type LayoutEngine,
  Layouter,
  prestartWorker,
  QUICK_LIMIT,
} from "../src/graph/layout";
import type { LayoutRequest, LayoutResult } from "../src/graph/layout-types";
import { indexGraph, nodeBox, ROOT_BOX, visibleGraph } from "../src/graph/model";
import { quickLayout } from "../src/graph/quick-layout";
import { WORKER_SOURCE } from "../src/graph/worker-source";
import { gpt, resnet } from "./fixtures/graphs";

const none = new Set<never>();
const measure = () => ({ w: 100, h: 40 });
const options = { measure, labelWidth: () => 0 };

/** An engine that answers only when told, to test ordering and staleness. */
function manualEngine() {
  const calls: { request: LayoutRequest; resolve(r: LayoutResult): void }[] = [];
  const engine: LayoutEngine = {
    kind: "manual",
    compute: (request) => new Promise((resolve) => calls.push({ request, resolve })),
    dispose() {},
  };
  const answer = (i: number): void => {
    const call = calls[i];
    if (!call) throw new Error(`no call ${i}`);
    call.resolve({
      width: 10 * call.request.children.length,
      height: 50,
      nodes: call.request.children.map((_, j) => ({ x: 10 * j, y: 0 })),
      edges: call.request.edges.map(() => ({
        points: [0, 0, 1, 1],
        lx: Number.NaN,
        ly: Number.NaN,
      })),
    });
  };
  return { engine, calls, answer };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("ELK layout", () => {
  it("places every child and routes every edge of a level", async () => {
    const compute = createElkCompute();
    const result = await compute({
      children: [
        { w: 80, h: 30 },
        { w: 80, h: 30 },
        { w: 80, h: 30 },
      ],
      edges: [
        { s: 0, t: 1, lw: 40, lh: 12 },
        { s: 1, t: 2, lw: 0, lh: 0 },
        { s: 0, t: 2, lw: 0, lh: 0 },
      ],
    });
    expect(result.nodes).toHaveLength(3);
    expect(result.edges).toHaveLength(3);
    // top to bottom, in dataflow order
    expect(result.nodes[0]?.y).toBeLessThan(result.nodes[1]?.y ?? 0);
    expect(result.nodes[1]?.y).toBeLessThan(result.nodes[2]?.y ?? 0);
    for (const e of result.edges) expect(e.points.length).toBeGreaterThanOrEqual(4);
    // the label sits between the two boxes it connects (ELK skips labels without text)
    expect(result.edges[0]?.ly).toBeGreaterThanOrEqual((result.nodes[0]?.y ?? 0) + 30);
    expect(result.edges[0]?.ly).toBeLessThan(result.nodes[1]?.y ?? 0);
    expect(Number.isNaN(result.edges[1]?.lx)).toBe(true);
    expect(result.width).toBeGreaterThan(80);
  });
});

describe("Layouter", () => {
  it("lays out children before parents, open groups sized by their layout", async () => {
    const index = indexGraph(resnet());
    const layer1 = index.nodes.findIndex((n) => n?.name === "layer1");
    const vg = visibleGraph(index, new Set([layer1]), none);
    const { engine, calls, answer } = manualEngine();
    const done = new Layouter(engine, options).layout(vg);
    await tick();
    expect(calls).toHaveLength(1); // layer1 first; the root waits for its size
    answer(0);
    await tick();
    expect(calls).toHaveLength(2);
    const rootCall = calls[1];
    const i = vg.levels.get(ROOT_BOX)?.children.indexOf(nodeBox(layer1)) ?? -1;
    expect(rootCall?.request.children[i]).toEqual({
      w: 10 * (calls[0]?.request.children.length ?? 0) + 2 * GROUP_PAD,
      h: 50 + GROUP_HEADER + GROUP_PAD,
    });
    answer(1);
    const full = await done;
    expect([...(full?.levels.keys() ?? [])]).toEqual([nodeBox(layer1), ROOT_BOX]);
  });

  it("drops a layout superseded by a later one", async () => {
    const index = indexGraph(resnet());
    const { engine, calls, answer } = manualEngine();
    const layouter = new Layouter(engine, options);
    const first = layouter.layout(visibleGraph(index, none, none));
    const layer1 = index.nodes.findIndex((n) => n?.name === "layer1");
    const second = layouter.layout(visibleGraph(index, new Set([layer1]), none));
    await tick();
    for (let i = 0; i < calls.length; i++) answer(i);
    await tick();
    for (let i = 0; i < calls.length; i++) answer(i);
    expect(await first).toBeNull();
    expect(await second).not.toBeNull();
  });

  it("caches by content: identical blocks and re-opened groups are laid out once", async () => {
    const index = indexGraph(gpt(6));
    const groups = [...index.children.keys()].filter((g) => g >= 0);
    const all = visibleGraph(index, new Set(groups), new Set(index.folds.map((f) => f.key)));
    const layouter = new Layouter(createLayoutEngine(createElkCompute()), options);
    await layouter.layout(all);
    // root + one block + attention + MLP: the 6 blocks share their layouts
    expect(layouter.computed).toBe(4);
    await layouter.layout(visibleGraph(index, none, none));
    const again = layouter.computed;
    await layouter.layout(all);
    expect(layouter.computed).toBe(again);

    const apart = new Layouter(createLayoutEngine(createElkCompute()), {
      ...options,
      share: false,
    });
    await apart.layout(all);
    expect(apart.computed).toBe(1 + 6 * 3);
  });

  it("prefetches a closed group's level: opening it or an identical block lays out the root alone", async () => {
    const index = indexGraph(gpt(6));
    const unfolded = new Set(index.folds.map((f) => f.key));
    const block = (i: number) =>
      index.nodes.findIndex((n) => n?.name === `blocks.${i}` && n.kind === "module");
    const layouter = new Layouter(createLayoutEngine(createElkCompute()), options);
    await layouter.layout(visibleGraph(index, none, unfolded));
    expect(layouter.computed).toBe(1);
    const ahead = visibleGraph(index, new Set([block(0)]), unfolded);
    await layouter.prefetch(ahead, nodeBox(block(0)));
    expect(layouter.computed).toBe(2);

    const opened = visibleGraph(index, new Set([block(3)]), unfolded);
    const full = await layouter.layout(opened);
    expect(layouter.computed).toBe(3); // the root, now holding an open block
    const inside = full?.levels.get(nodeBox(block(3)));
    expect(inside?.level.children.length).toBe(index.children.get(block(3))?.length);

    // a level with an open child depends on that child's layout: not prefetched
    await layouter.prefetch(opened, ROOT_BOX);
    expect(layouter.computed).toBe(3);
  });

  it("runs in process only without a bundled worker", () => {
    expect(WORKER_SOURCE).toBe("");
    expect(() => createLayoutEngine()).toThrow(/no layout worker/);
    expect(createLayoutEngine(createElkCompute()).kind).toBe("in-process");
  });
});

/** Stands in for Web Worker (jsdom has none): records its source and the messages posted. */
class FakeWorker {
  static started: FakeWorker[] = [];
  posted: unknown[] = [];
  terminated = false;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: unknown = null;
  listeners: ((event: { data: unknown }) => void)[] = [];
  constructor(readonly url: string) {
    FakeWorker.started.push(this);
  }
  addEventListener(_type: "message", listener: (event: { data: unknown }) => void): void {
    this.listeners.push(listener);
  }
  /** What the worker's script would post: to the listeners, then to onmessage. */
  say(data: unknown): void {
    for (const listener of this.listeners.splice(0)) listener({ data }); // added with once
    this.onmessage?.({ data });
  }
  postMessage(message: unknown): void {
    this.posted.push(message);
  }
  terminate(): void {
    this.terminated = true;
  }
}

describe("layout workers", () => {
  let sources = 0;
  /** A source of its own per test: the pool of idle workers is per page, keyed by source. */
  const freshSource = (): string => `/* worker ${++sources} */`;
  const answer = (worker: FakeWorker, id: number): void =>
    worker.say({ id, result: { width: 1, height: 1, children: [], edges: [] } });

  afterEach(() => {
    vi.unstubAllGlobals();
    FakeWorker.started = [];
  });
  const stub = (): void => {
    vi.stubGlobal("Worker", FakeWorker);
    let urls = 0;
    vi.stubGlobal("URL", { createObjectURL: () => `blob:${++urls}`, revokeObjectURL() {} });
  };

  it("hand an idle worker on to the next engine, ELK already parsed", async () => {
    stub();
    const source = freshSource();
    const first = createWorkerEngine(source);
    const request: LayoutRequest = { children: [{ w: 1, h: 1 }], edges: [] };
    const done = first.compute(request);
    const [worker] = FakeWorker.started;
    if (worker === undefined) throw new Error("no worker started");
    answer(worker, 1);
    await done;
    first.dispose();
    expect(worker.terminated).toBe(false);

    const second = createWorkerEngine(source);
    const again = second.compute(request);
    expect(FakeWorker.started).toHaveLength(1);
    expect(worker.posted).toHaveLength(2);
    answer(worker, 2); // ids go on across engines
    await expect(again).resolves.toMatchObject({ width: 1 });
    // a second idle worker for the same source is not kept
    const other = createWorkerEngine(source);
    second.dispose();
    other.dispose();
    expect(FakeWorker.started).toHaveLength(2);
    expect(FakeWorker.started[1]?.terminated).toBe(true);
  });

  it("end a worker disposed while a layout is in flight: its answer is nobody's", async () => {
    stub();
    const source = freshSource();
    const engine = createWorkerEngine(source);
    const first = engine.compute({ children: [], edges: [] });
    if (FakeWorker.started[0]) answer(FakeWorker.started[0], 1);
    await first;
    const pending = engine.compute({ children: [], edges: [] });
    engine.dispose();
    await expect(pending).rejects.toThrow(/disposed/);
    expect(FakeWorker.started[0]?.terminated).toBe(true);
    createWorkerEngine(source);
    expect(FakeWorker.started).toHaveLength(2);
  });

  it("keep a worker still loading ELK for the next engine, without the old answers", async () => {
    stub();
    const source = freshSource();
    const first = createWorkerEngine(source);
    const request: LayoutRequest = { children: [{ w: 1, h: 1 }], edges: [] };
    const stale = first.compute(request);
    expect(first.ready?.()).toBe(false);
    first.dispose();
    await expect(stale).rejects.toThrow(/disposed/);
    const [worker] = FakeWorker.started;
    if (worker === undefined) throw new Error("no worker started");
    expect(worker.terminated).toBe(false);
    const second = createWorkerEngine(source);
    expect(FakeWorker.started).toHaveLength(1);
    const fresh = second.compute(request);
    answer(worker, 1); // the first engine's request: nobody's now
    answer(worker, 2);
    await expect(fresh).resolves.toMatchObject({ width: 1 });
    expect(second.ready?.()).toBe(true); // it has answered: ELK is loaded
    expect(createWorkerEngine(source).ready?.()).toBe(false); // a new worker
  });

  it("start ahead of the first engine, once, and not while another one works", () => {
    stub();
    const source = freshSource();
    prestartWorker(source);
    prestartWorker(source);
    expect(FakeWorker.started).toHaveLength(1);
    const engine = createWorkerEngine(source);
    expect(FakeWorker.started).toHaveLength(1);
    // a re-run cell's new bundle, while the old view still holds the worker: it waits for that one
    prestartWorker(source);
    expect(FakeWorker.started).toHaveLength(1);
    engine.dispose();
    createWorkerEngine(source);
    expect(FakeWorker.started).toHaveLength(1);
  });
});

describe("quick layout", () => {
  const box = { w: 80, h: 30 };
  const edge = (s: number, t: number) => ({ s, t, lw: 0, lh: 0 });

  it("stacks a chain top to bottom, centred, with ELK's spacing", () => {
    const result = quickLayout({
      children: [box, { w: 120, h: 30 }, box],
      edges: [edge(0, 1), edge(1, 2)],
    });
    expect(result.nodes).toEqual([
      { x: 28, y: 8 },
      { x: 8, y: 74 },
      { x: 28, y: 140 },
    ]);
    expect(result).toMatchObject({ width: 136, height: 178 });
    expect(result.edges[0]?.points).toEqual([68, 38, 68, 74]);
    expect(Number.isNaN(result.edges[0]?.lx)).toBe(true);
  });

  it("layers by longest path, side by side in model order, anchors first and last", () => {
    const result = quickLayout({
      children: [box, box, box, box, { w: 8, h: 8, c: "first" }, { w: 8, h: 8, c: "last" }],
      edges: [edge(4, 1), edge(0, 2), edge(1, 2), edge(2, 3), edge(1, 3), edge(3, 5)],
    });
    const y = result.nodes.map((n) => n.y);
    const middle = (i: number) => (y[i] ?? 0) + (i >= 4 ? 4 : 15);
    expect(middle(0)).toBe(middle(4)); // the sources share the first layer, centred on it
    expect(result.nodes[0]?.x).toBeLessThan(result.nodes[4]?.x ?? 0); // in model order
    expect(y[1]).toBeGreaterThan(y[0] ?? 0);
    expect(y[2]).toBeGreaterThan(y[1] ?? 0);
    expect(y[3]).toBeGreaterThan(y[2] ?? 0); // below 2, although 1 feeds it too
    expect(y[5]).toBeGreaterThan(y[3] ?? 0);
  });

  it("ends on cycles and empty levels", () => {
    const cycle = quickLayout({ children: [box, box], edges: [edge(0, 1), edge(1, 0)] });
    expect(cycle.nodes[0]?.y).toBeLessThan(cycle.nodes[1]?.y ?? 0);
    expect(quickLayout({ children: [], edges: [] })).toMatchObject({ width: 16, height: 16 });
  });

  it("stands in for an engine that is not ready, for small graphs only", async () => {
    const { engine } = manualEngine();
    let ready = false;
    const starting: LayoutEngine = { ...engine, ready: () => ready };
    const index = indexGraph(gpt(2));
    const block = index.nodes.findIndex((n) => n?.name === "blocks.0" && n.kind === "module");
    const unfolded = new Set(index.folds.map((f) => f.key));
    const vg = visibleGraph(index, new Set([block]), unfolded);
    const quick = new Layouter(starting, options).quick(vg);
    expect(quick?.levels.get(ROOT_BOX)?.result.nodes).toHaveLength(
      vg.levels.get(ROOT_BOX)?.children.length ?? -1,
    );
    const inside = quick?.levels.get(nodeBox(block))?.result;
    expect(quick?.sizes.get(nodeBox(block))).toEqual({
      w: (inside?.width ?? 0) + 2 * GROUP_PAD,
      h: (inside?.height ?? 0) + GROUP_HEADER + GROUP_PAD,
    });
    ready = true;
    expect(new Layouter(starting, options).quick(vg)).toBeNull();
    expect(new Layouter(engine, options).quick(vg)).toBeNull(); // no ready(): ready
    ready = false;
    const big = gpt(QUICK_LIMIT);
    const all = indexGraph(big);
    const open = new Set(all.nodes.flatMap((n, i) => (n?.kind === "module" ? [i] : [])));
    const unfoldAll = new Set(all.folds.map((f) => f.key));
    expect(new Layouter(starting, options).quick(visibleGraph(all, open, unfoldAll))).toBeNull();
  });
});

describe("edge labels", () => {
  it("sit beside the middle of the longest segment", () => {
    expect(besideMiddle([0, 0, 0, 10, 0, 110])).toEqual([4, 54]);
    expect(besideMiddle([10, 0, 30, 0])).toEqual([24, -6]);
  });
});

describe("Culler", () => {
  function item(x: number, y: number, parent: SVGGElement) {
    let made = 0;
    const it: LazyItem = {
      el: null,
      parent,
      make: () => {
        made += 1;
        return document.createElementNS("http://www.w3.org/2000/svg", "rect");
      },
      x0: x,
      y0: y,
      x1: x + 10,
      y1: y + 10,
    };
    return { it, made: () => made };
  }

  it("creates items when they come into view, in slices, and hides those that leave", () => {
    const parent = document.createElementNS("http://www.w3.org/2000/svg", "g");
    const items = [0, 100, 200, 1000].map((x) => item(x, 0, parent));
    const placed: Placed[] = items.map(({ it }) => ({
      item: it,
      x0: it.x0,
      y0: it.y0,
      x1: it.x1,
      y1: it.y1,
    }));
    const culler = new Culler();
    culler.set(placed);
    const view = { x0: -5, y0: -5, x1: 300, y1: 300 };
    expect(culler.update(view, 2)).toBe(1); // two shown, one waits
    expect(parent.childNodes).toHaveLength(2);
    expect(culler.update(view, 2)).toBe(0);
    expect(parent.childNodes).toHaveLength(3);
    expect(items[3]?.made()).toBe(0); // never in view, never made
    culler.update({ x0: 150, y0: -5, x1: 1200, y1: 300 });
    expect(items[0]?.it.el?.style.display).toBe("none");
    expect(items[3]?.it.el?.style.display).toBe("");
    culler.update(view);
    expect(items[0]?.it.el?.style.display).toBe("");
    expect(items[0]?.made()).toBe(1); // made once, shown again
  });

  it("computes the visible rectangle from the transform", () => {
    expect(visibleRect({ k: 2, x: -100, y: -20 }, 400, 200, 0)).toEqual({
      x0: 50,
      y0: 10,
      x1: 250,
      y1: 110,
    });
  });
});
