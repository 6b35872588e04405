/**
 * A rough layout of one level, made at once on the main thread: what a small diagram's first
 * paint shows while a fresh layout worker is still loading ELK (0.4-0.9 s in a new page). ELK's
 * direction and spacing (elk-layout.ts), layers by longest path, boxes under their inputs,
 * straight edges: close to ELK's layout of a small level, which replaces it when it comes.
 */

import type { LayoutRequest, LayoutResult } from "./layout-types";

/** As elk-layout.ts's padding, node spacing and spacing between layers. */
const PAD = 8;
const NODE_GAP = 24;
const LAYER_GAP = 36;

/** Each child's layer: longest path from the sources; edges closing a cycle are ignored. */
function layers(request: LayoutRequest): number[] {
  const n = request.children.length;
  const out: number[][] = request.children.map(() => []);
  const incoming = new Array<number>(n).fill(0);
  for (const { s, t } of request.edges) {
    if (s === t || s >= n || t >= n) continue;
    out[s]?.push(t);
    incoming[t] = (incoming[t] ?? 0) + 1;
  }
  const layer = new Array<number>(n).fill(0);
  const done = new Array<boolean>(n).fill(false);
  const visit = (v: number): void => {
    done[v] = true;
    for (const t of out[v] ?? []) {
      if (done[t]) continue; // a back edge
      layer[t] = Math.max(layer[t] ?? 0, (layer[v] ?? 0) + 1);
      incoming[t] = (incoming[t] ?? 0) - 1;
      if (incoming[t] === 0) visit(t);
    }
  };
  for (let v = 0; v < n; v++) if (!done[v] && incoming[v] === 0) visit(v);
  for (let v = 0; v < n; v++) if (!done[v]) visit(v); // left in a cycle: in model order
  const last = Math.max(0, ...layer);
  request.children.forEach((c, i) => {
    if (c.c === "first") layer[i] = 0;
    else if (c.c === "last") layer[i] = last;
  });
  return layer;
}

const mean = (xs: number[]): number | undefined =>
  xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length;

export function quickLayout(request: LayoutRequest): LayoutResult {
  const { children } = request;
  const layer = layers(request);
  const preds: number[][] = children.map(() => []);
  const succs: number[][] = children.map(() => []);
  for (const { s, t } of request.edges) {
    if (s === t || (layer[s] ?? 0) >= (layer[t] ?? 0)) continue; // a back edge, or none
    preds[t]?.push(s);
    succs[s]?.push(t);
  }
  const rows: number[][] = [];
  layer.forEach((l, i) => {
    rows[l] ??= [];
    rows[l].push(i);
  });
  const present = rows.filter((row) => row !== undefined);
  // Centres: each row in turn below the centres of its predecessors (ordered by their mean, as
  // a crossing-reducing sweep does), then sources above their successors; boxes in a row are
  // pushed apart left to right.
  const cx = new Array<number>(children.length).fill(0);
  const place = (row: number[], want: (i: number) => number | undefined): void => {
    let next: number | undefined; // the leftmost place for the next box
    for (const i of row) {
      const w = children[i]?.w ?? 0;
      const wish = (want(i) ?? (next ?? 0) + w / 2) - w / 2;
      const left = next === undefined ? wish : Math.max(wish, next);
      cx[i] = left + w / 2;
      next = left + w + NODE_GAP;
    }
  };
  const below = (i: number) => mean((preds[i] ?? []).map((p) => cx[p] ?? 0));
  present.forEach((row, r) => {
    if (r > 0) row.sort((a, b) => (below(a) ?? Infinity) - (below(b) ?? Infinity) || a - b);
    place(row, below);
  });
  for (const row of present) {
    place(row, (i) =>
      preds[i]?.length === 0 ? mean((succs[i] ?? []).map((t) => cx[t] ?? 0)) : cx[i],
    );
  }
  const left =
    children.length === 0 ? 0 : Math.min(...children.map((c, i) => (cx[i] ?? 0) - c.w / 2));
  const right =
    children.length === 0 ? 0 : Math.max(...children.map((c, i) => (cx[i] ?? 0) + c.w / 2));
  const inner = right - left;
  const nodes = children.map(() => ({ x: 0, y: 0 }));
  let y = PAD;
  for (const row of present) {
    const height = Math.max(...row.map((i) => children[i]?.h ?? 0));
    for (const i of row) {
      const { w, h } = children[i] ?? { w: 0, h: 0 };
      nodes[i] = { x: PAD + (cx[i] ?? 0) - w / 2 - left, y: y + (height - h) / 2 };
    }
    y += height + LAYER_GAP;
  }
  const height = present.length > 0 ? y - LAYER_GAP + PAD : 2 * PAD;
  const edges = request.edges.map(({ s, t, lw }) => {
    const a = nodes[s] ?? { x: 0, y: 0 };
    const b = nodes[t] ?? { x: 0, y: 0 };
    const from = children[s] ?? { w: 0, h: 0 };
    const to = children[t] ?? { w: 0, h: 0 };
    const [x0, y0, x1, y1] = [a.x + from.w / 2, a.y + from.h, b.x + to.w / 2, b.y];
    const label =
      lw > 0 ? { lx: (x0 + x1) / 2, ly: (y0 + y1) / 2 } : { lx: Number.NaN, ly: Number.NaN };
    return { points: [x0, y0, x1, y1], ...label };
  });
  return { width: inner + 2 * PAD, height, nodes, edges };
}
