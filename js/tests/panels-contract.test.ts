/**
 * The store of docs/live-data.md, declared with the contract's signatures, must satisfy the
 * panels' `StatsSource` (checked by `tsc --noEmit`; the test body only keeps vitest happy).
 */
import { describe, expect, it } from "vitest";
import type { AnomalyRow, Kind, Metric, RecordField, StatsSource } from "../src/panels/source";

interface ContractSeriesInfo {
  id: number;
  layer: string;
  kind: Kind;
  tensor: string;
  call: number;
  mode: "train" | "eval";
  dtype: string;
}
interface ContractHistogram {
  step: number;
  lo: number;
  width: number;
  sample: number;
  counts: Float32Array;
}
declare class ContractRunStore {
  readonly series: readonly ContractSeriesInfo[];
  seriesOf(layer: string, kind?: Kind, mode?: "train" | "eval"): readonly ContractSeriesInfo[];
  steps(): { step: Int32Array; skipped: Uint8Array };
  lastStep(): number;
  stats(series: number): { step: Int32Array; values: Float32Array };
  statAt(series: number, field: RecordField, step: number): number;
  histograms(series: number): {
    step: Int32Array;
    lo: Float64Array;
    width: Float64Array;
    sample: Float64Array;
    counts: Float32Array;
  };
  histogramAt(series: number, step: number): ContractHistogram | null;
  metricAt(metric: Metric, step: number): Map<string, number>;
  anomalies(): readonly AnomalyRow[];
  firstAnomaly(): AnomalyRow | null;
  apply(message: unknown): void;
  onChange(listener: () => void): () => void;
}

type Satisfies<T extends StatsSource> = T;
type _StoreFitsPanels = Satisfies<ContractRunStore>;

describe("StatsSource", () => {
  it("is satisfied by the contract's RunStore (a compile-time check)", () => {
    const fits: _StoreFitsPanels | null = null;
    expect(fits).toBeNull();
  });
});
