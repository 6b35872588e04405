/**
 * The wire contract between the kernel and the front end, TypeScript side.
 *
 * Mirrors `nbviz/_protocol.py` name for name: `tests/test_protocol.py` bundles this file, prints
 * `JSON.stringify(PROTOCOL)` and compares it with the Python constants, so keep `PROTOCOL` a plain
 * JSON value and change both files together.
 */

export const PROTOCOL = {
  PROTOCOL_VERSION: 1,
  HIST_BINS: 64,
  STAT_FIELDS: ["numel", "min", "max", "mean", "std", "l2", "zeros", "nan", "posinf", "neginf"],
  RECORD_FIELDS: [
    "numel",
    "min",
    "max",
    "mean",
    "std",
    "l2",
    "zeros",
    "nan",
    "posinf",
    "neginf",
    "dead",
    "saturated",
    "ratio",
  ],
  KINDS: ["weight", "grad", "activation", "activation_grad", "update"],
  HIST_FIELDS: ["counts", "lo", "width", "sample"],
  LAYER_FIELDS: [
    "name",
    "parent",
    "depth",
    "cls",
    "module",
    "own_params",
    "total_params",
    "trainable",
    "frozen",
    "buffers",
    "buffer_elements",
    "dtypes",
    "devices",
    "lazy",
    "shared",
    "alias_of",
    "tensors",
  ],
  TENSOR_FIELDS: [
    "name",
    "layer",
    "param",
    "shape",
    "dtype",
    "device",
    "requires_grad",
    "lazy",
    "complex",
    "shared_with",
  ],
  STATE_TRAITS: [
    "layers",
    "tensors",
    "stats",
    "hist",
    "selected",
    "step",
    "num_steps",
    "warnings",
    "outputs",
    "graph",
    "expanded",
    "unfolded",
    "overlay",
    "kind",
    "protocol_version",
  ],
  OVERLAY_METRICS: ["grad_norm", "activation_std", "update_ratio", "dead_fraction", "nonfinite"],
  VIEW_TRAITS: ["state", "view"],
  VIEW_KINDS: ["structure", "picker", "histogram", "slider", "flow"],
  REQUEST_TYPES: ["exact_histogram", "autograd_graph", "run_snapshot", "run_histograms"],
  RESPONSE_TYPE: "response",
  RUN_APPEND_TYPE: "run_append",
  REQUEST_TIMEOUT_MS: 15000,
} as const;

export type StatField = (typeof PROTOCOL.STAT_FIELDS)[number];
export type HistField = (typeof PROTOCOL.HIST_FIELDS)[number];
export type LayerField = (typeof PROTOCOL.LAYER_FIELDS)[number];
export type TensorField = (typeof PROTOCOL.TENSOR_FIELDS)[number];
export type StateTrait = (typeof PROTOCOL.STATE_TRAITS)[number];
export type ViewTrait = (typeof PROTOCOL.VIEW_TRAITS)[number];
export type ViewKind = (typeof PROTOCOL.VIEW_KINDS)[number];
export type RequestType = (typeof PROTOCOL.REQUEST_TYPES)[number];
export type RecordField = (typeof PROTOCOL.RECORD_FIELDS)[number];
export type OverlayMetric = (typeof PROTOCOL.OVERLAY_METRICS)[number];
export type Kind = (typeof PROTOCOL.KINDS)[number];

/** Column of each statistic in a row of the `stats` array. */
export const STAT_INDEX: Readonly<Record<StatField, number>> = Object.freeze(
  Object.fromEntries(PROTOCOL.STAT_FIELDS.map((field, i) => [field, i])) as Record<
    StatField,
    number
  >,
);

/** One row of the `layers` trait: a module in the hierarchy, depth first, root ("") first. */
export interface LayerRow {
  /** Qualified name, "" for the root. */
  name: string;
  /** Index of the parent row, -1 for the root. */
  parent: number;
  depth: number;
  /** Class name. */
  cls: string;
  /** Python module defining the class. */
  module: string;
  own_params: number;
  total_params: number;
  trainable: number;
  frozen: number;
  buffers: string[];
  buffer_elements: number;
  dtypes: string[];
  devices: string[];
  lazy: boolean;
  shared: boolean;
  /** Qualified name of the first path to this same module object, or null. */
  alias_of: string | null;
  /** Indices into `tensors` of this module's own parameters. */
  tensors: number[];
}

/** One row of the `tensors` trait: a parameter, by its first qualified name. */
export interface TensorRow {
  /** Qualified name, e.g. "layer1.0.conv1.weight". */
  name: string;
  /** Index of the owning row in `layers`. */
  layer: number;
  /** Attribute name in the owning module, e.g. "weight". */
  param: string;
  /** Empty for lazy (uninitialized) parameters. */
  shape: number[];
  dtype: string;
  device: string;
  requires_grad: boolean;
  lazy: boolean;
  /** Statistics are of the magnitude. */
  complex: boolean;
  /** Other qualified names of this same parameter. */
  shared_with: string[];
}

/** A binary array as ipywidgets delivers it: little-endian, C order. */
export interface WireArray {
  view: DataView;
  dtype: string;
  shape: number[];
}

/** A binary array inside a custom message: `buffer` indexes the message's buffers. */
export interface BufferRef {
  buffer: number;
  dtype: string;
  shape: number[];
}

/** The `hist` trait: counts [n, HIST_BINS]; lo, width, sample [n]; all float64. */
export type HistWire = Record<HistField, WireArray>;

/** Synced traits of the shared state model. */
export interface StateTraits {
  layers: LayerRow[];
  tensors: TensorRow[];
  /** float64 [nTensors, STAT_FIELDS.length]. */
  stats: WireArray;
  hist: HistWire;
  /** Qualified layer name ("" = root) or null for no selection. */
  selected: string | null;
  step: number;
  num_steps: number;
  warnings: string[];
  /** Layer name -> output shapes, one string per call (e.g. "16×64×8×8"); empty without a probe. */
  outputs: Record<string, string[]>;
  /** The dataflow graph of the example input's forward (docs/graph-format.md), or null. */
  graph: Record<string, unknown> | null;
  /** Open groups of the structure diagram, as "name#call". */
  expanded: string[];
  /** Folds shown unfolded, by their first member's "name#call". */
  unfolded: string[];
  /** The metric the diagram's boxes are coloured by, or null. */
  overlay: OverlayMetric | null;
  /** The kind the statistics view shows over time. */
  kind: Kind;
  protocol_version: number;
}

/** Synced traits of every view (besides anywidget's own). */
export interface ViewTraits {
  /** "IPY_MODEL_<id>" of the shared state model. */
  state: string;
  view: ViewKind;
}

/** Front end -> kernel: ask for the exact (unsampled) histogram of one tensor. */
export interface ExactHistogramRequest {
  type: "exact_histogram";
  id: string;
  /** Index into `tensors`. */
  tensor: number;
}

/** Front end -> kernel: everything recorded, for a view displayed anew (docs/live-data.md). */
export interface RunSnapshotRequest {
  type: "run_snapshot";
  id: string;
}

/** Front end -> kernel: every stored histogram of these series ids. */
export interface RunHistogramsRequest {
  type: "run_histograms";
  id: string;
  series: number[];
}

export type Request =
  | ExactHistogramRequest
  | AutogradGraphRequest
  | RunSnapshotRequest
  | RunHistogramsRequest;

/** Front end -> kernel: torchviz's drawing of the example's backward graph. */
export interface AutogradGraphRequest {
  type: "autograd_graph";
  id: string;
}

/** The `result` of a successful `exact_histogram` response. */
export interface ExactHistogramResult {
  lo: number;
  width: number;
  sample: number;
  counts: BufferRef;
}

export interface ResponseOk<R = unknown> {
  type: typeof PROTOCOL.RESPONSE_TYPE;
  id: string;
  ok: true;
  result: R;
}

export interface ResponseError {
  type: typeof PROTOCOL.RESPONSE_TYPE;
  id: string | null;
  ok: false;
  error: string;
}

export type Response<R = unknown> = ResponseOk<R> | ResponseError;

// Compile-time checks that the interfaces above have exactly the protocol's keys.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type _ContractChecks = [
  Assert<Same<keyof LayerRow, LayerField>>,
  Assert<Same<keyof TensorRow, TensorField>>,
  Assert<Same<keyof StateTraits, StateTrait>>,
  Assert<Same<keyof ViewTraits, ViewTrait>>,
  Assert<Same<keyof HistWire, HistField>>,
  Assert<Same<Request["type"], RequestType>>,
];
