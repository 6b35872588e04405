/**
 * A fake `StatsSource` over synthetic runs, for the panel tests and the panel benchmark: same
 * contract as the browser RunStore (docs/live-data.md), columnar typed arrays, binary searches.
 */

import {
  type AnomalyRow,
  FIELD_INDEX,
  type Kind,
  type Metric,
  NFIELDS,
  type RecordField,
  type SeriesInfo,
  type StatsSource,
} from "../src/panels/source";
import { PROTOCOL } from "../src/protocol";

const BINS = PROTOCOL.HIST_BINS;

export interface SeriesData {
  step: Int32Array;
  values: Float32Array;
}
export interface HistData {
  step: Int32Array;
  lo: Float64Array;
  width: Float64Array;
  sample: Float64Array;
  counts: Float32Array;
}

function latestAtOrBefore(steps: Int32Array, step: number): number {
  let lo = 0;
  let hi = steps.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((steps[mid] ?? 0) <= step) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

const EMPTY_HIST: HistData = {
  step: new Int32Array(0),
  lo: new Float64Array(0),
  width: new Float64Array(0),
  sample: new Float64Array(0),
  counts: new Float32Array(0),
};

export class FakeSource implements StatsSource {
  readonly series: SeriesInfo[] = [];
  readonly stats: SeriesData[] = [];
  readonly hists = new Map<number, HistData>();
  stepList = new Int32Array(0);
  skippedList = new Uint8Array(0);
  anomalyRows: AnomalyRow[] = [];
  histogramsCalls = 0;

  add(info: Omit<SeriesInfo, "id">, stats: SeriesData, hist?: HistData): SeriesInfo {
    const full = { ...info, id: this.series.length };
    this.series.push(full);
    this.stats.push(stats);
    if (hist) this.hists.set(full.id, hist);
    return full;
  }
  seriesOf(layer: string, kind?: Kind, mode?: "train" | "eval"): readonly SeriesInfo[] {
    return this.series.filter(
      (s) =>
        s.layer === layer &&
        (kind === undefined || s.kind === kind) &&
        (mode ?? "train") === s.mode,
    );
  }
  steps(): { step: Int32Array; skipped: Uint8Array } {
    return { step: this.stepList, skipped: this.skippedList };
  }
  lastStep(): number {
    return this.stepList[this.stepList.length - 1] ?? -1;
  }
  statAt(series: number, field: RecordField, step: number): number {
    const s = this.stats[series];
    if (s === undefined) return Number.NaN;
    const r = latestAtOrBefore(s.step, step);
    return r < 0 ? Number.NaN : (s.values[r * NFIELDS + FIELD_INDEX[field]] ?? Number.NaN);
  }
  histograms(series: number): HistData {
    this.histogramsCalls++;
    return this.hists.get(series) ?? EMPTY_HIST;
  }
  histogramAt(series: number, step: number) {
    const h = this.hists.get(series);
    if (h === undefined) return null;
    const r = latestAtOrBefore(h.step, step);
    if (r < 0) return null;
    return {
      lo: h.lo[r] ?? 0,
      width: h.width[r] ?? 0,
      sample: h.sample[r] ?? 0,
      counts: h.counts.subarray(r * BINS, (r + 1) * BINS),
    };
  }
  metricAt(metric: Metric, step: number): Map<string, number> {
    const out = new Map<string, number>();
    const sq = new Map<string, number>();
    for (const s of this.series) {
      if (s.mode !== "train") continue;
      if (metric === "grad_norm" && s.kind === "grad") {
        const l2 = this.statAt(s.id, "l2", step);
        if (!Number.isNaN(l2)) sq.set(s.layer, (sq.get(s.layer) ?? 0) + l2 * l2);
      } else if (metric === "activation_std" && s.kind === "activation" && s.call === 0) {
        const v = this.statAt(s.id, "std", step);
        if (!Number.isNaN(v)) out.set(s.layer, v);
      } else if (metric === "update_ratio" && s.kind === "update") {
        const v = this.statAt(s.id, "ratio", step);
        if (!Number.isNaN(v)) out.set(s.layer, Math.max(v, out.get(s.layer) ?? v));
      } else if (metric === "dead_fraction" && s.kind === "activation") {
        const v = this.statAt(s.id, "dead", step);
        if (!Number.isNaN(v)) out.set(s.layer, v);
      } else if (metric === "nonfinite") {
        const v =
          this.statAt(s.id, "nan", step) +
          this.statAt(s.id, "posinf", step) +
          this.statAt(s.id, "neginf", step);
        if (!Number.isNaN(v)) out.set(s.layer, (out.get(s.layer) ?? 0) + v);
      }
    }
    for (const [layer, v] of sq) out.set(layer, Math.sqrt(v));
    return out;
  }
  anomalies(): readonly AnomalyRow[] {
    return this.anomalyRows;
  }
  firstAnomaly(): AnomalyRow | null {
    return this.anomalyRows[0] ?? null;
  }
}

/** Deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A Gaussian-shaped histogram of `n` values (mean, std) on a stable grid: power-of-two bin width
 * covering mean ± 4 std, lo a multiple of the width.
 */
export function gaussHistogram(
  mean: number,
  std: number,
  n: number,
  out: Float32Array,
): { lo: number; width: number } {
  const range = 8 * std;
  const width = 2 ** Math.ceil(Math.log2(range / (BINS - 1)));
  const lo = Math.floor((mean - 4 * std) / width) * width;
  let total = 0;
  for (let i = 0; i < BINS; i++) {
    const z = (lo + (i + 0.5) * width - mean) / std;
    const w = Math.exp(-0.5 * z * z);
    out[i] = w;
    total += w;
  }
  for (let i = 0; i < BINS; i++) out[i] = Math.round(((out[i] ?? 0) / total) * n);
  return { lo, width };
}

export interface RunOptions {
  layers: number;
  steps: number;
  /** Layer names (default "layers.<i>.linear"). */
  name?: (i: number) => string;
  /** Build histograms of every series now (else call `loadHistograms(layer)`). */
  histograms?: boolean;
  /** Step and layer index of a NaN in the gradients. */
  nanAt?: { step: number; layer: number };
}

interface Plan {
  layer: string;
  kind: Kind;
  tensor: string;
  scale: number;
}

/** Series plans of a layer: weight/bias weights, gradients and updates, activation, its grad. */
function plans(layer: string, i: number): Plan[] {
  const s = 1 / (1 + i * 0.05);
  return [
    { layer, kind: "weight", tensor: "weight", scale: 0.1 * s },
    { layer, kind: "weight", tensor: "bias", scale: 0.02 * s },
    { layer, kind: "grad", tensor: "weight", scale: 0.01 * s },
    { layer, kind: "grad", tensor: "bias", scale: 0.002 * s },
    { layer, kind: "update", tensor: "weight", scale: 1e-4 * s },
    { layer, kind: "activation", tensor: "", scale: 1 * s },
    { layer, kind: "activation_grad", tensor: "", scale: 0.001 * s },
  ];
}

function seriesValue(plan: Plan, step: number, noise: number): { mean: number; std: number } {
  const drift = 1 + 0.5 * Math.sin(step / 50) + 0.1 * noise;
  return { mean: plan.scale * 0.1 * Math.cos(step / 80), std: plan.scale * drift };
}

/** A synthetic run: every layer recorded at every step, some skipped steps, one NaN. */
export function syntheticRun(options: RunOptions): FakeSource {
  const source = new FakeSource();
  const nS = options.steps;
  const random = rng(42);
  source.stepList = Int32Array.from({ length: nS }, (_, i) => i);
  source.skippedList = Uint8Array.from({ length: nS }, (_, i) => (i % 97 === 96 ? 1 : 0));
  const name = options.name ?? ((i: number) => `layers.${i}.linear`);
  for (let i = 0; i < options.layers; i++) {
    for (const plan of plans(name(i), i)) {
      const values = new Float32Array(nS * NFIELDS).fill(Number.NaN);
      for (let t = 0; t < nS; t++) {
        const { mean, std } = seriesValue(plan, t, random());
        const row = t * NFIELDS;
        const numel = 4096;
        values[row + FIELD_INDEX.numel] = numel;
        values[row + FIELD_INDEX.min] = mean - 4 * std;
        values[row + FIELD_INDEX.max] = mean + 4 * std;
        values[row + FIELD_INDEX.mean] = mean;
        values[row + FIELD_INDEX.std] = std;
        values[row + FIELD_INDEX.l2] = Math.sqrt(numel * (std * std + mean * mean));
        values[row + FIELD_INDEX.zeros] = 0;
        const nan =
          options.nanAt &&
          plan.kind === "grad" &&
          t >= options.nanAt.step &&
          i === options.nanAt.layer
            ? 3
            : 0;
        values[row + FIELD_INDEX.nan] = nan;
        values[row + FIELD_INDEX.posinf] = 0;
        values[row + FIELD_INDEX.neginf] = 0;
        if (plan.kind === "activation") values[row + FIELD_INDEX.dead] = 0.1 + 0.05 * random();
        if (plan.kind === "update") values[row + FIELD_INDEX.ratio] = 1e-3 * (1 + random());
      }
      source.add(
        {
          layer: plan.layer,
          kind: plan.kind,
          tensor: plan.tensor,
          call: 0,
          mode: "train",
          dtype: "float32",
        },
        { step: source.stepList.slice(), values },
      );
    }
  }
  if (options.nanAt) {
    const layer = name(options.nanAt.layer);
    const series = source.series.find((s) => s.layer === layer && s.kind === "grad");
    source.anomalyRows = [
      {
        step: options.nanAt.step,
        phase: "backward",
        series: series?.id ?? -1,
        nan: 3,
        posinf: 0,
        neginf: 0,
        detail: "",
      },
    ];
  }
  if (options.histograms) for (let i = 0; i < options.layers; i++) loadHistograms(source, name(i));
  return source;
}

/** Makes the histograms of every series of a layer arrive (the store receiving them). */
export function loadHistograms(source: FakeSource, layer: string): void {
  const random = rng(layer.length * 7919 + 1);
  const nS = source.stepList.length;
  for (const s of source.series) {
    if (s.layer !== layer || source.hists.has(s.id)) continue;
    const counts = new Float32Array(nS * BINS);
    const lo = new Float64Array(nS);
    const width = new Float64Array(nS);
    const sample = new Float64Array(nS).fill(4096);
    for (let t = 0; t < nS; t++) {
      const mean = source.statAt(s.id, "mean", t);
      const std = source.statAt(s.id, "std", t);
      const grid = gaussHistogram(
        mean,
        std * (1 + 0.01 * random()),
        4096,
        counts.subarray(t * BINS, (t + 1) * BINS),
      );
      lo[t] = grid.lo;
      width[t] = grid.width;
    }
    source.hists.set(s.id, { step: source.stepList.slice(), lo, width, sample, counts });
  }
}
