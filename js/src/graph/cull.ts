/**
 * Viewport culling: boxes, edges and labels entirely outside the visible rectangle (plus a
 * margin) get `display: none`, so the browser neither styles nor paints them. Only elements
 * whose state changes are touched.
 */

import type { CullItem } from "./draw";

export interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export class Culler {
  private items: CullItem[] = [];
  private hidden = new Uint8Array(0);

  /** Replaces the items (their current display state is read from the elements). */
  set(items: CullItem[]): void {
    this.items = items;
    this.hidden = new Uint8Array(items.length);
    items.forEach((it, i) => {
      this.hidden[i] = it.el.style.display === "none" ? 1 : 0;
    });
  }

  /** Shows what intersects `view`, hides the rest; returns how many elements changed. */
  update(view: Rect): number {
    let changed = 0;
    const { items, hidden } = this;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it === undefined) continue;
      const out = it.x1 < view.x0 || it.x0 > view.x1 || it.y1 < view.y0 || it.y0 > view.y1 ? 1 : 0;
      if (hidden[i] === out) continue;
      hidden[i] = out;
      it.el.style.display = out ? "none" : "";
      changed += 1;
    }
    return changed;
  }

  /** Number of items currently hidden. */
  get hiddenCount(): number {
    return this.hidden.reduce((n, h) => n + h, 0);
  }
}

/** The content rectangle seen through a `w` × `h` view at transform (k, x, y), with a margin. */
export function visibleRect(
  t: { k: number; x: number; y: number },
  w: number,
  h: number,
  margin = 0.25,
): Rect {
  const x0 = -t.x / t.k;
  const y0 = -t.y / t.k;
  const mw = (margin * w) / t.k;
  const mh = (margin * h) / t.k;
  return { x0: x0 - mw, y0: y0 - mh, x1: x0 + w / t.k + mw, y1: y0 + h / t.k + mh };
}
