/** Layer x step matrices of a metric and the cell mapping of the heatmap: pure. */

import type { Metric, StatsSource } from "./source";

export interface Matrix {
  layers: readonly string[];
  steps: Int32Array;
  /** [layers.length * steps.length], row-major by layer; NaN where absent. */
  values: Float32Array;
}

/** The metric at every train step for every layer (one `metricAt` per step). */
export function metricMatrix(
  source: StatsSource,
  metric: Metric,
  layers: readonly string[],
): Matrix {
  const steps = source.steps().step.slice();
  const nS = steps.length;
  const values = new Float32Array(layers.length * nS).fill(Number.NaN);
  const row = new Map<string, number>();
  for (let i = 0; i < layers.length; i++) row.set(layers[i] ?? "", i);
  for (let c = 0; c < nS; c++) {
    for (const [layer, v] of source.metricAt(metric, steps[c] ?? 0)) {
      const r = row.get(layer);
      if (r !== undefined) values[r * nS + c] = v;
    }
  }
  return { layers, steps, values };
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
