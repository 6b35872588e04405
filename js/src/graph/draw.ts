/**
 * SVG for a laid-out visible graph: one `<g>` per level, nested inside open groups' containers.
 * Pure: (visible graph, layout) -> elements; text only through textContent (names are
 * user-controlled). A level's element is reused while its layout and its nested levels are.
 *
 * Hooks: `.nbviz-box[data-box][data-kind]` (leaf, group, open, fold), `[data-toggle]` on a
 * group's toggle, `.nbviz-edge`, `.nbviz-edge-label`.
 */

import { s } from "../draw/dom";
import { boxLines, boxText, edgeLabel, LINE_HEIGHT, localName, nodeColor } from "./labels";
import { type FullLayout, GROUP_HEADER, GROUP_PAD, type LevelLayout } from "./layout";
import type { LayoutResult } from "./layout-types";
import type { Box, GraphIndex, VisibleGraph } from "./model";

interface Cached {
  result: LayoutResult;
  el: SVGGElement;
  /** Box ids and kinds, in order: a change redraws the level. */
  boxes: string;
}

export class DrawCache {
  readonly levels = new Map<string, Cached>();
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

function drawEdges(level: LevelLayout, marker: string): SVGElement[] {
  const out: SVGElement[] = [];
  level.level.edges.forEach((edge, i) => {
    const route = level.result.edges[i];
    if (route === undefined || route.points.length < 4) return;
    out.push(
      s("path", {
        class: "nbviz-edge",
        attrs: { d: pathData(route.points), "marker-end": `url(#${marker})` },
      }),
    );
    if (Number.isFinite(route.lx)) {
      out.push(
        s("text", {
          class: "nbviz-edge-label",
          attrs: { x: Math.round(route.lx), y: Math.round(route.ly) + 9 },
          text: edgeLabel(edge.shape, edge.dtype, edge.count),
        }),
      );
    }
  });
  return out;
}

function drawBox(
  index: GraphIndex,
  box: Box,
  size: { w: number; h: number },
  inner: SVGGElement | null,
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
    if (inner) g.append(inner);
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

/** The element of one level (and, inside it, of its open groups' levels). */
export function drawLevel(
  index: GraphIndex,
  graph: VisibleGraph,
  layout: FullLayout,
  id: string,
  cache: DrawCache,
  marker: string,
): { el: SVGGElement; reused: boolean } {
  const level = layout.levels.get(id);
  if (level === undefined) return { el: s("g"), reused: false };
  const inner = new Map<string, SVGGElement>();
  let nestedReused = true;
  for (const c of level.level.children) {
    if (!layout.levels.has(c)) continue;
    const drawn = drawLevel(index, graph, layout, c, cache, marker);
    inner.set(c, drawn.el);
    nestedReused &&= drawn.reused;
  }
  const boxes = level.level.children.map((c) => `${c}:${graph.boxes.get(c)?.kind}`).join(",");
  const cached = cache.levels.get(id);
  if (nestedReused && cached && cached.result === level.result && cached.boxes === boxes) {
    return { el: cached.el, reused: true };
  }
  cache.drawn += 1;
  const g = s("g", { class: "nbviz-level", attrs: { "data-level": id } });
  g.append(...drawEdges(level, marker));
  level.level.children.forEach((c, i) => {
    const box = graph.boxes.get(c);
    const pos = level.result.nodes[i];
    const size = layout.sizes.get(c);
    if (box === undefined || pos === undefined || size === undefined) return;
    const content = inner.get(c);
    if (content) content.setAttribute("transform", `translate(${GROUP_PAD},${GROUP_HEADER})`);
    const el = drawBox(index, box, size, content ?? null);
    el.setAttribute("transform", `translate(${Math.round(pos.x)},${Math.round(pos.y)})`);
    g.append(el);
  });
  cache.levels.set(id, { result: level.result, el: g, boxes });
  return { el: g, reused: false };
}
