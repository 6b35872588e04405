/** Geometry of a histogram on its stable grid: pure, allocation-free with a given output. */

export interface BarGeometry {
  /** x, width, height of every bin in plot pixels (height 0 for empty bins). */
  x: Float64Array;
  w: Float64Array;
  h: Float64Array;
  /** The value range drawn: [d0, d1]. */
  domain: [number, number];
  /** Largest finite count. */
  max: number;
}

export function emptyGeometry(bins: number): BarGeometry {
  return {
    x: new Float64Array(bins),
    w: new Float64Array(bins),
    h: new Float64Array(bins),
    domain: [0, 1],
    max: 0,
  };
}

/**
 * Bars of a histogram whose bin i spans [lo + i*width, lo + (i+1)*width), drawn over the value
 * range of its occupied bins (the grid may span twice the data's range): bin i starts at
 * x = (lo + i*width - d0) * plotW / (d1 - d0) and is width*plotW/(d1-d0) wide, so bins sit exactly
 * on the grid. Heights are count/max of plotH; a non-empty bin is at least `minH` tall.
 */
export function histogramGeometry(
  counts: ArrayLike<number>,
  lo: number,
  width: number,
  plotW: number,
  plotH: number,
  out: BarGeometry = emptyGeometry(counts.length),
  minH = 1,
): BarGeometry {
  let first = -1;
  let last = -1;
  let max = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && Number.isFinite(c)) {
      if (first < 0) first = i;
      last = i;
      if (c > max) max = c;
    }
  }
  out.max = max;
  if (first < 0 || !(width > 0) || !Number.isFinite(lo)) {
    out.x.fill(0);
    out.w.fill(0);
    out.h.fill(0);
    out.domain = [0, 1];
    return out;
  }
  const d0 = lo + first * width;
  const d1 = lo + (last + 1) * width;
  const k = plotW / (d1 - d0);
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    out.x[i] = (lo + i * width - d0) * k;
    out.w[i] = width * k;
    out.h[i] = c > 0 && Number.isFinite(c) ? Math.max((c / max) * plotH, minH) : 0;
  }
  out.domain = [d0, d1];
  return out;
}
