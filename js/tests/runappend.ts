/** Builds `run_append` messages as the kernel encodes them (`{buffer, dtype, shape}` + buffers). */

import type { Append, SeriesInfo } from "../src/live/store";
import { PROTOCOL } from "../src/protocol";

const F = PROTOCOL.RECORD_FIELDS.length;
const BINS = PROTOCOL.HIST_BINS;
const FIELD = (name: string): number => PROTOCOL.RECORD_FIELDS.indexOf(name as never);

export function seriesRow(
  id: number,
  layer: string,
  kind: SeriesInfo["kind"],
  tensor = "",
): SeriesInfo {
  return { id, layer, kind, tensor, call: 0, mode: "train", dtype: "float32" };
}

export interface StatIn {
  series: number;
  step: number;
  fields: Record<string, number>;
}

export interface HistIn {
  series: number;
  step: number;
  lo: number;
  /** Every bin's count. */
  fill: number;
}

export function runAppend(
  parts: {
    series?: SeriesInfo[];
    steps?: number[];
    stats?: StatIn[];
    hists?: HistIn[];
    anomalies?: Append["anomalies"];
    revision?: number;
  } = {},
): { message: Append; buffers: DataView[] } {
  const buffers: DataView[] = [];
  const add = (data: ArrayBufferView, dtype: string, shape: number[]) => {
    buffers.push(new DataView(data.buffer, data.byteOffset, data.byteLength));
    return { buffer: buffers.length - 1, dtype, shape };
  };
  const stats = parts.stats ?? [];
  const values = new Float32Array(stats.length * F).fill(Number.NaN);
  stats.forEach((row, i) => {
    for (const [k, v] of Object.entries(row.fields)) values[i * F + FIELD(k)] = v;
  });
  const hists = parts.hists ?? [];
  const counts = new Float32Array(hists.length * BINS);
  hists.forEach((row, i) => {
    counts.fill(row.fill, i * BINS, (i + 1) * BINS);
  });
  const n = stats.length;
  const m = hists.length;
  const message: Append = {
    type: PROTOCOL.RUN_APPEND_TYPE,
    revision: parts.revision ?? 1,
    series: parts.series ?? [],
    steps: (parts.steps ?? []).map((step) => ({
      step,
      mode: "train",
      skipped: false,
      reason: "",
      wall_time: 0,
    })),
    anomalies: parts.anomalies ?? [],
    stats: {
      series: add(
        Int32Array.from(stats, (r) => r.series),
        "int32",
        [n],
      ),
      step: add(
        Int32Array.from(stats, (r) => r.step),
        "int32",
        [n],
      ),
      values: add(values, "float32", [n, F]),
    },
    hists: {
      series: add(
        Int32Array.from(hists, (r) => r.series),
        "int32",
        [m],
      ),
      step: add(
        Int32Array.from(hists, (r) => r.step),
        "int32",
        [m],
      ),
      lo: add(
        Float64Array.from(hists, (r) => r.lo),
        "float64",
        [m],
      ),
      width: add(
        Float64Array.from(hists, () => 0.5),
        "float64",
        [m],
      ),
      sample: add(
        Float64Array.from(hists, () => 100),
        "float64",
        [m],
      ),
      counts: add(counts, "float32", [m, BINS]),
    },
    complete: false,
  };
  return { message, buffers };
}

/** Waits past the run store's frame-batched change notification. */
export function nextFrames(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 40));
}
