/** Layer x step matrices of a metric and the cell mapping of the heatmap: pure. */

import type { Metric, StatsSource } from "./source";

export interface Matrix {
  metric: Metric;
  layers: readonly string[];
  steps: Int32Array;
  /** [layers.length * steps.length], row-major by layer; NaN where absent. */
  values: Float32Array;
}

function sameLayers(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The metric at every train step for every layer (one `metricAt` per step). With `previous` (same
 * metric and layers, its steps a prefix of the run's), only the new steps are asked for: live
 * training appends columns. Rows replaced at old steps are picked up by a full rebuild (no
 * `previous`).
 */
export function metricMatrix(
  source: StatsSource,
  metric: Metric,
  layers: readonly string[],
  previous: Matrix | null = null,
): Matrix {
  const steps = source.steps().step.slice();
  const nS = steps.length;
  const values = new Float32Array(layers.length * nS).fill(Number.NaN);
  let from = 0;
  if (
    previous !== null &&
    previous.metric === metric &&
    previous.steps.length <= nS &&
    previous.steps.length > 0 &&
    previous.steps[0] === steps[0] &&
    previous.steps[previous.steps.length - 1] === steps[previous.steps.length - 1] &&
    sameLayers(previous.layers, layers)
  ) {
    from = previous.steps.length;
    for (let r = 0; r < layers.length; r++)
      values.set(previous.values.subarray(r * from, (r + 1) * from), r * nS);
  }
  const row = new Map<string, number>();
  for (let i = 0; i < layers.length; i++) row.set(layers[i] ?? "", i);
  for (let c = from; c < nS; c++) {
    for (const [layer, v] of source.metricAt(metric, steps[c] ?? 0)) {
      const r = row.get(layer);
      if (r !== undefined) values[r * nS + c] = v;
    }
  }
  return { metric, layers, steps, values };
}

/** The cell under (x, y) of a `width` x `height` heatmap of rows x cols cells, or null. */
export function cellAt(
  x: number,
  y: number,
  width: number,
  height: number,
  rows: number,
  cols: number,
): { row: number; col: number } | null {
  if (rows <= 0 || cols <= 0 || x < 0 || y < 0 || x >= width || y >= height) return null;
  return {
    row: Math.min(rows - 1, Math.floor((y / height) * rows)),
    col: Math.min(cols - 1, Math.floor((x / width) * cols)),
  };
}

/** The rectangle of cell (row, col): inverse of `cellAt`. */
export function cellRect(
  row: number,
  col: number,
  width: number,
  height: number,
  rows: number,
  cols: number,
): { x: number; y: number; w: number; h: number } {
  const w = width / cols;
  const h = height / rows;
  return { x: col * w, y: row * h, w, h };
}

/**
 * The layers that have statistics, in order of first appearance of their series (the order
 * capture met them: model order).
 */
export function recordedLayers(source: StatsSource): string[] {
  const seen = new Set<string>();
  for (const s of source.series) seen.add(s.layer);
  return [...seen];
}
