"""The wire contract between the kernel and the front end, Python side.

`js/src/protocol.ts` mirrors every name here; `tests/test_protocol.py` fails when the two drift.
Arrays cross as `{"view": bytes, "dtype": str, "shape": [...]}` (little-endian, C order); ipywidgets
lifts the bytes into binary buffers, and `js/src/codec.ts` decodes them in one place.
"""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1

# Fixed number of bins of every histogram: a stable grid (see nbviz.stats) of this many bins.
HIST_BINS: Final = 64

# Columns of the `stats` array, one row per tensor, float64 (counts are exact integers in float64).
STAT_FIELDS: Final = (
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
)

# Columns of a recorded statistics row (live data, run files): STAT_FIELDS, then three diagnostics
# that are NaN where they do not apply:
#   dead: fraction of channels never positive across the batch (activations of ReLU-family modules)
#   saturated: fraction of elements within 1% of the asymptotes (activations of tanh/sigmoid)
#   ratio: |update| / |weight| with L2 norms (the "update" kind, per parameter)
RECORD_FIELDS: Final = (*STAT_FIELDS, "dead", "saturated", "ratio")

# What is captured per module and step.
KINDS: Final = ("weight", "grad", "activation", "activation_grad", "update")

# Keys of the `hist` trait: counts [n, HIST_BINS] float64; lo, width, sample [n] float64.
# Bin i of tensor k covers [lo[k] + i*width[k], lo[k] + (i+1)*width[k]); sample[k] is the number of
# elements the counts were taken from, numel when exact.
HIST_FIELDS: Final = ("counts", "lo", "width", "sample")

# Keys of one row of the `layers` trait (JSON): the module hierarchy in depth-first order.
LAYER_FIELDS: Final = (
    "name",  # qualified name, "" for the root
    "parent",  # index of the parent row, -1 for the root
    "depth",
    "cls",  # class name
    "module",  # Python module defining the class
    "own_params",  # elements in this module's own parameters (lazy ones count 0)
    "total_params",  # elements in the subtree, each shared parameter once
    "trainable",  # elements in the subtree with requires_grad
    "frozen",  # elements in the subtree without requires_grad
    "buffers",  # names of this module's own buffers
    "buffer_elements",
    "dtypes",  # sorted dtypes of own parameters and buffers
    "devices",  # sorted devices of own parameters and buffers
    "lazy",  # has an uninitialized (lazy) parameter
    "shared",  # has a parameter that another module also holds
    "alias_of",  # qualified name of the first path to this same module object, or null
    "tensors",  # indices into `tensors` of this module's own parameters
)

# Keys of one row of the `tensors` trait (JSON): a parameter, by its first qualified name.
TENSOR_FIELDS: Final = (
    "name",  # qualified name, e.g. "layer1.0.conv1.weight"
    "layer",  # index of the owning row in `layers`
    "param",  # attribute name in the owning module, e.g. "weight"
    "shape",
    "dtype",
    "device",
    "requires_grad",
    "lazy",
    "complex",  # statistics are of the magnitude
    "shared_with",  # other qualified names of this same parameter
)

# Synced traits of the shared state model (a plain ipywidgets model, no view of its own).
STATE_TRAITS: Final = (
    "layers",
    "tensors",
    "stats",
    "hist",
    "selected",
    "step",
    "num_steps",
    "warnings",
    "outputs",  # layer name -> output shapes per call, from a probe forward with an example input
    "graph",  # the dataflow graph of that forward (docs/graph-format.md), or null without one
    "expanded",  # open groups of the structure diagram, by "name#call" (docs/graph-format.md)
    "unfolded",  # folds of repeated blocks shown unfolded, by their first member's "name#call"
    "overlay",  # the metric the diagram's boxes are coloured by (OVERLAY_METRICS), or null
    "kind",  # the kind the statistics view shows over time (one of KINDS)
    "protocol_version",
)

# Metrics the structure diagram's overlay colours module boxes by (js/src/panels/scale.ts).
OVERLAY_METRICS: Final = (
    "grad_norm",
    "activation_std",
    "update_ratio",
    "dead_fraction",
    "nonfinite",
)

# Synced traits of every view widget besides anywidget's own.
VIEW_TRAITS: Final = ("state", "view")

# Values of a view's `view` trait: which drawing the shared bundle renders.
VIEW_KINDS: Final = ("structure", "picker", "histogram", "slider", "flow")

# Custom messages, front end -> kernel: {"type": ..., "id": str, ...}; answered by a
# {"type": "response", "id": same, "ok": bool, "error"?: str, ...} with binary buffers.
REQUEST_TYPES: Final = (
    "exact_histogram",  # {"tensor": index} -> a histogram message with binary buffers
    "autograd_graph",  # {} -> {"svg": str}: torchviz's drawing of the example's backward graph
    "run_snapshot",  # {} -> an append of everything recorded (docs/live-data.md)
    "run_histograms",  # {"series": [int]} -> an append of every stored histogram of these series
)
RESPONSE_TYPE: Final = "response"
# Kernel -> front end, unsolicited, on the state model: new run data (docs/live-data.md). The
# result of run_snapshot and run_histograms responses has this type too.
RUN_APPEND_TYPE: Final = "run_append"
# How long the front end waits for a response before it shows a timeout.
REQUEST_TIMEOUT_MS: Final = 15_000
