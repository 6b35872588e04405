/**
 * The part of the browser run store (`js/src/live/store.ts`, docs/live-data.md) the panels read.
 * Signatures are the contract's, so a `RunStore` satisfies `StatsSource` structurally; tests use
 * a fake built from fixtures. Nothing here allocates per frame except `metricAt`'s map.
 */

import type { AnomalyRow } from "../live/store";
import { PROTOCOL } from "../protocol";

/** Columns of a statistics row: STAT_FIELDS then the diagnostics. */
export const RECORD_FIELDS = PROTOCOL.RECORD_FIELDS;
export type RecordField = (typeof RECORD_FIELDS)[number];
export const NFIELDS = RECORD_FIELDS.length;
export const FIELD_INDEX: Readonly<Record<RecordField, number>> = Object.freeze(
  Object.fromEntries(RECORD_FIELDS.map((f, i) => [f, i])) as Record<RecordField, number>,
);

/** What is captured per module and step. */
export const KINDS = PROTOCOL.KINDS;
export type Kind = (typeof KINDS)[number];
export type Mode = "train" | "eval";

/** Metrics of the graph overlay and the heatmap. */
export const METRICS = PROTOCOL.OVERLAY_METRICS;
export type Metric = (typeof METRICS)[number];

export interface SeriesInfo {
  id: number;
  layer: string;
  /** One of KINDS (typed as string so a store with a wider type still fits). */
  kind: string;
  tensor: string;
  call: number;
  mode: string;
  dtype: string;
}

export interface HistogramRow {
  lo: number;
  width: number;
  sample: number;
  /** HIST_BINS counts on the grid lo + i * width. */
  counts: ArrayLike<number>;
}

// The store decodes anomaly rows off the wire; the panels read them as they are.
export type { AnomalyRow } from "../live/store";

export interface StatsSource {
  readonly series: readonly SeriesInfo[];
  seriesOf(layer: string, kind?: Kind, mode?: "train" | "eval"): readonly SeriesInfo[];
  steps(): { step: Int32Array; skipped: Uint8Array };
  lastStep(): number;
  statAt(series: number, field: RecordField, step: number): number;
  histograms(series: number): {
    step: Int32Array;
    lo: Float64Array;
    width: Float64Array;
    sample: Float64Array;
    counts: Float32Array;
  };
  histogramAt(series: number, step: number): HistogramRow | null;
  metricAt(metric: Metric, step: number): Map<string, number>;
  anomalies(): readonly AnomalyRow[];
  firstAnomaly(): AnomalyRow | null;
  /** Changes when rows at old steps were dropped or replaced (retention thinning). */
  readonly thinnings?: number;
}

/** A view: its root element, a partial update, and teardown (listeners, timers). */
export interface View<D> {
  el: HTMLElement;
  update(next: Partial<D>): void;
  destroy(): void;
}
