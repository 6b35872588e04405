/**
 * The browser's copy of a recorded run (docs/live-data.md): every statistics view reads it.
 *
 * One per state model, filled by `run_append` messages and responses (./attach.ts). Columnar
 * and step-sorted per series, so a view redrawing at another step does binary searches over
 * typed arrays and allocates nothing per frame.
 */

import { decode } from "../codec";
import { PROTOCOL, type RecordField } from "../protocol";
import { f32, f64, lastAtOrBefore, StepColumns } from "./columns";

export type Kind = "weight" | "grad" | "activation" | "activation_grad" | "update";
export type Mode = "train" | "eval";
export type Metric =
  | "grad_norm"
  | "activation_std"
  | "update_ratio"
  | "dead_fraction"
  | "nonfinite";

export interface SeriesInfo {
  id: number;
  layer: string;
  kind: Kind;
  tensor: string;
  call: number;
  mode: Mode;
  dtype: string;
}

export interface StepRow {
  step: number;
  mode: Mode;
  skipped: boolean;
  reason: string;
  wall_time: number;
}

export interface AnomalyRow {
  step: number;
  phase: string;
  series: number;
  nan: number;
  posinf: number;
  neginf: number;
  detail: string;
}

/**
 * Retention thinned the series in the kernel's run after its rows were sent: the rows held of
 * `table` at steps up to `through` are dropped; the run's rows there come in this message and
 * the next ones.
 */
export interface ThinnedRow {
  series: number;
  table: "stats" | "hists";
  through: number;
}

/** A `run_append` message, or the `result` of a run_snapshot / run_histograms response. */
export interface Append {
  type?: string;
  revision: number;
  series: SeriesInfo[];
  steps: StepRow[];
  anomalies: AnomalyRow[];
  /** Absent from kernels before it was added. */
  thinned?: ThinnedRow[];
  stats: { series: unknown; step: unknown; values: unknown };
  hists: {
    series: unknown;
    step: unknown;
    lo: unknown;
    width: unknown;
    sample: unknown;
    counts: unknown;
  };
  complete: boolean;
}

export interface Histogram {
  step: number;
  lo: number;
  width: number;
  sample: number;
  /** HIST_BINS counts (a view into the store: copy it to keep it). */
  counts: Float32Array;
}

const F = PROTOCOL.RECORD_FIELDS.length;
const BINS = PROTOCOL.HIST_BINS;
const FIELD = Object.fromEntries(PROTOCOL.RECORD_FIELDS.map((f, i) => [f, i])) as Record<
  RecordField,
  number
>;

function statColumns(): StepColumns {
  return new StepColumns([{ name: "values", width: F, make: f32 }]);
}

function histColumns(): StepColumns {
  return new StepColumns([
    { name: "lo", width: 1, make: f64 },
    { name: "width", width: 1, make: f64 },
    { name: "sample", width: 1, make: f64 },
    { name: "counts", width: BINS, make: f32 },
  ]);
}

/** Schedules one call per animation frame (setTimeout outside a browser). */
export type FrameScheduler = (callback: () => void) => void;

const nextFrame: FrameScheduler = (callback) => {
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(() => callback());
  else setTimeout(callback, 16);
};

export class RunStore {
  readonly series: SeriesInfo[] = [];
  /** Revision of the run the store has been brought up to. */
  revision = -1;
  /** Every row up to `revision` is held (a complete snapshot was applied). */
  complete = false;
  /** Counts the thinning notices applied: rows at old steps changed (caches keyed on it). */
  thinnings = 0;
  private readonly statRows: StepColumns[] = [];
  private readonly histRows: StepColumns[] = [];
  private readonly trainSteps = new StepColumns([{ name: "skipped", width: 1, make: f32 }]);
  private trainSkipped = new Uint8Array(0);
  private readonly stepInfo = new Map<string, StepRow>();
  private readonly anomalyRows: AnomalyRow[] = [];
  private readonly anomalyKeys = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private scheduled = false;
  private requester: ((series: number[]) => void) | null = null;

  constructor(private readonly schedule: FrameScheduler = nextFrame) {}

  // -- reading ----------------------------------------------------------------------------------

  seriesOf(layer: string, kind?: Kind, mode?: Mode): readonly SeriesInfo[] {
    return this.series.filter(
      (s) =>
        s !== undefined &&
        s.layer === layer &&
        (kind === undefined || s.kind === kind) &&
        (mode === undefined || s.mode === mode),
    );
  }

  /** Train steps, ascending, and whether each was skipped (1) or not (0). */
  steps(): { step: Int32Array; skipped: Uint8Array } {
    const n = this.trainSteps.length;
    if (this.trainSkipped.length !== n) {
      const flags = this.trainSteps.view("skipped");
      this.trainSkipped = Uint8Array.from(flags, (v) => (v ? 1 : 0));
    }
    return { step: this.trainSteps.steps(), skipped: this.trainSkipped };
  }

  /** Details of one step (reason of a skip, wall time), or undefined. */
  stepInfoAt(step: number, mode: Mode = "train"): StepRow | undefined {
    return this.stepInfo.get(`${mode}:${step}`);
  }

  lastStep(): number {
    const n = this.trainSteps.length;
    return n === 0 ? -1 : (this.trainSteps.step[n - 1] as number);
  }

  stats(series: number): { step: Int32Array; values: Float32Array } {
    const rows = this.statRows[series] ?? statColumns();
    return { step: rows.steps(), values: rows.view("values") as Float32Array };
  }

  /** The field's value in the latest row at or before `step`; NaN when there is none. */
  statAt(series: number, field: RecordField, step: number): number {
    const rows = this.statRows[series];
    if (rows === undefined) return Number.NaN;
    const at = lastAtOrBefore(rows.step, rows.length, step);
    if (at < 0) return Number.NaN;
    return (rows.columns.values as Float32Array)[at * F + FIELD[field]] as number;
  }

  histograms(series: number): {
    step: Int32Array;
    lo: Float64Array;
    width: Float64Array;
    sample: Float64Array;
    counts: Float32Array;
  } {
    const rows = this.histRows[series] ?? histColumns();
    return {
      step: rows.steps(),
      lo: rows.view("lo") as Float64Array,
      width: rows.view("width") as Float64Array,
      sample: rows.view("sample") as Float64Array,
      counts: rows.view("counts") as Float32Array,
    };
  }

  /** The latest histogram at or before `step`, or null. */
  histogramAt(series: number, step: number): Histogram | null {
    const rows = this.histRows[series];
    if (rows === undefined) return null;
    const at = lastAtOrBefore(rows.step, rows.length, step);
    if (at < 0) return null;
    const c = rows.columns;
    return {
      step: rows.step[at] as number,
      lo: (c.lo as Float64Array)[at] as number,
      width: (c.width as Float64Array)[at] as number,
      sample: (c.sample as Float64Array)[at] as number,
      counts: (c.counts as Float32Array).subarray(at * BINS, (at + 1) * BINS),
    };
  }

  /** How many histogram rows of `series` are held (0 when none). */
  histogramCount(series: number): number {
    return this.histRows[series]?.length ?? 0;
  }

  /**
   * One value per layer at `step` (layers without one are left out):
   * grad_norm: L2 of the layer's weight gradients over its parameters (train);
   * activation_std: std of its first activation tensor of its first call;
   * update_ratio: the largest |Δw|/|w| over its parameters;
   * dead_fraction: `dead` of its first activation tensor of its first call;
   * nonfinite: NaN + ±Inf counts over every train series of the layer.
   */
  metricAt(metric: Metric, step: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.series) {
      if (s === undefined || s.mode !== "train") continue;
      switch (metric) {
        case "grad_norm":
          if (s.kind === "grad") this.combine(out, s.layer, this.statAt(s.id, "l2", step), sumSq);
          break;
        case "update_ratio":
          if (s.kind === "update")
            this.combine(out, s.layer, this.statAt(s.id, "ratio", step), max);
          break;
        case "activation_std":
        case "dead_fraction":
          if (s.kind === "activation" && s.call === 0 && !out.has(s.layer)) {
            const field = metric === "activation_std" ? "std" : "dead";
            const v = this.statAt(s.id, field, step);
            if (!Number.isNaN(v)) out.set(s.layer, v);
          }
          break;
        case "nonfinite": {
          const v =
            this.statAt(s.id, "nan", step) +
            this.statAt(s.id, "posinf", step) +
            this.statAt(s.id, "neginf", step);
          this.combine(out, s.layer, v, add);
          break;
        }
      }
    }
    if (metric === "grad_norm") for (const [k, v] of out) out.set(k, Math.sqrt(v));
    return out;
  }

  anomalies(): readonly AnomalyRow[] {
    return this.anomalyRows;
  }

  /** The first anomaly by step (then by arrival, which is phase order within a step). */
  firstAnomaly(): AnomalyRow | null {
    let first: AnomalyRow | null = null;
    for (const a of this.anomalyRows) if (first === null || a.step < first.step) first = a;
    return first;
  }

  // -- histograms on request --------------------------------------------------------------------

  /** Asks the kernel for every stored histogram of these series (answered when it is idle). */
  requestHistograms(series: readonly number[]): void {
    this.requester?.([...series]);
  }

  /** Set by ./attach.ts: how `requestHistograms` reaches the kernel. */
  setRequester(requester: ((series: number[]) => void) | null): void {
    this.requester = requester;
  }

  // -- writing ----------------------------------------------------------------------------------

  /**
   * Merges an append or a response result: thinning notices first (their rows follow), then
   * rows, replacing those held at the same (series, step).
   */
  apply(message: Append, buffers: readonly unknown[] = []): void {
    for (const s of message.series ?? []) this.series[s.id] = { ...s };
    for (const s of message.steps ?? []) this.addStep(s);
    for (const a of message.anomalies ?? []) {
      const key = `${a.step}:${a.phase}:${a.series}:${a.detail}`;
      if (this.anomalyKeys.has(key)) continue; // a snapshot repeats what pushes brought
      this.anomalyKeys.add(key);
      this.anomalyRows.push({ ...a });
    }
    for (const t of message.thinned ?? []) {
      const rows = t.table === "stats" ? this.statRows[t.series] : this.histRows[t.series];
      rows?.dropThrough(t.through);
      this.thinnings += 1;
    }
    this.applyStats(message.stats, buffers);
    this.applyHists(message.hists, buffers);
    if (typeof message.revision === "number" && message.revision > this.revision) {
      this.revision = message.revision;
    }
    if (message.complete === true) this.complete = true;
    this.changed();
  }

  /** Calls `listener` once per animation frame after any `apply`; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private addStep(s: StepRow): void {
    this.stepInfo.set(`${s.mode}:${s.step}`, { ...s });
    if (s.mode !== "train") return;
    this.trainSteps.put(s.step, { skipped: [s.skipped ? 1 : 0] }, 0);
    this.trainSkipped = new Uint8Array(0); // rebuilt on the next steps()
  }

  private applyStats(stats: Append["stats"] | undefined, buffers: readonly unknown[]): void {
    if (stats === undefined) return;
    const series = decode(stats.series, buffers, "stats.series").data;
    const step = decode(stats.step, buffers, "stats.step").data;
    const values = decode(stats.values, buffers, "stats.values").data;
    const source = { values };
    for (let i = 0; i < step.length; i++) {
      const id = series[i] as number;
      const rows = this.statRows[id] ?? statColumns();
      this.statRows[id] = rows;
      rows.put(step[i] as number, source, i);
    }
  }

  private applyHists(hists: Append["hists"] | undefined, buffers: readonly unknown[]): void {
    if (hists === undefined) return;
    const series = decode(hists.series, buffers, "hists.series").data;
    const step = decode(hists.step, buffers, "hists.step").data;
    const source = {
      lo: decode(hists.lo, buffers, "hists.lo").data,
      width: decode(hists.width, buffers, "hists.width").data,
      sample: decode(hists.sample, buffers, "hists.sample").data,
      counts: decode(hists.counts, buffers, "hists.counts").data,
    };
    for (let i = 0; i < step.length; i++) {
      const id = series[i] as number;
      const rows = this.histRows[id] ?? histColumns();
      this.histRows[id] = rows;
      rows.put(step[i] as number, source, i);
    }
  }

  private changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(() => {
      this.scheduled = false;
      for (const listener of [...this.listeners]) {
        try {
          listener();
        } catch (error) {
          console.error("nbviz: a run store listener failed", error);
        }
      }
    });
  }

  private combine(
    out: Map<string, number>,
    layer: string,
    value: number,
    join: (a: number, b: number) => number,
  ): void {
    if (Number.isNaN(value)) return;
    const held = out.get(layer);
    out.set(layer, held === undefined ? join(Number.NaN, value) : join(held, value));
  }
}

// Joins for `combine`: the first value arrives with `a` NaN.
const sumSq = (a: number, b: number): number => (Number.isNaN(a) ? b * b : a + b * b);
const max = (a: number, b: number): number => (Number.isNaN(a) ? b : Math.max(a, b));
const add = (a: number, b: number): number => (Number.isNaN(a) ? b : a + b);
