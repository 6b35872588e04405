/**
 * Decoded, validated views of the state's binary traits (`stats`, `hist`) and of exact-histogram
 * responses. Pure: no model access; widget.ts decodes once per trait change and shares the result.
 */

import { CodecError, decodeFloat64 } from "./codec";
import { PROTOCOL, STAT_INDEX, type StatField } from "./protocol";

const NSTATS = PROTOCOL.STAT_FIELDS.length;
const NBINS = PROTOCOL.HIST_BINS;

/** The `stats` trait: one row of STAT_FIELDS per tensor. */
export interface StatsTable {
  readonly rows: number;
  readonly data: Float64Array;
}

/** One tensor's histogram: bin i covers [lo + i*width, lo + (i+1)*width). */
export interface Histogram {
  counts: Float64Array;
  lo: number;
  width: number;
  /** Elements counted: numel when exact, fewer when sampled. */
  sample: number;
}

/** The `hist` trait, decoded. */
export interface HistTable {
  readonly rows: number;
  readonly counts: Float64Array;
  readonly lo: Float64Array;
  readonly width: Float64Array;
  readonly sample: Float64Array;
}

function isEmptyObject(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    (typeof value === "object" && Object.keys(value as object).length === 0)
  );
}

function expectShape(shape: readonly number[], expected: readonly number[], what: string): void {
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    throw new CodecError(
      `${what}: shape [${shape.join(", ")}] where [${expected.join(", ")}] was expected`,
    );
  }
}

/** Decodes the `stats` trait for `nTensors` tensors; an empty trait is all NaN. */
export function decodeStats(wire: unknown, nTensors: number): StatsTable {
  if (isEmptyObject(wire)) {
    return { rows: nTensors, data: new Float64Array(nTensors * NSTATS).fill(Number.NaN) };
  }
  const { data, shape } = decodeFloat64(wire, undefined, "stats");
  expectShape(shape, [nTensors, NSTATS], "stats");
  return { rows: nTensors, data };
}

/** One statistic of tensor `k` (NaN when out of range). */
export function stat(table: StatsTable, k: number, field: StatField): number {
  if (k < 0 || k >= table.rows) return Number.NaN;
  return table.data[k * NSTATS + STAT_INDEX[field]] ?? Number.NaN;
}

/** Decodes the `hist` trait for `nTensors` tensors; an empty trait has no counts. */
export function decodeHist(wire: unknown, nTensors: number): HistTable {
  if (isEmptyObject(wire)) {
    return {
      rows: nTensors,
      counts: new Float64Array(nTensors * NBINS),
      lo: new Float64Array(nTensors).fill(Number.NaN),
      width: new Float64Array(nTensors).fill(Number.NaN),
      sample: new Float64Array(nTensors),
    };
  }
  if (typeof wire !== "object" || wire === null) {
    throw new CodecError(`hist: expected an object of ${PROTOCOL.HIST_FIELDS.join(", ")}`);
  }
  const record = wire as Record<string, unknown>;
  const counts = decodeFloat64(record.counts, undefined, "hist.counts");
  expectShape(counts.shape, [nTensors, NBINS], "hist.counts");
  const vector = (field: "lo" | "width" | "sample"): Float64Array => {
    const decoded = decodeFloat64(record[field], undefined, `hist.${field}`);
    expectShape(decoded.shape, [nTensors], `hist.${field}`);
    return decoded.data;
  };
  return {
    rows: nTensors,
    counts: counts.data,
    lo: vector("lo"),
    width: vector("width"),
    sample: vector("sample"),
  };
}

/** Tensor `k`'s histogram from the table (a view, no copy), or null when out of range. */
export function histogramOf(table: HistTable, k: number): Histogram | null {
  if (k < 0 || k >= table.rows) return null;
  return {
    counts: table.counts.subarray(k * NBINS, (k + 1) * NBINS),
    lo: table.lo[k] ?? Number.NaN,
    width: table.width[k] ?? Number.NaN,
    sample: table.sample[k] ?? 0,
  };
}

/** Decodes the `result` of an `exact_histogram` response and its buffers. */
export function decodeExactHistogram(result: unknown, buffers: readonly unknown[]): Histogram {
  if (typeof result !== "object" || result === null) {
    throw new CodecError("exact_histogram: the response has no result");
  }
  const r = result as Record<string, unknown>;
  const number = (field: string): number => {
    const value = r[field];
    if (typeof value !== "number") {
      // JSON has no NaN: Python's json writes NaN as a bare token, but a null is possible too.
      if (value === null) return Number.NaN;
      throw new CodecError(`exact_histogram: ${field} must be a number, got ${typeof value}`);
    }
    return value;
  };
  const counts = decodeFloat64(r.counts, buffers, "exact_histogram.counts");
  expectShape(counts.shape, [NBINS], "exact_histogram.counts");
  return {
    counts: counts.data,
    lo: number("lo"),
    width: number("width"),
    sample: number("sample"),
  };
}
