/**
 * SVG for a laid-out visible graph: one `<g>` per level (edges below boxes), nested inside
 * open groups' containers. Boxes, edges and labels are created lazily, when first scrolled
 * into view (see cull.ts): a fully expanded 3,000-node graph seen through a window creates
 * only what the window shows. Text only through textContent (names are user-controlled).
 * A level's drawing is reused while its layout and boxes are unchanged.
 *
 * Hooks: `.nbviz-box[data-box][data-kind]` (leaf, group, open, fold; `data-name` on module boxes,
 * the first module's of a fold), `[data-toggle]` on a
 * group's toggle, `.nbviz-edge`, `.nbviz-edge-label`.
 */

import { s } from "../draw/dom";
import {
  boxLines,
  boxText,
  edgeLabel,
  LINE_HEIGHT,
  labelWidth,
  localName,
  nodeColor,
  pageTitle,
} from "./labels";
import { ANCHOR_SIZE, type FullLayout, GROUP_HEADER, GROUP_PAD, type LevelLayout } from "./layout";
import type { LayoutResult } from "./layout-types";
import { ANCHOR_IN, type Box, type GraphIndex, levelAnchors, type VisibleGraph } from "./model";

/** Something drawn in a level: made on first need, with its rectangle in level coordinates. */
export interface LazyItem {
  el: SVGElement | null;
  make(): SVGElement;
  parent: SVGGElement;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** An item with its rectangle in root coordinates. */
export interface Placed extends Rect {
  item: LazyItem;
}

/** One level's drawing; nested open groups' levels go into `slots`. */
export interface DrawnLevel {
  result: LayoutResult;
  /** Box ids and kinds, in order: a change redraws the level. */
  boxes: string;
  el: SVGGElement;
  slots: Map<string, SVGGElement>;
  items: LazyItem[];
}

export class DrawCache {
  readonly levels = new Map<string, DrawnLevel>();
  /** Box elements created so far, by box id (the latest one for each id). */
  readonly boxEls = new Map<string, SVGGElement>();
  /** Levels drawn (not reused) by the last draw. */
  drawn = 0;
  /** Called for each box element when it is created (to apply marks). */
  onCreate: (id: string, el: SVGGElement) => void = () => {};

  register(id: string, el: SVGGElement): SVGGElement {
    this.boxEls.set(id, el);
    this.onCreate(id, el);
    return el;
  }
}

function pathData(points: readonly number[]): string {
  let d = "";
  for (let i = 0; i + 1 < points.length; i += 2) {
    d += `${i === 0 ? "M" : "L"}${Math.round(points[i] ?? 0)} ${Math.round(points[i + 1] ?? 0)}`;
  }
  return d;
}

/** Top-left corner of a label beside the middle of a polyline's longest segment. */
export function besideMiddle(points: readonly number[]): [number, number] {
  let best = 0;
  let at = 0;
  for (let i = 0; i + 3 < points.length; i += 2) {
    const dx = (points[i + 2] ?? 0) - (points[i] ?? 0);
    const dy = (points[i + 3] ?? 0) - (points[i + 1] ?? 0);
    const length = dx * dx + dy * dy;
    if (length > best) {
      best = length;
      at = i;
    }
  }
  const mx = ((points[at] ?? 0) + (points[at + 2] ?? 0)) / 2;
  const my = ((points[at + 1] ?? 0) + (points[at + 3] ?? 0)) / 2;
  return [mx + 4, my - 6];
}

function edgeItems(level: LevelLayout, marker: string, parent: SVGGElement, items: LazyItem[]) {
  level.level.edges.forEach((edge, i) => {
    const route = level.result.edges[i];
    if (route === undefined || route.points.length < 4) return;
    const pts = route.points;
    const xs = pts.filter((_, j) => j % 2 === 0);
    const ys = pts.filter((_, j) => j % 2 === 1);
    items.push({
      el: null,
      parent,
      make: () =>
        s("path", {
          class: "nbviz-edge",
          attrs: { d: pathData(pts), "marker-end": `url(#${marker})` },
        }),
      x0: Math.min(...xs),
      y0: Math.min(...ys),
      x1: Math.max(...xs),
      y1: Math.max(...ys),
    });
    if (edge.shape.length > 0 || edge.count > 1) {
      const text = edgeLabel(edge.shape, edge.dtype, edge.count);
      // ELK's label position when it placed one, else beside the middle of the longest segment
      const [lx, ly] = Number.isFinite(route.lx) ? [route.lx, route.ly] : besideMiddle(pts);
      items.push({
        el: null,
        parent,
        make: () =>
          s("text", {
            class: "nbviz-edge-label",
            attrs: { x: Math.round(lx), y: Math.round(ly) + 9 },
            text,
          }),
        x0: lx,
        y0: ly,
        x1: lx + labelWidth(text),
        y1: ly + 12,
      });
    }
  });
}

function drawBox(
  index: GraphIndex,
  box: Box,
  size: { w: number; h: number },
  slot: SVGGElement | null,
): SVGGElement {
  const node = index.nodes[box.node];
  const text = boxText(index, box);
  const g = s("g", {
    class: `nbviz-box nbviz-box-${box.kind} nbviz-kind-${node?.kind ?? "op"}`,
    title: text.tooltip,
    // data-name: the module's qualified name, for tests and user styles (an attribute: inert).
    attrs: {
      "data-box": box.id,
      "data-kind": box.kind,
      "data-name": node?.kind === "module" && box.page === undefined ? node.name : undefined,
    },
  });
  const fill = node && box.page === undefined ? nodeColor(node) : "#eee";
  if (box.kind === "fold") {
    for (const off of [6, 3]) {
      g.append(
        s("rect", {
          class: "nbviz-box-shadow",
          attrs: { x: off, y: off, width: size.w, height: size.h, rx: 4, fill },
        }),
      );
    }
  }
  g.append(
    s("rect", {
      class: box.kind === "open" ? "nbviz-container" : "nbviz-box-rect",
      attrs: { width: size.w, height: size.h, rx: 4, ...(box.kind === "open" ? {} : { fill }) },
    }),
  );
  if (box.kind === "open") {
    const title = box.page
      ? pageTitle(box.page)
      : `${localName(index, box.node)} · ${node?.cls ?? ""}`;
    g.append(
      s("text", { class: "nbviz-toggle", attrs: { x: 6, y: 16, "data-toggle": "" }, text: "▾" }),
      s("text", { class: "nbviz-box-title", attrs: { x: 20, y: 16 }, text: title }),
    );
    if (slot) g.append(slot);
    return g;
  }
  boxLines(text).forEach((line, i) => {
    g.append(
      s("text", { class: line.cls, attrs: { x: 10, y: 16 + i * LINE_HEIGHT }, text: line.text }),
    );
  });
  if (box.kind === "group" || box.kind === "page") {
    g.append(
      s("text", {
        class: "nbviz-toggle",
        attrs: { x: size.w - 14, y: 16, "data-toggle": "" },
        text: "▸",
      }),
    );
  }
  return g;
}

/** Draws one level (reusing the cached drawing when its layout and boxes are unchanged). */
export function drawLevel(
  index: GraphIndex,
  graph: VisibleGraph,
  layout: FullLayout,
  id: string,
  cache: DrawCache,
  marker: string,
): DrawnLevel | undefined {
  const level = layout.levels.get(id);
  if (level === undefined) return undefined;
  const boxes = level.level.children.map((c) => `${c}:${graph.boxes.get(c)?.kind}`).join(",");
  const cached = cache.levels.get(id);
  if (cached && cached.result === level.result && cached.boxes === boxes) return cached;
  cache.drawn += 1;
  const items: LazyItem[] = [];
  const slots = new Map<string, SVGGElement>();
  const edgesG = s("g", { class: "nbviz-edges" });
  const boxesG = s("g", { class: "nbviz-boxes" });
  const g = s("g", { class: "nbviz-level", attrs: { "data-level": id } }, edgesG, boxesG);
  edgeItems(level, marker, edgesG, items);
  level.level.children.forEach((c, i) => {
    const box = graph.boxes.get(c);
    const pos = level.result.nodes[i];
    const size = layout.sizes.get(c);
    if (box === undefined || pos === undefined || size === undefined) return;
    const transform = `translate(${Math.round(pos.x)},${Math.round(pos.y)})`;
    const make = (slot: SVGGElement | null) => (): SVGGElement => {
      const el = drawBox(index, box, size, slot);
      el.setAttribute("transform", transform);
      return cache.register(c, el);
    };
    const rect = { x0: pos.x, y0: pos.y, x1: pos.x + size.w + 6, y1: pos.y + size.h + 6 };
    if (box.kind === "open") {
      // The slot that holds the nested level is made now (assemble fills it); the container
      // around it only once in view, like any box: until then the nested level is detached,
      // and costs the browser no style or layout (500 open groups at once: 200 ms).
      const slot = s("g", { attrs: { transform: `translate(${GROUP_PAD},${GROUP_HEADER})` } });
      slots.set(c, slot);
      items.push({ el: null, parent: boxesG, make: make(slot), ...rect });
    } else {
      items.push({ el: null, parent: boxesG, make: make(null), ...rect });
    }
  });
  levelAnchors(level.level).forEach((a, k) => {
    const pos = level.result.nodes[level.level.children.length + k];
    if (pos === undefined) return;
    const r = ANCHOR_SIZE / 2;
    boxesG.append(
      s("circle", {
        class: `nbviz-anchor nbviz-anchor-${a === ANCHOR_IN ? "in" : "out"}`,
        attrs: { cx: Math.round(pos.x + r), cy: Math.round(pos.y + r), r },
      }),
    );
  });
  const drawn: DrawnLevel = { result: level.result, el: g, boxes, slots, items };
  cache.levels.set(id, drawn);
  return drawn;
}

/** Levels of a layout, children before parents. */
export function postOrder(layout: FullLayout, id: string, out: string[] = []): string[] {
  for (const c of layout.levels.get(id)?.level.children ?? []) {
    if (layout.levels.has(c)) postOrder(layout, c, out);
  }
  out.push(id);
  return out;
}

/**
 * Puts each level's drawing into its parent's slot and returns the root's, with every item
 * placed in root coordinates (and each box's rectangle, for centring on it).
 */
export function assemble(
  layout: FullLayout,
  cache: DrawCache,
  root: string,
): { el: SVGGElement | undefined; placed: Placed[]; rects: Map<string, Rect> } {
  const placed: Placed[] = [];
  const rects = new Map<string, Rect>();
  const place = (id: string, ox: number, oy: number): void => {
    const drawn = cache.levels.get(id);
    const level = layout.levels.get(id);
    if (drawn === undefined || level === undefined) return;
    for (const item of drawn.items) {
      placed.push({ item, x0: item.x0 + ox, y0: item.y0 + oy, x1: item.x1 + ox, y1: item.y1 + oy });
    }
    level.level.children.forEach((c, i) => {
      const pos = level.result.nodes[i];
      if (pos === undefined) return;
      const size = layout.sizes.get(c) ?? { w: 0, h: 0 };
      const x0 = pos.x + ox;
      const y0 = pos.y + oy;
      rects.set(c, { x0, y0, x1: x0 + size.w, y1: y0 + size.h });
      const slot = drawn.slots.get(c);
      const child = cache.levels.get(c);
      if (slot === undefined || child === undefined) return;
      if (slot.firstChild !== child.el || slot.childNodes.length !== 1) {
        slot.replaceChildren(child.el);
      }
      place(c, ox + pos.x + GROUP_PAD, oy + pos.y + GROUP_HEADER);
    });
  };
  place(root, 0, 0);
  return { el: cache.levels.get(root)?.el, placed, rects };
}
