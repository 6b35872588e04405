/**
 * Viewport culling: boxes, edges and labels outside the visible rectangle (plus a margin) are
 * not created until they come into view, and get `display: none` when they leave it, so the
 * browser neither styles nor paints them. Only elements whose state changes are touched.
 */

import type { Placed, Rect } from "./draw";

export type { Rect };

export class Culler {
  private placed: Placed[] = [];
  private shown = new Uint8Array(0);

  /** Replaces the items (their current state is read from their elements). */
  set(placed: Placed[]): void {
    this.placed = placed;
    this.shown = new Uint8Array(placed.length);
    placed.forEach((p, i) => {
      const el = p.item.el;
      this.shown[i] = el !== null && el.style.display !== "none" ? 1 : 0;
    });
  }

  /**
   * Shows (creating on first need) what intersects `view`, at most `budget` elements and
   * until `performance.now()` passes `deadline`, so that uncovering a whole graph is spread
   * over frames, and hides the rest; returns how many elements still wait to be shown.
   */
  update(
    view: Rect,
    budget = Number.POSITIVE_INFINITY,
    deadline = Number.POSITIVE_INFINITY,
  ): number {
    let over = false;
    let shownNow = 0;
    let waiting = 0;
    const { placed, shown } = this;
    for (let i = 0; i < placed.length; i++) {
      const p = placed[i];
      if (p === undefined) continue;
      const inView = !(p.x1 < view.x0 || p.x0 > view.x1 || p.y1 < view.y0 || p.y0 > view.y1);
      if ((shown[i] === 1) === inView) continue;
      const item = p.item;
      if (!inView) {
        if (item.el !== null) item.el.style.display = "none";
        shown[i] = 0;
        continue;
      }
      if (!over && shownNow % 16 === 15 && performance.now() > deadline) over = true;
      if (over || shownNow >= budget) {
        waiting += 1;
        continue;
      }
      shownNow += 1;
      shown[i] = 1;
      if (item.el === null) item.el = item.make();
      item.el.style.display = "";
      if (item.el.parentNode !== item.parent) item.parent.append(item.el);
    }
    return waiting;
  }
}

/** The content rectangle seen through a `w` × `h` view at transform (k, x, y), with a margin. */
export function visibleRect(
  t: { k: number; x: number; y: number },
  w: number,
  h: number,
  margin = 0.15,
): Rect {
  const x0 = -t.x / t.k;
  const y0 = -t.y / t.k;
  const mw = (margin * w) / t.k;
  const mh = (margin * h) / t.k;
  return { x0: x0 - mw, y0: y0 - mh, x1: x0 + w / t.k + mw, y1: y0 + h / t.k + mh };
}
