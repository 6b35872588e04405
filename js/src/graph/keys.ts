/** Keyboard navigation of the diagram: the box an arrow key moves to. Pure, no DOM. */

import type { Rect } from "./cull";

export type Direction = "up" | "down" | "left" | "right";

export const ARROWS: Readonly<Record<string, Direction>> = {
  ArrowUp: "up",
  ArrowDown: "down",
  ArrowLeft: "left",
  ArrowRight: "right",
};

/**
 * The candidate nearest to `from` in direction `dir`. Up and down (the flow of the graph): the
 * boxes wholly above or below, scored by the gap plus half the sideways offset of the centres,
 * so the next row wins over one further on. Left and right: only boxes of the same row (their
 * vertical extents overlap), by gap plus offset. Null when there is none.
 */
export function nearestInDirection(
  rects: ReadonlyMap<string, Rect>,
  from: string,
  dir: Direction,
  candidates: Iterable<string>,
): string | null {
  const o = rects.get(from);
  if (o === undefined) return null;
  let best: string | null = null;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const id of candidates) {
    const r = rects.get(id);
    if (id === from || r === undefined) continue;
    const dx = Math.abs((r.x0 + r.x1) / 2 - (o.x0 + o.x1) / 2);
    const dy = Math.abs((r.y0 + r.y1) / 2 - (o.y0 + o.y1) / 2);
    let score: number;
    if (dir === "down" || dir === "up") {
      const gap = dir === "down" ? r.y0 - o.y1 : o.y0 - r.y1;
      if (gap < 0) continue;
      score = gap + dx / 2;
    } else {
      const gap = dir === "right" ? r.x0 - o.x1 : o.x0 - r.x1;
      if (gap < 0 || r.y0 >= o.y1 || r.y1 <= o.y0) continue;
      score = gap + dy;
    }
    if (score < bestScore) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}
