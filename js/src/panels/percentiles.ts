/** Percentiles of a histogram on a regular grid, as TensorBoard's distribution charts show. */

/** TensorBoard's distribution percentiles (in percent), outermost band first. */
export const DIST_PERCENTILES: readonly number[] = [0, 7, 16, 31, 50, 69, 84, 93, 100];

/**
 * Percentiles `ps` (ascending, percent) of a histogram whose bin i spans
 * [lo + i*width, lo + (i+1)*width): the piecewise-linear inverse of its cumulative counts, values
 * spread evenly within each bin. 0 is the left edge of the first non-empty bin, 100 the right edge
 * of the last. With `range` (the tensor's exact min and max, where finite), 0 and 100 are that min
 * and max and the rest are clamped into it: a sampled histogram loses the tails. All NaN when
 * nothing finite was counted. Writes into `out`
 * when given (no allocation).
 */
export function percentilesFromHistogram(
  counts: ArrayLike<number>,
  lo: number,
  width: number,
  ps: readonly number[] = DIST_PERCENTILES,
  out: Float64Array = new Float64Array(ps.length),
  range?: readonly [number, number],
): Float64Array {
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && Number.isFinite(c)) total += c;
  }
  if (!(total > 0) || !Number.isFinite(lo) || !Number.isFinite(width)) {
    out.fill(Number.NaN, 0, ps.length);
    return out;
  }
  let bin = 0;
  let cum = 0; // counts before `bin`
  for (let k = 0; k < ps.length; k++) {
    const target = (Math.min(Math.max(ps[k] ?? 0, 0), 100) / 100) * total;
    let value = Number.NaN;
    for (; bin < counts.length; bin++) {
      const raw = counts[bin] ?? 0;
      const c = raw > 0 && Number.isFinite(raw) ? raw : 0;
      if (c > 0 && cum + c >= target) {
        const fraction = Math.max(0, (target - cum) / c);
        value = lo + (bin + fraction) * width;
        break;
      }
      cum += c;
    }
    if (Number.isNaN(value)) value = lo + counts.length * width; // rounding: past the end
    if (range !== undefined) {
      const p = ps[k] ?? 0;
      if (Number.isFinite(range[0]) && (value < range[0] || p <= 0)) value = range[0];
      if (Number.isFinite(range[1]) && (value > range[1] || p >= 100)) value = range[1];
    }
    out[k] = value;
  }
  return out;
}

/**
 * Percentile bands of every row of a series' histograms: [rows * ps.length], row-major.
 * `counts` is [rows * bins]; `range(r)` gives row r's exact [min, max] when known.
 */
export function percentileMatrix(
  hist: { lo: Float64Array; width: Float64Array; counts: Float32Array },
  bins: number,
  ps: readonly number[] = DIST_PERCENTILES,
  range?: (row: number) => readonly [number, number],
): Float64Array {
  const rows = hist.lo.length;
  const out = new Float64Array(rows * ps.length);
  for (let r = 0; r < rows; r++) {
    percentilesFromHistogram(
      hist.counts.subarray(r * bins, (r + 1) * bins),
      hist.lo[r] ?? Number.NaN,
      hist.width[r] ?? Number.NaN,
      ps,
      out.subarray(r * ps.length, (r + 1) * ps.length),
      range?.(r),
    );
  }
  return out;
}
