/**
 * SVG for a laid-out visible graph: one `<g>` per level, nested inside open groups' containers.
 * Pure: (visible graph, layout) -> elements; text only through textContent (names are
 * user-controlled). A level's element is reused while its layout and its nested levels are.
 *
 * Hooks: `.nbviz-box[data-box][data-kind]` (leaf, group, open, fold), `[data-toggle]` on a
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
} from "./labels";
import { type FullLayout, GROUP_HEADER, GROUP_PAD, type LevelLayout } from "./layout";
import type { LayoutResult } from "./layout-types";
import type { Box, GraphIndex, VisibleGraph } from "./model";

/** An element to hide while off screen, with its rectangle in its level's coordinates. */
export interface CullItem {
  el: SVGElement;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** One level's drawing; nested open groups' levels go into `slots`. */
export interface DrawnLevel {
  result: LayoutResult;
  /** Box ids and kinds, in order: a change redraws the level. */
  boxes: string;
  el: SVGGElement;
  slots: Map<string, SVGGElement>;
  items: CullItem[];
}

export class DrawCache {
  readonly levels = new Map<string, DrawnLevel>();
  /** Levels drawn (not reused) by the last draw. */
  drawn = 0;
}

function pathData(points: readonly number[]): string {
  let d = "";
  for (let i = 0; i + 1 < points.length; i += 2) {
    d += `${i === 0 ? "M" : "L"}${Math.round(points[i] ?? 0)} ${Math.round(points[i + 1] ?? 0)}`;
  }
  return d;
}

function drawEdges(level: LevelLayout, marker: string, items: CullItem[]): SVGElement[] {
  const out: SVGElement[] = [];
  level.level.edges.forEach((edge, i) => {
    const route = level.result.edges[i];
    if (route === undefined || route.points.length < 4) return;
    const path = s("path", {
      class: "nbviz-edge",
      attrs: { d: pathData(route.points), "marker-end": `url(#${marker})` },
    });
    const xs = route.points.filter((_, j) => j % 2 === 0);
    const ys = route.points.filter((_, j) => j % 2 === 1);
    items.push({
      el: path,
      x0: Math.min(...xs),
      y0: Math.min(...ys),
      x1: Math.max(...xs),
      y1: Math.max(...ys),
    });
    out.push(path);
    if (Number.isFinite(route.lx)) {
      const text = edgeLabel(edge.shape, edge.dtype, edge.count);
      const label = s("text", {
        class: "nbviz-edge-label",
        attrs: { x: Math.round(route.lx), y: Math.round(route.ly) + 9 },
        text,
      });
      items.push({
        el: label,
        x0: route.lx,
        y0: route.ly,
        x1: route.lx + labelWidth(text),
        y1: route.ly + 12,
      });
      out.push(label);
    }
  });
  return out;
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
    attrs: { "data-box": box.id, "data-kind": box.kind },
  });
  const fill = node ? nodeColor(node) : "#eee";
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
    const title = `${localName(index, box.node)} · ${node?.cls ?? ""}`;
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
  if (box.kind === "group") {
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
  const items: CullItem[] = [];
  const slots = new Map<string, SVGGElement>();
  const g = s("g", { class: "nbviz-level", attrs: { "data-level": id } });
  g.append(...drawEdges(level, marker, items));
  level.level.children.forEach((c, i) => {
    const box = graph.boxes.get(c);
    const pos = level.result.nodes[i];
    const size = layout.sizes.get(c);
    if (box === undefined || pos === undefined || size === undefined) return;
    let slot: SVGGElement | null = null;
    if (box.kind === "open") {
      slot = s("g", { attrs: { transform: `translate(${GROUP_PAD},${GROUP_HEADER})` } });
      slots.set(c, slot);
    }
    const el = drawBox(index, box, size, slot);
    el.setAttribute("transform", `translate(${Math.round(pos.x)},${Math.round(pos.y)})`);
    items.push({ el, x0: pos.x, y0: pos.y, x1: pos.x + size.w + 6, y1: pos.y + size.h + 6 });
    g.append(el);
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
 * Puts each level's drawing into its parent's slot and returns the root's, with every cull
 * item placed in root coordinates.
 */
export function assemble(
  layout: FullLayout,
  cache: DrawCache,
  root: string,
): { el: SVGGElement | undefined; items: CullItem[] } {
  const items: CullItem[] = [];
  const place = (id: string, ox: number, oy: number): void => {
    const drawn = cache.levels.get(id);
    const level = layout.levels.get(id);
    if (drawn === undefined || level === undefined) return;
    for (const it of drawn.items) {
      items.push({ el: it.el, x0: it.x0 + ox, y0: it.y0 + oy, x1: it.x1 + ox, y1: it.y1 + oy });
    }
    level.level.children.forEach((c, i) => {
      const slot = drawn.slots.get(c);
      const child = cache.levels.get(c);
      const pos = level.result.nodes[i];
      if (slot === undefined || child === undefined || pos === undefined) return;
      if (slot.firstChild !== child.el || slot.childNodes.length !== 1)
        slot.replaceChildren(child.el);
      place(c, ox + pos.x + GROUP_PAD, oy + pos.y + GROUP_HEADER);
    });
  };
  place(root, 0, 0);
  return { el: cache.levels.get(root)?.el, items };
}
