/** Canvas helpers shared by the panels: a fixed-size, device-pixel-ratio aware canvas. */

import { h } from "../draw/dom";

export interface Surface {
  canvas: HTMLCanvasElement;
  /** null where canvas is unavailable (jsdom): drawing is skipped, the rest still works. */
  ctx: CanvasRenderingContext2D | null;
  width: number;
  height: number;
}

function context(canvas: HTMLCanvasElement): CanvasRenderingContext2D | null {
  // jsdom has no canvas: its getContext logs "not implemented"; skip it there.
  if (typeof navigator !== "undefined" && /jsdom/i.test(navigator.userAgent)) return null;
  try {
    return canvas.getContext("2d");
  } catch {
    return null;
  }
}

export function surface(cls: string, width: number, height: number, label: string): Surface {
  const canvas = h("canvas", { class: cls, attrs: { role: "img", "aria-label": label } });
  const dpr = typeof window !== "undefined" ? Math.min(window.devicePixelRatio || 1, 2) : 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = context(canvas);
  ctx?.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { canvas, ctx, width, height };
}

export interface Palette {
  accent: string;
  bad: string;
  fg: string;
  bg: string;
  border: string;
}

const palettes = new WeakMap<Element, Palette>();

/**
 * The theme colours canvases draw with, from the element's CSS custom properties: resolved once
 * per element when it is in the document (getComputedStyle forces a style pass: never per frame).
 */
export function paletteOf(el: Element): Palette {
  const hit = palettes.get(el);
  if (hit !== undefined) return hit;
  const style =
    typeof getComputedStyle === "function" && el.isConnected ? getComputedStyle(el) : null;
  const get = (name: string, fallback: string): string =>
    style?.getPropertyValue(name).trim() || fallback;
  const palette = {
    accent: get("--nbviz-bar", "#1976d2"),
    bad: get("--nbviz-bad", "#d32f2f"),
    fg: get("--nbviz-fg-muted", "#666"),
    bg: get("--nbviz-bg", "#fff"),
    border: get("--nbviz-border", "#ccc"),
  };
  if (style !== null) palettes.set(el, palette);
  return palette;
}

/** Linear position of `v` in [d0, d1] on [0, size]. */
export function linear(v: number, d0: number, d1: number, size: number): number {
  return d1 === d0 ? size / 2 : ((v - d0) / (d1 - d0)) * size;
}

/** The entry of ascending `steps` nearest to `value` (undefined when empty). */
export function nearestStep(steps: ArrayLike<number>, value: number): number | undefined {
  const n = steps.length;
  if (n === 0) return undefined;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((steps[mid] ?? 0) < value) lo = mid + 1;
    else hi = mid;
  }
  const after = steps[lo] ?? 0;
  const before = steps[lo - 1];
  return before !== undefined && value - before <= after - value ? before : after;
}
