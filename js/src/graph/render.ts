/**
 * The structure diagram: a dataflow graph drawn as nested boxes in SVG, with expand/collapse,
 * fold/unfold, search, neighbour highlight, selection, zoom, pan and fit. Layout runs in a
 * worker (layout.ts); everything sits under one `<g transform>`, so pan and zoom change one
 * attribute per animation frame.
 *
 * Hooks: `.nbviz.nbviz-graph`; `svg .nbviz-viewport`; boxes `.nbviz-box[data-box]` with
 * `.is-selected`, `.is-highlighted`, `.is-neighbour`; `svg.is-far` when zoomed out (no text).
 */

import { s, viewRoot } from "../draw/dom";
import { Culler, type Rect, visibleRect } from "./cull";
import { assemble, DrawCache, drawLevel, postOrder } from "./draw";
import { ARROWS, nearestInDirection } from "./keys";
import { boxText, edgeLabel, labelWidth, measureBox } from "./labels";
import { createLayoutEngine, type FullLayout, type LayoutEngine, Layouter } from "./layout";
import type { LayoutCompute } from "./layout-types";
import {
  ancestors,
  type Box,
  type GraphIndex,
  indexGraph,
  isGroup,
  nodeBox,
  pageOf,
  ROOT,
  ROOT_BOX,
  type VisibleGraph,
  visibleGraph,
} from "./model";
import { attachPanZoom, type Transform } from "./pan-zoom";
import { findModule, neighbours, type SearchResult, search } from "./query";
import type { WireGraph } from "./wire";

export interface GraphViewData {
  graph: WireGraph;
  /** Qualified name of the selected module, or null. */
  selected: string | null;
}

export interface GraphViewOptions {
  onSelect?: (name: string) => void;
  /** The layout engine; default: the bundled worker, else `fallback`. */
  engine?: LayoutEngine;
  /** In-process layout for environments without the bundled worker (vitest). */
  fallback?: LayoutCompute;
  /** Let ELK make room for edge labels (slower, taller); default false: labels beside edges. */
  layoutLabels?: boolean;
  /** Share layouts between identical blocks (default true; false for benchmarks). */
  shareLayouts?: boolean;
  /** Search matches revealed (groups expanded, folds unfolded) up to this many. */
  revealLimit?: number;
  /** The first expansion state (default: the top-level modules, or the single wrapper open). */
  initial?: (index: GraphIndex) => Expansion;
  /** Called with the expansion state whenever it changes (the user opened a group, ...). */
  onExpansion?: (expansion: Expansion, index: GraphIndex) => void;
}

/** Which groups are open (node ids) and which folds are unfolded (fold keys). */
export interface Expansion {
  expanded: ReadonlySet<number>;
  unfolded: ReadonlySet<string>;
}

export type { Transform };

/** Timings of the last refresh, for benchmarks and the status line. */
export interface ViewStats {
  /** From the state change to the layout in hand (visible graph + worker). */
  layoutMs: number;
  /** Building or reusing the SVG (main thread). */
  drawMs: number;
  /** Levels sent to the layout engine so far (cache misses). */
  levelsComputed: number;
  /** Levels whose elements the last draw rebuilt. */
  levelsDrawn: number;
  /** Boxes in the visible graph (drawn when they come into view). */
  boxes: number;
}

export interface GraphView {
  el: HTMLDivElement;
  readonly stats: ViewStats;
  readonly index: GraphIndex;
  update(next: Partial<GraphViewData>): void;
  /** Resolves when the latest state is laid out and drawn. */
  idle(): Promise<void>;
  setExpanded(group: number, open: boolean): Promise<void>;
  /** Replaces the expansion state. */
  setExpansion(next: Expansion): Promise<void>;
  /** The current expansion state. */
  expansion(): Expansion;
  setUnfolded(key: string, unfolded: boolean): Promise<void>;
  expandAll(): Promise<void>;
  collapseAll(): Promise<void>;
  /** Highlights the matches (revealing them when few) and returns them. */
  search(query: string): Promise<SearchResult>;
  /** Highlights the boxes showing these node ids (empty: clear). */
  highlight(ids: readonly number[]): void;
  /** Fills module boxes by qualified name (the graph overlay); null restores their colours. */
  setColors(colors: ReadonlyMap<string, string> | null): void;
  /** Shows the selection of a module chosen elsewhere (revealing it); null clears. */
  select(name: string | null): Promise<void>;
  fit(): void;
  getTransform(): Transform;
  setTransform(t: Transform): void;
  destroy(): void;
}

/** Sets (or clears) the fill of a module box's own rectangle from `colors`; no allocation. */
export function paintBox(el: Element, colors: ReadonlyMap<string, string> | null): void {
  const name = el.getAttribute("data-name");
  if (name === null) return;
  for (const child of el.children) {
    if (!child.classList.contains("nbviz-box-rect")) continue;
    const fill = colors === null ? undefined : colors.get(name);
    (child as SVGElement).style.fill = fill ?? "";
  }
}

let markerCount = 0;
const MARKS = ["is-highlighted", "is-neighbour", "is-selected", "is-focused"];
/** The first view is not zoomed out further than this. */
const READABLE = 0.7;
/** Below this zoom, text is hidden. */
const FAR = 0.45;
/** Longest slice of drawing work before yielding to the browser. */
const SLICE_MS = 25;
/**
 * Elements uncovered per frame, and the script time spent making them (zooming out over a
 * large graph shows it over a few frames; the browser's style and paint work follows suit).
 */
const SHOW_PER_FRAME = 120;
const SHOW_MS = 12;

/** Group classes laid out ahead per view change, and after how long a pause (prefetchGroups). */
const PREFETCH_LIMIT = 24;
const PREFETCH_QUIET_MS = 300;

/** Resolves when the page is idle (or soon, where it cannot tell). */
function idleTime(): Promise<void> {
  if (typeof requestIdleCallback === "function") {
    return new Promise((resolve) => requestIdleCallback(() => resolve(), { timeout: 500 }));
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Lets the browser run other tasks (input, paint) before continuing. */
function yieldTask(): Promise<void> {
  if (typeof MessageChannel === "undefined") return new Promise((r) => setTimeout(r, 0));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** Default expansion: nothing, unless the top level is one module wrapping everything. */
function defaultExpanded(index: GraphIndex): Set<number> {
  const top = index.children.get(ROOT) ?? [];
  const groups = top.filter((id) => index.nodes[id]?.kind === "module");
  const only = groups[0];
  return groups.length === 1 && only !== undefined && isGroup(index, only)
    ? new Set([only])
    : new Set();
}

export function createGraphView(data: GraphViewData, options: GraphViewOptions = {}): GraphView {
  const engine = options.engine ?? createLayoutEngine(options.fallback);
  const ownsEngine = options.engine === undefined;
  const marker = `nbviz-arrow-${++markerCount}`;
  const viewport = s("g", { class: "nbviz-viewport" });
  const svg = s(
    "svg",
    {
      class: "nbviz-graph-svg",
      attrs: {
        role: "application",
        tabindex: 0,
        "aria-roledescription": "diagram",
        "aria-label":
          "Model structure: arrow keys move between boxes, Enter opens or closes, Escape " +
          "goes to the enclosing group",
      },
    },
    s(
      "defs",
      {},
      s(
        "marker",
        {
          attrs: {
            id: marker,
            viewBox: "0 0 10 10",
            refX: 9,
            refY: 5,
            markerWidth: 7,
            markerHeight: 7,
            orient: "auto-start-reverse",
          },
        },
        s("path", { class: "nbviz-arrow", attrs: { d: "M0 0L10 5L0 10z" } }),
      ),
    ),
    viewport,
  );
  const status = s("text", { class: "nbviz-graph-status", attrs: { x: 8, y: 18 } });
  svg.append(status);
  const el = viewRoot("graph", svg);

  let current: GraphViewData = { ...data };
  let index = indexGraph(current.graph);
  const initial = options.initial?.(index);
  let expanded = new Set(initial?.expanded ?? defaultExpanded(index));
  let unfolded = new Set(initial?.unfolded ?? []);
  let vg: VisibleGraph = visibleGraph(index, expanded, unfolded);
  let layout: FullLayout | null = null;
  let cache = newCache();
  let rects = new Map<string, Rect>();
  let highlighted: readonly number[] = [];
  /** The box keyboard navigation is on (box id), or null. */
  let focused: string | null = null;
  let neighbourIds: readonly number[] = [];
  let transform: Transform = { k: 1, x: 0, y: 0 };
  let fitted = false;
  /** The first view while it shows a quick layout (Layouter.quick): refitted unless moved. */
  let quickView: Transform | null = null;
  let frame = 0;
  let pending: Promise<void> = Promise.resolve();
  let destroyed = false;
  const culler = new Culler();
  let size = { w: 800, h: 480 };
  const stats: ViewStats = {
    layoutMs: 0,
    drawMs: 0,
    levelsComputed: 0,
    levelsDrawn: 0,
    boxes: 0,
  };

  const layouter = (): Layouter =>
    new Layouter(engine, {
      measure(id, graph) {
        const box = graph.boxes.get(id);
        if (box === undefined) return { w: 60, h: 30 };
        return measureBox(boxText(index, box), box.kind === "group" || box.kind === "page");
      },
      // Shape labels are drawn beside their edges rather than laid out by ELK: label dummies
      // double the layers ELK works through, and the layout grows much taller.
      labelWidth: (e) =>
        options.layoutLabels ? labelWidth(edgeLabel(e.shape, e.dtype, e.count)) : 0,
      share: options.shareLayouts ?? true,
    });
  let lay = layouter();

  /** Shows what is in view (a slice per frame); resolves `idle()` waiters when done. */
  let uncovering = false;
  let shownWaiters: (() => void)[] = [];
  function uncover(): void {
    const rect = visibleRect(transform, size.w, size.h);
    const waiting = culler.update(rect, SHOW_PER_FRAME, performance.now() + SHOW_MS) > 0;
    // a frame still pending moves the view (fit, pan): what it shows is not shown yet
    if (waiting || frame !== 0) {
      uncovering = true;
      schedule();
      return;
    }
    uncovering = false;
    const waiters = shownWaiters;
    shownWaiters = [];
    for (const resolve of waiters) resolve();
  }
  function shown(): Promise<void> {
    if (!uncovering) return Promise.resolve();
    return new Promise((resolve) => shownWaiters.push(resolve));
  }

  function schedule(): void {
    if (frame !== 0 || destroyed) return;
    uncovering = true; // until the frame has shown what is in view
    const raf = typeof requestAnimationFrame === "function" ? requestAnimationFrame : null;
    const apply = (): void => {
      frame = 0;
      viewport.setAttribute(
        "transform",
        `translate(${transform.x.toFixed(1)},${transform.y.toFixed(1)}) scale(${transform.k.toFixed(4)})`,
      );
      svg.classList.toggle("is-far", transform.k < FAR);
      uncover();
    };
    if (raf) frame = raf(apply);
    else apply();
  }

  /** Reads the view's size (a layout flush: only on draw, fit and resize, never per frame). */
  function measure(): { w: number; h: number } {
    const rect = svg.getBoundingClientRect();
    size = { w: rect.width || 800, h: rect.height || 480 };
    return size;
  }

  function fitToView(): void {
    const root = layout?.levels.get(ROOT_BOX)?.result;
    if (!root) return;
    const { w, h } = measure();
    const k = Math.min(
      1.5,
      (0.95 * w) / Math.max(1, root.width),
      (0.95 * h) / Math.max(1, root.height),
    );
    transform = { k, x: (w - root.width * k) / 2, y: (h - root.height * k) / 2 };
    schedule();
  }

  /** The first view: fitted, but never below a readable zoom (then the top of the graph). */
  function initialView(): void {
    fitToView();
    const root = layout?.levels.get(ROOT_BOX)?.result;
    if (!root || transform.k >= READABLE) return;
    const k = READABLE;
    const x = root.width * k <= size.w ? (size.w - root.width * k) / 2 : 8;
    transform = { k, x, y: 8 };
    schedule();
  }

  /** Classes per box id (search matches, neighbours, selection), applied as boxes appear. */
  let marks = new Map<string, string[]>();

  function applyMarks(): void {
    const next = new Map<string, string[]>();
    const mark = (ids: readonly number[], cls: string): void => {
      for (const id of ids) {
        const box = vg.boxOf[id];
        if (box !== undefined) next.set(box, [...(next.get(box) ?? []), cls]);
      }
    };
    mark(highlighted, "is-highlighted");
    mark(neighbourIds, "is-neighbour");
    const sel = current.selected === null ? -1 : findModule(index, current.selected);
    mark(sel >= 0 ? [sel] : [], "is-selected");
    if (focused !== null && vg.boxes.has(focused)) {
      next.set(focused, [...(next.get(focused) ?? []), "is-focused"]);
    }
    for (const cls of MARKS)
      for (const el of svg.querySelectorAll(`.${cls}`)) el.classList.remove(cls);
    marks = next;
    for (const [box, classes] of marks) cache.boxEls.get(box)?.classList.add(...classes);
  }

  /** Overlay fills by module name, applied as boxes appear. */
  let colors: ReadonlyMap<string, string> | null = null;

  function newCache(): DrawCache {
    const c = new DrawCache();
    c.onCreate = (id, el) => {
      const classes = marks.get(id);
      if (classes) el.classList.add(...classes);
      if (colors !== null) paintBox(el, colors);
    };
    return c;
  }

  /**
   * Builds the drawing in slices of about SLICE_MS, yielding between them; false if stale.
   * `quick`: a stand-in layout, to be replaced by the engine's.
   */
  async function draw(next: FullLayout, mine: VisibleGraph, quick = false): Promise<boolean> {
    const t0 = performance.now();
    let slice = t0;
    cache.drawn = 0;
    for (const id of postOrder(next, ROOT_BOX)) {
      drawLevel(index, mine, next, id, cache, marker);
      if (performance.now() - slice > SLICE_MS) {
        await yieldTask();
        if (mine !== vg || destroyed) return false;
        slice = performance.now();
      }
    }
    layout = next;
    for (const id of cache.levels.keys()) if (!next.levels.has(id)) cache.levels.delete(id);
    const assembled = assemble(next, cache, ROOT_BOX);
    const root = assembled.el;
    rects = assembled.rects;
    culler.set(assembled.placed);
    if (!fitted || (quickView !== null && quickView === transform)) {
      fitted = true;
      initialView();
    }
    quickView = quick ? transform : null;
    measure();
    uncover();
    if (root && (viewport.firstChild !== root || viewport.childNodes.length !== 1)) {
      viewport.replaceChildren(root);
    }
    applyMarks();
    status.textContent = "";
    stats.drawMs = performance.now() - t0;
    stats.levelsDrawn = cache.drawn;
    stats.levelsComputed = lay.computed;
    stats.boxes = mine.boxes.size;
    // only once the user pauses: a click waits for a layout already running in the worker
    if (!quick) setTimeout(() => void prefetchGroups(mine), PREFETCH_QUIET_MS);
    return true;
  }

  /**
   * In idle time, lays out (in the worker) the inside of the first closed group of each
   * class shown, one at a time, so that a first click on any of them finds its level cached.
   * Stops when the view changes; a click waits for one such layout at most.
   */
  async function prefetchGroups(mine: VisibleGraph): Promise<void> {
    const classes = new Set<string>();
    for (const box of mine.boxes.values()) {
      const sig = index.nodes[box.node]?.sig ?? "";
      if (box.kind !== "group" || classes.has(sig)) continue;
      if (classes.size >= PREFETCH_LIMIT) return;
      classes.add(sig);
      await idleTime();
      if (mine !== vg || destroyed) return;
      const ahead = visibleGraph(index, new Set([...expanded, box.node]), unfolded);
      await lay.prefetch(ahead, nodeBox(box.node)).catch(() => undefined);
    }
  }

  /** Recomputes the visible graph and lays it out; stale layouts are dropped. */
  function refresh(): Promise<void> {
    vg = visibleGraph(index, expanded, unfolded);
    options.onExpansion?.({ expanded, unfolded }, index);
    const mine = vg;
    const t0 = performance.now();
    status.textContent = layout === null ? "Laying out…" : "";
    const run = lay.layout(mine).then(
      async (next) => {
        if (next === null || mine !== vg || destroyed) return;
        stats.layoutMs = performance.now() - t0;
        await draw(next, mine);
      },
      (error: unknown) => {
        status.textContent = `Layout failed: ${String(error)}`;
      },
    );
    // A fresh worker loads ELK for most of a second: a small diagram's first paint shows a
    // quick layout meanwhile.
    const quick = layout === null ? lay.quick(mine) : null;
    if (quick !== null) void draw(quick, mine, true);
    pending = run;
    return run;
  }

  function reveal(ids: readonly number[]): boolean {
    let changed = false;
    for (const id of ids) {
      for (const a of [id, ...ancestors(index, id)]) {
        if (a !== id && !expanded.has(a)) {
          expanded.add(a);
          changed = true;
        }
        const fold = index.foldOf.get(a);
        for (const key of [fold?.key, pageOf(index, a)]) {
          if (key !== undefined && !unfolded.has(key)) {
            unfolded.add(key);
            changed = true;
          }
        }
      }
    }
    return changed;
  }

  /** Pans so that the box is in the middle of the view, unless it is in view already. */
  function centerOn(boxId: string): void {
    const r = rects.get(boxId);
    if (r === undefined) return;
    const { k, x, y } = transform;
    const left = x + r.x0 * k;
    const top = y + r.y0 * k;
    const right = x + r.x1 * k;
    const bottom = y + r.y1 * k;
    if (left >= 0 && top >= 0 && right <= size.w && bottom <= size.h) return;
    transform = {
      k,
      x: size.w / 2 - ((r.x0 + r.x1) / 2) * k,
      y: size.h / 2 - ((r.y0 + r.y1) / 2) * k,
    };
    schedule();
  }

  async function select(name: string | null): Promise<void> {
    current = { ...current, selected: name };
    const id = name === null ? -1 : findModule(index, name);
    if (id >= 0 && reveal([id])) await refresh();
    applyMarks();
    const box = id >= 0 ? vg.boxOf[id] : undefined;
    if (box !== undefined) centerOn(box);
    await shown();
  }

  // Interaction: wheel zoom and drag pan (pan-zoom.ts); click toggles, unfolds, selects.
  const panZoom = attachPanZoom(
    svg,
    () => transform,
    (t) => {
      transform = t;
      schedule();
    },
  );
  svg.addEventListener("click", (event) => {
    if (panZoom.dragging()) return;
    const target = event.target instanceof Element ? event.target : null;
    const boxEl = target?.closest("[data-box]");
    const box = boxEl ? vg.boxes.get(boxEl.getAttribute("data-box") ?? "") : undefined;
    if (box === undefined) {
      neighbourIds = [];
      applyMarks();
      return;
    }
    if (box.fold !== undefined || box.kind === "page") {
      void activate(box);
      return;
    }
    if (box.page !== undefined) {
      if (target?.closest("[data-toggle]")) void view.setUnfolded(box.page.key, false);
      return;
    }
    if (target?.closest("[data-toggle]") && (box.kind === "group" || box.kind === "open")) {
      void view.setExpanded(box.node, box.kind === "group");
      return;
    }
    choose(box);
  });

  /** A box clicked or reached by keyboard: its inputs and outputs light up, a module is selected. */
  function choose(box: Box): void {
    if (box.page !== undefined) return; // a page is no layer
    const nb = neighbours(index, box.node);
    neighbourIds = [...nb.inputs, ...nb.outputs];
    const node = index.nodes[box.node];
    if (node?.kind === "module") {
      current = { ...current, selected: node.name };
      options.onSelect?.(node.name);
    }
    applyMarks();
  }

  /** Moves the keyboard focus to a box: marks it, brings it into view and chooses it. */
  function focusBox(id: string): void {
    const box = vg.boxes.get(id);
    if (box === undefined) return;
    focused = id;
    centerOn(id);
    choose(box);
  }

  /** Opens, closes or unfolds a box; with the keyboard on it, the focus follows inside. */
  async function activate(box: Box): Promise<void> {
    const follow = (id: string): void => {
      if (focused !== null) focusBox(id);
    };
    if (box.fold !== undefined) {
      await view.setUnfolded(box.fold.key, true);
      follow(nodeBox(box.fold.members[0] ?? box.node));
    } else if (box.page !== undefined) {
      const open = box.kind === "open";
      await view.setUnfolded(box.page.key, !open);
      follow(open ? box.id : (vg.levels.get(box.id)?.children[0] ?? box.id));
    } else if (box.kind === "group") {
      await view.setExpanded(box.node, true);
      follow(vg.levels.get(box.id)?.children[0] ?? box.id);
    } else if (box.kind === "open") {
      await view.setExpanded(box.node, false);
      follow(box.id);
    }
  }

  svg.addEventListener("keydown", (event) => {
    const dir = ARROWS[event.key];
    const box = focused === null ? undefined : vg.boxes.get(focused);
    if (dir !== undefined) {
      // open groups are containers: the arrows move between the boxes drawn inside them
      const closed = [...vg.boxes.values()].filter((b) => b.kind !== "open").map((b) => b.id);
      const next = box === undefined ? closed[0] : nearestInDirection(rects, box.id, dir, closed);
      if (next !== undefined && next !== null) focusBox(next);
    } else if ((event.key === "Enter" || event.key === " ") && box !== undefined) {
      void activate(box);
    } else if (event.key === "Escape" && box !== undefined && box.parent !== ROOT_BOX) {
      focusBox(box.parent);
    } else {
      return;
    }
    // handled here: neither the page nor the notebook's own shortcuts act on it
    event.preventDefault();
    event.stopPropagation();
  });

  const view: GraphView = {
    el,
    stats,
    get index() {
      return index;
    },
    update(next) {
      const previous = current;
      current = { ...current, ...next };
      if (current.graph !== previous.graph) {
        index = indexGraph(current.graph);
        expanded = defaultExpanded(index);
        unfolded = new Set();
        highlighted = [];
        neighbourIds = [];
        focused = null;
        cache = newCache();
        lay = layouter();
        layout = null;
        fitted = false;
        void refresh().then(() => select(current.selected));
      } else if (current.selected !== previous.selected) {
        void select(current.selected);
      }
    },
    idle: () => pending.then(shown),
    setExpanded(group, open) {
      if (open === expanded.has(group)) return pending;
      if (open) expanded.add(group);
      else expanded.delete(group);
      return refresh();
    },
    expansion: () => ({ expanded, unfolded }),
    setExpansion(next) {
      expanded = new Set(next.expanded);
      unfolded = new Set(next.unfolded);
      return refresh();
    },
    setUnfolded(key, value) {
      if (value === unfolded.has(key)) return pending;
      if (value) unfolded.add(key);
      else unfolded.delete(key);
      return refresh();
    },
    expandAll() {
      expanded = new Set([...index.children.keys()].filter((g) => g !== ROOT));
      unfolded = new Set(index.folds.map((f) => f.key));
      for (const id of index.nodes.keys()) {
        const page = pageOf(index, id);
        if (page !== undefined) unfolded.add(page);
      }
      return refresh();
    },
    collapseAll() {
      expanded = defaultExpanded(index);
      unfolded = new Set();
      return refresh();
    },
    async search(query) {
      const result = search(index, query);
      highlighted = result.matches;
      if (result.matches.length <= (options.revealLimit ?? 40) && reveal(result.matches)) {
        await refresh();
      }
      applyMarks();
      const first = result.matches[0];
      const box = first === undefined ? undefined : vg.boxOf[first];
      if (box !== undefined) centerOn(box);
      await shown();
      return result;
    },
    highlight(ids) {
      highlighted = [...ids];
      applyMarks();
    },
    setColors(next) {
      colors = next;
      for (const el of cache.boxEls.values()) paintBox(el, next);
    },
    select,
    fit: fitToView,
    getTransform: () => ({ ...transform }),
    setTransform(t) {
      transform = { ...t };
      schedule();
    },
    destroy() {
      destroyed = true;
      resize?.disconnect();
      panZoom.dispose();
      if (frame !== 0 && typeof cancelAnimationFrame === "function") cancelAnimationFrame(frame);
      if (ownsEngine) engine.dispose();
    },
  };

  const resize =
    typeof ResizeObserver === "function"
      ? new ResizeObserver(() => {
          panZoom.invalidate();
          measure();
          schedule();
        })
      : null;
  resize?.observe(svg);

  void refresh().then(() => select(current.selected));
  return view;
}
