/** Test helpers: rows with defaults, wire arrays, and a fake ipywidgets/anywidget model. */

import type { Append, SeriesInfo, ThinnedRow } from "../src/live/store";
import {
  type LayerRow,
  PROTOCOL,
  type StateTraits,
  type TensorRow,
  type WireArray,
} from "../src/protocol";

export function layer(partial: Partial<LayerRow> & Pick<LayerRow, "name">): LayerRow {
  return {
    parent: -1,
    depth: 0,
    cls: "Module",
    module: "torch.nn",
    own_params: 0,
    total_params: 0,
    trainable: 0,
    frozen: 0,
    buffers: [],
    buffer_elements: 0,
    dtypes: [],
    devices: [],
    lazy: false,
    shared: false,
    alias_of: null,
    tensors: [],
    ...partial,
  };
}

export function tensor(partial: Partial<TensorRow> & Pick<TensorRow, "name" | "layer">): TensorRow {
  return {
    param: partial.name.split(".").pop() ?? "",
    shape: [2, 2],
    dtype: "float32",
    device: "cpu",
    requires_grad: true,
    lazy: false,
    complex: false,
    shared_with: [],
    ...partial,
  };
}

/**
 * A small hierarchy:
 *   0 ""                     Net
 *   1 features               Sequential
 *   2 features.conv1         Conv2d      tensors 0 (weight), 1 (bias)
 *   3 features.conv2         Conv2d      tensor 2 (weight)
 *   4 features.conv2.inner   Identity    (depth 3: hidden at first)
 *   5 head                   Linear      tensor 3 (weight)
 */
export function sampleLayers(): LayerRow[] {
  return [
    layer({ name: "", cls: "Net", depth: 0, parent: -1, total_params: 1500, trainable: 1500 }),
    layer({
      name: "features",
      cls: "Sequential",
      depth: 1,
      parent: 0,
      total_params: 1400,
      trainable: 1400,
    }),
    layer({
      name: "features.conv1",
      cls: "Conv2d",
      depth: 2,
      parent: 1,
      own_params: 1234,
      total_params: 1234,
      trainable: 1234,
      tensors: [0, 1],
      dtypes: ["float32"],
      devices: ["cpu"],
    }),
    layer({
      name: "features.conv2",
      cls: "Conv2d",
      depth: 2,
      parent: 1,
      own_params: 166,
      total_params: 166,
      frozen: 166,
      tensors: [2],
    }),
    layer({ name: "features.conv2.inner", cls: "Identity", depth: 3, parent: 3 }),
    layer({
      name: "head",
      cls: "Linear",
      depth: 1,
      parent: 0,
      own_params: 100,
      total_params: 100,
      trainable: 100,
      tensors: [3],
    }),
  ];
}

export function sampleTensors(): TensorRow[] {
  return [
    tensor({ name: "features.conv1.weight", layer: 2, shape: [2, 617] }),
    tensor({ name: "features.conv1.bias", layer: 2, shape: [0] }),
    tensor({ name: "features.conv2.weight", layer: 3, shape: [166], requires_grad: false }),
    tensor({ name: "head.weight", layer: 5, shape: [10, 10] }),
  ];
}

/** A DataView over a copy of `data`'s bytes starting at byte `offset` of a larger buffer. */
export function viewAt(data: ArrayBufferView, offset = 0): DataView {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const buffer = new ArrayBuffer(offset + bytes.byteLength + 3);
  new Uint8Array(buffer).set(bytes, offset);
  return new DataView(buffer, offset, bytes.byteLength);
}

export function wire(
  data: Float64Array | Float32Array | Int32Array | Uint8Array,
  shape: number[],
  dtype = "float64",
  offset = 0,
): WireArray {
  return { view: viewAt(data, offset), dtype, shape };
}

const NSTATS = PROTOCOL.STAT_FIELDS.length;
const NBINS = PROTOCOL.HIST_BINS;

/** `stats` rows from objects of STAT_FIELDS (missing fields NaN). */
export function statsWire(
  rows: Partial<Record<(typeof PROTOCOL.STAT_FIELDS)[number], number>>[],
): WireArray {
  const data = new Float64Array(rows.length * NSTATS).fill(Number.NaN);
  rows.forEach((row, k) => {
    PROTOCOL.STAT_FIELDS.forEach((field, j) => {
      const v = row[field];
      if (v !== undefined) data[k * NSTATS + j] = v;
    });
  });
  return wire(data, [rows.length, NSTATS]);
}

export interface HistRow {
  counts?: number[];
  lo?: number;
  width?: number;
  sample?: number;
}

export function histWire(rows: HistRow[]): Record<"counts" | "lo" | "width" | "sample", WireArray> {
  const counts = new Float64Array(rows.length * NBINS);
  rows.forEach((row, k) => {
    (row.counts ?? []).forEach((c, i) => {
      counts[k * NBINS + i] = c;
    });
  });
  const vector = (get: (r: HistRow) => number): WireArray =>
    wire(Float64Array.from(rows, get), [rows.length]);
  return {
    counts: wire(counts, [rows.length, NBINS]),
    lo: vector((r) => r.lo ?? 0),
    width: vector((r) => r.width ?? 1),
    sample: vector((r) => r.sample ?? 0),
  };
}

type Handler = (...args: unknown[]) => void;

/** Enough of an ipywidgets model (Backbone-like events) for wiring tests. */
export class FakeModel<T extends Record<string, unknown> = Record<string, unknown>> {
  attrs: T;
  handlers = new Map<string, Set<Handler>>();
  sent: unknown[] = [];
  saves = 0;
  models = new Map<string, FakeModel>();
  widget_manager = {
    get_model: async (id: string): Promise<FakeModel> => {
      const model = this.models.get(id);
      if (model === undefined) throw new Error(`no model ${id}`);
      return model;
    },
  };

  constructor(attrs: T) {
    this.attrs = { ...attrs };
  }

  get<K extends keyof T>(key: K): T[K] {
    return this.attrs[key];
  }

  set<K extends keyof T>(key: K, value: T[K]): void {
    const old = this.attrs[key];
    this.attrs[key] = value;
    if (old !== value) this.emit(`change:${String(key)}`);
  }

  on(event: string, callback: (...args: never[]) => void): void {
    const handler = callback as Handler;
    let set = this.handlers.get(event);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler);
  }

  off(event?: string | null, callback?: ((...args: never[]) => void) | null): void {
    const handler = callback as Handler | null | undefined;
    if (event == null) {
      this.handlers.clear();
      return;
    }
    if (handler == null) this.handlers.delete(event);
    else this.handlers.get(event)?.delete(handler);
  }

  emit(event: string, ...args: unknown[]): void {
    for (const handler of [...(this.handlers.get(event) ?? [])]) handler(...args);
  }

  listenerCount(): number {
    let n = 0;
    for (const set of this.handlers.values()) n += set.size;
    return n;
  }

  save_changes(): void {
    this.saves += 1;
  }

  send(content: unknown): void {
    this.sent.push(content);
  }
}

/** Lets queued microtasks (coalesced view updates) and resolved promises run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A state model as the kernel fills it before any training: sampleLayers, their parameters. */
export function makeState(
  overrides: Partial<StateTraits> | Record<string, unknown> = {},
): FakeModel {
  const attrs: StateTraits = {
    layers: sampleLayers(),
    tensors: sampleTensors(),
    stats: statsWire([
      { numel: 1234, min: -1, max: 1, mean: 0, std: 0.5, zeros: 0, nan: 0, posinf: 0, neginf: 0 },
      { numel: 0, zeros: 0, nan: 0, posinf: 0, neginf: 0 },
      { numel: 166, min: 0, max: 1, mean: 0.5, std: 0.2, zeros: 0, nan: 0, posinf: 0, neginf: 0 },
      { numel: 100, min: 0, max: 1, mean: 0.5, std: 0.2, zeros: 0, nan: 0, posinf: 0, neginf: 0 },
    ]),
    hist: histWire([
      { counts: [1, 2], lo: -1, width: 2 / 64, sample: 3 },
      { sample: 0 },
      { counts: [5], lo: 0, width: 1 / 64, sample: 166 },
      { counts: [5], lo: 0, width: 1 / 64, sample: 100 },
    ]),
    selected: null,
    step: 0,
    num_steps: 5,
    warnings: [],
    outputs: {},
    graph: null,
    expanded: [],
    unfolded: [],
    overlay: null,
    kind: "weight",
    protocol_version: PROTOCOL.PROTOCOL_VERSION,
    ...overrides,
  } as StateTraits;
  return new FakeModel(attrs as unknown as Record<string, unknown>);
}

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

/** A `run_append` message as the kernel encodes it (`{buffer, dtype, shape}` + buffers). */
export function runAppend(
  parts: {
    series?: SeriesInfo[];
    steps?: number[];
    skipped?: number[];
    stats?: StatIn[];
    hists?: HistIn[];
    anomalies?: Append["anomalies"];
    thinned?: ThinnedRow[];
    revision?: number;
    complete?: boolean;
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
      skipped: (parts.skipped ?? []).includes(step),
      reason: "",
      wall_time: 0,
    })),
    anomalies: parts.anomalies ?? [],
    thinned: parts.thinned ?? [],
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
    complete: parts.complete ?? false,
  };
  return { message, buffers };
}

/** Waits past the run store's frame-batched change notification. */
export function nextFrames(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 40));
}
