/**
 * Lazy, per-group layout off the main thread. Each level (the root, or an open group) is laid
 * out on its own with its open child groups as fixed boxes the size of their own layout, so
 * opening a group lays out that group and then only its ancestors; results are cached by
 * content (sizes and edges by local index), so identical blocks share one layout.
 */

import type {
  LayoutCompute,
  LayoutRequest,
  LayoutResult,
  WorkerRequest,
  WorkerResponse,
} from "./layout-types";
import { ANCHOR_IN, type Level, levelAnchors, ROOT_BOX, type VisibleGraph } from "./model";
import { quickLayout } from "./quick-layout";
import { WORKER_SOURCE } from "./worker-source";

/** Padding around an open group's children, and the height of its header. */
export const GROUP_PAD = 10;
export const GROUP_HEADER = 24;
export const LABEL_HEIGHT = 12;
/** Level layouts kept (least recently used dropped first). */
export const CACHE_LIMIT = 2000;
/** Size of an open group's input and output anchors. */
export const ANCHOR_SIZE = 8;
/** Most boxes a diagram may have for `Layouter.quick` to lay it out. */
export const QUICK_LIMIT = 60;

export interface Size {
  w: number;
  h: number;
}

export interface LayoutEngine {
  compute: LayoutCompute;
  /** "worker" or "in-process". */
  kind: string;
  /** False while the engine is still starting (a fresh worker loading ELK); default ready. */
  ready?(): boolean;
  dispose(): void;
}

interface LayoutWorker {
  worker: Worker;
  url: string;
  /** The worker has answered a layout: ELK is loaded. */
  ready: boolean;
  /** Request ids are the worker's, not an engine's: a late answer finds no one to resolve. */
  nextId: number;
}

/**
 * The page's layout workers, by their source: one idle worker kept for the next engine, and how
 * many are alive. A fresh worker parses ELK (~1.4 MB) before its first layout, most of a
 * diagram's first paint in JupyterLab (GPT-48: view to first layout 700-1000 ms fresh).
 * anywidget imports the bundle anew for each widget, so the pool lives on `globalThis`, where
 * the view of a re-run cell finds its predecessor's worker.
 */
interface WorkerPool {
  idle: Map<string, LayoutWorker>;
  live: Map<string, number>;
}

const POOL_KEY = Symbol.for("nbviz.layoutWorkerPool");

function workerPool(): WorkerPool {
  const global = globalThis as typeof globalThis & { [POOL_KEY]?: WorkerPool };
  global[POOL_KEY] ??= { idle: new Map(), live: new Map() };
  return global[POOL_KEY];
}

/** A Web Worker made from bundled source text (a Blob URL): anywidget loads one ESM file. */
function startWorker(source: string): LayoutWorker {
  const { live } = workerPool();
  live.set(source, (live.get(source) ?? 0) + 1);
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const started = { worker: new Worker(url), url, ready: false, nextId: 1 };
  started.worker.addEventListener("message", () => (started.ready = true), { once: true });
  return started;
}

function stopWorker(source: string, { worker, url }: LayoutWorker): void {
  const { live } = workerPool();
  live.set(source, (live.get(source) ?? 1) - 1);
  worker.terminate();
  URL.revokeObjectURL(url);
}

/**
 * Starts a worker for `source` and leaves it idle for the next engine, so that it parses ELK
 * while the rest of the view loads; nothing when the page has one already (a re-run cell's
 * new view takes its predecessor's, once that one is closed).
 */
export function prestartWorker(source: string): void {
  const { idle, live } = workerPool();
  if ((live.get(source) ?? 0) === 0) idle.set(source, startWorker(source));
}

export function createWorkerEngine(source: string): LayoutEngine {
  const { idle } = workerPool();
  const started = idle.get(source) ?? startWorker(source);
  idle.delete(source);
  const { worker } = started;
  const pending = new Map<number, { resolve(r: LayoutResult): void; reject(e: Error): void }>();
  worker.onmessage = (event: MessageEvent<WorkerResponse>) => {
    const msg = event.data;
    const waiter = pending.get(msg.id);
    if (waiter === undefined) return; // answered after dispose: drop
    pending.delete(msg.id);
    if ("error" in msg) waiter.reject(new Error(msg.error));
    else waiter.resolve(msg.result);
  };
  worker.onerror = (event) => {
    for (const waiter of pending.values()) waiter.reject(new Error(event.message));
    pending.clear();
  };
  return {
    kind: "worker",
    ready: () => started.ready,
    compute(request) {
      const id = started.nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, request } satisfies WorkerRequest);
      });
    },
    dispose() {
      // Parked when nothing is in flight, or while the worker still loads ELK (what it has
      // queued is a first view's layout: cheaper to finish than loading ELK again); one idle
      // worker per page at most. A worker laying out for nobody is ended.
      const park = (pending.size === 0 || !started.ready) && !idle.has(source);
      for (const waiter of pending.values()) waiter.reject(new Error("layout disposed"));
      pending.clear();
      if (!park) {
        stopWorker(source, started);
        return;
      }
      worker.onmessage = null;
      worker.onerror = null;
      idle.set(source, started);
    },
  };
}

function hasWorker(): boolean {
  return WORKER_SOURCE !== "" && typeof Worker !== "undefined" && typeof Blob !== "undefined";
}

/** Starts the bundle's worker ahead of the first view, where the page has workers. */
export function prestartLayoutWorker(): void {
  if (hasWorker()) prestartWorker(WORKER_SOURCE);
}

/**
 * The worker when the bundle carries one and the page has workers; otherwise `fallback` (an
 * in-process computation, meant for vitest/jsdom only).
 */
export function createLayoutEngine(fallback?: LayoutCompute): LayoutEngine {
  if (hasWorker()) return createWorkerEngine(WORKER_SOURCE);
  if (fallback === undefined) throw new Error("nbviz: no layout worker in this build");
  return { kind: "in-process", compute: fallback, dispose() {} };
}

/** An open group's size: its level's layout, a header and padding. */
function groupSize(result: LayoutResult): Size {
  return { w: result.width + 2 * GROUP_PAD, h: result.height + GROUP_HEADER + GROUP_PAD };
}

export interface LevelLayout {
  level: Level;
  result: LayoutResult;
}

export interface FullLayout {
  levels: Map<string, LevelLayout>;
  /** Size of every visible box (open groups: their layout plus header and padding). */
  sizes: Map<string, Size>;
}

export interface LayouterOptions {
  /** Size of a box of `graph` that is not an open group. */
  measure(boxId: string, graph: VisibleGraph): Size;
  /** Width of an edge's label, 0 for none. */
  labelWidth(edge: Level["edges"][number]): number;
  /**
   * Share results between levels with equal content (identical blocks); default true. False
   * still caches per level, keyed by the level's id as well.
   */
  share?: boolean;
}

export class Layouter {
  private readonly cache = new Map<string, Promise<LayoutResult>>();
  private generation = 0;
  /** Levels computed (cache misses) since creation, for tests and benchmarks. */
  computed = 0;

  constructor(
    private readonly engine: LayoutEngine,
    private readonly options: LayouterOptions,
  ) {}

  /** Lays out every level of `graph`; null when a later call superseded this one. */
  async layout(graph: VisibleGraph): Promise<FullLayout | null> {
    const generation = ++this.generation;
    const sizes = this.closedSizes(graph);
    const levels = new Map<string, LevelLayout>();
    const run = async (id: string): Promise<boolean> => {
      const level = graph.levels.get(id);
      if (level === undefined) return true;
      const open = level.children.filter((c) => graph.levels.has(c));
      const done = await Promise.all(open.map(run));
      if (done.includes(false) || generation !== this.generation) return false;
      const request = this.request(level, sizes);
      const result = await this.compute(request, this.options.share === false ? id : "");
      if (generation !== this.generation) return false;
      levels.set(id, { level, result });
      sizes.set(id, groupSize(result));
      return true;
    };
    const ok = await run(ROOT_BOX);
    return ok && generation === this.generation ? { levels, sizes } : null;
  }

  /**
   * A rough layout of `graph` (quick-layout.ts) made at once and not cached, for a first paint
   * that need not wait for a starting engine; null once the engine is ready, or for a graph of
   * more than QUICK_LIMIT boxes.
   */
  quick(graph: VisibleGraph): FullLayout | null {
    if (this.engine.ready?.() !== false || graph.boxes.size > QUICK_LIMIT) return null;
    const sizes = this.closedSizes(graph);
    const levels = new Map<string, LevelLayout>();
    const run = (id: string): void => {
      const level = graph.levels.get(id);
      if (level === undefined) return;
      for (const c of level.children) run(c);
      const result = quickLayout(this.request(level, sizes));
      levels.set(id, { level, result });
      sizes.set(id, groupSize(result));
    };
    run(ROOT_BOX);
    return { levels, sizes };
  }

  /** The size of every box of `graph` that is not an open group. */
  private closedSizes(graph: VisibleGraph): Map<string, Size> {
    const sizes = new Map<string, Size>();
    for (const level of graph.levels.values()) {
      for (const c of level.children)
        if (!graph.levels.has(c)) sizes.set(c, this.options.measure(c, graph));
    }
    return sizes;
  }

  /**
   * Lays out one level of `graph` ahead of need, into the cache (so that opening it later, or
   * an identical block, costs only its ancestors' layouts). The level's children must all be
   * closed; otherwise nothing is done.
   */
  async prefetch(graph: VisibleGraph, id: string): Promise<void> {
    const level = graph.levels.get(id);
    if (level === undefined || level.children.some((c) => graph.levels.has(c))) return;
    const sizes = new Map(level.children.map((c) => [c, this.options.measure(c, graph)]));
    await this.compute(this.request(level, sizes), this.options.share === false ? id : "");
  }

  private request(level: Level, sizes: Map<string, Size>): LayoutRequest {
    const anchors = levelAnchors(level);
    const local = new Map([...level.children, ...anchors].map((c, i) => [c, i]));
    const children: LayoutRequest["children"] = level.children.map((c) => {
      const size = sizes.get(c) ?? { w: 80, h: 40 };
      return { w: Math.round(size.w), h: Math.round(size.h) };
    });
    for (const a of anchors) {
      children.push({ w: ANCHOR_SIZE, h: ANCHOR_SIZE, c: a === ANCHOR_IN ? "first" : "last" });
    }
    return {
      children,
      edges: level.edges.map((e) => {
        const lw = Math.round(this.options.labelWidth(e));
        return {
          s: local.get(e.src) ?? 0,
          t: local.get(e.dst) ?? 0,
          lw,
          lh: lw > 0 ? LABEL_HEIGHT : 0,
        };
      }),
    };
  }

  private compute(request: LayoutRequest, scope: string): Promise<LayoutResult> {
    const key = `${scope}|${JSON.stringify(request)}`;
    let result = this.cache.get(key);
    if (result === undefined) {
      this.computed += 1;
      result = this.engine.compute(request);
      result.catch(() => this.cache.delete(key));
    } else {
      this.cache.delete(key); // re-inserted below: most recently used last
    }
    this.cache.set(key, result);
    for (const oldest of this.cache.keys()) {
      if (this.cache.size <= CACHE_LIMIT) break;
      this.cache.delete(oldest);
    }
    return result;
  }
}
