/**
 * Wheel zoom and drag pan over an SVG view. The transform lives with the caller; this module
 * turns input into new transforms and reads the page as little as possible (one client
 * rectangle, read again only after a scroll or resize).
 */

export interface Transform {
  k: number;
  x: number;
  y: number;
}

export const MIN_ZOOM = 0.02;
export const MAX_ZOOM = 8;
/** Text comes back this long after the last wheel event. */
export const ZOOM_SETTLE_MS = 150;

/** Zooms by `factor` about the view point (px, py), keeping that point fixed. */
export function zoomAt(t: Transform, px: number, py: number, factor: number): Transform {
  const k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, t.k * factor));
  const ratio = k / t.k;
  return { k, x: px - (px - t.x) * ratio, y: py - (py - t.y) * ratio };
}

/** The zoom factor of a wheel event (lines or pixels). */
export function wheelFactor(deltaY: number, deltaMode: number): number {
  return Math.exp(-deltaY * (deltaMode === 1 ? 0.05 : 0.0015));
}

export interface PanZoom {
  /** True between a drag's first move and the click that ends it: that click is no click. */
  dragging(): boolean;
  /** Forget the cached client rectangle (after a resize). */
  invalidate(): void;
  dispose(): void;
}

export function attachPanZoom(
  svg: SVGSVGElement,
  get: () => Transform,
  set: (t: Transform) => void,
): PanZoom {
  let clientRect: { left: number; top: number } | null = null;
  const invalidate = (): void => {
    clientRect = null;
  };
  const rect = (): { left: number; top: number } => {
    clientRect ??= svg.getBoundingClientRect();
    return clientRect;
  };
  let zoomTimer: ReturnType<typeof setTimeout> | undefined;
  let drag: { x: number; y: number; tx: number; ty: number; moved: boolean } | null = null;

  svg.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const t = get();
    drag = { x: event.clientX, y: event.clientY, tx: t.x, ty: t.y, moved: false };
  });
  svg.addEventListener("pointermove", (event) => {
    if (drag === null) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!drag.moved && typeof svg.setPointerCapture === "function") {
      try {
        svg.setPointerCapture(event.pointerId);
      } catch {
        // a synthetic or already released pointer: pan without capture
      }
    }
    drag.moved = true;
    set({ ...get(), x: drag.tx + dx, y: drag.ty + dy });
  });
  const endDrag = (): void => {
    // keep `moved` until the click that follows this pointerup has been ignored
    setTimeout(() => {
      drag = null;
    }, 0);
  };
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);
  svg.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      // SVG text is laid out again at every scale change (about 75 ms for a screenful on a
      // software-rendered page): hide text while the wheel turns, show it when it stops.
      svg.classList.add("is-zooming");
      clearTimeout(zoomTimer);
      zoomTimer = setTimeout(() => svg.classList.remove("is-zooming"), ZOOM_SETTLE_MS);
      const v = rect();
      const factor = wheelFactor(event.deltaY, event.deltaMode);
      set(zoomAt(get(), event.clientX - v.left, event.clientY - v.top, factor));
    },
    { passive: false },
  );
  if (typeof window !== "undefined") {
    window.addEventListener("scroll", invalidate, { capture: true, passive: true });
    window.addEventListener("resize", invalidate, { passive: true });
  }
  return {
    dragging: () => drag?.moved ?? false,
    invalidate,
    dispose() {
      clearTimeout(zoomTimer);
      if (typeof window !== "undefined") {
        window.removeEventListener("scroll", invalidate, { capture: true });
        window.removeEventListener("resize", invalidate);
      }
    },
  };
}
