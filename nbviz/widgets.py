"""The widget classes: one shared state model and the views that draw it.

The views never talk to each other through Python: each holds a reference to the same `VizState`,
and in the browser they all read and write that one model, so picking a layer or moving the
slider updates every view even while the kernel is busy running a cell.
"""

from __future__ import annotations

import difflib
import pathlib
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets
import torch
import traitlets

from . import _protocol
from ._serialization import histogram_to_message, summaries_to_wire
from .dataflow.diagram import (
    GraphIndex,
    default_expanded,
    group_key,
    index_graph,
    with_enclosing,
)
from .hierarchy import Hierarchy
from .stats import histogram, summarize

if TYPE_CHECKING:
    from .live import LiveFeed

_STATIC = pathlib.Path(__file__).parent / "static"


class UnknownLayerError(ValueError, traitlets.TraitError):
    """A layer name that the model does not have (a ValueError, and a TraitError for traitlets)."""


def unknown_layer_message(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(repr(c) for c in close)}." if close else ""
    return f"No layer named {name!r} in this model ({len(names)} layers).{hint}"


class VizState(ipywidgets.Widget):  # type: ignore[misc]
    """Everything the views show, synced once and shared by all of them.

    A plain ipywidgets model (no view, no front-end code of its own): the views fetch it by id.
    """

    layers = traitlets.List(traitlets.Dict()).tag(sync=True)
    """Module hierarchy rows, depth first, keyed by `_protocol.LAYER_FIELDS`."""
    tensors = traitlets.List(traitlets.Dict()).tag(sync=True)
    """Parameter rows keyed by `_protocol.TENSOR_FIELDS`."""
    stats = traitlets.Dict().tag(sync=True)
    """float64 array [tensors, STAT_FIELDS] as a binary buffer."""
    hist = traitlets.Dict().tag(sync=True)
    """Histograms on a stable grid: HIST_FIELDS -> binary arrays."""
    selected = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """Qualified name of the selected layer ("" is the root), None for no selection."""
    step = traitlets.Int(0).tag(sync=True)
    """The training step number the views show. Recorded steps may be sparse (every n-th step):
    views show the latest recorded step at or before it (the browser snaps to recorded steps)."""
    num_steps = traitlets.Int(1).tag(sync=True)
    """One past the last recorded training step (1 before any), kept current while a run grows:
    `step` ranges over 0 .. num_steps - 1."""
    warnings = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """What could not be seen or shown, for the views to display."""
    outputs = traitlets.Dict(value_trait=traitlets.List(traitlets.Unicode())).tag(sync=True)
    """Output shapes per layer and call (e.g. "16×64×8×8"), when an example input was given."""
    graph = traitlets.Dict(default_value=None, allow_none=True).tag(sync=True)
    """The dataflow graph of the example input's forward (`nbviz.trace`, wire format in
    docs/graph-format.md), None without an example input."""
    expanded = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Open groups of the structure diagram, as "name#call" (call 0 for a module's first call);
    the browser writes it as the user opens and closes them. Assigning a bare module name opens
    every call of it. Reset to the default (everything collapsed but a single top-level module
    wrapping the rest) when `graph` changes."""
    unfolded = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Folds of repeated blocks ("Block ×6") shown unfolded, by their first member's
    "name#call"."""
    overlay = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """The metric the diagram colours module boxes by (`_protocol.OVERLAY_METRICS`), or None."""
    kind = traitlets.Unicode("weight").tag(sync=True)
    """The kind the statistics view shows over time (one of `_protocol.KINDS`)."""
    protocol_version = traitlets.Int(_protocol.PROTOCOL_VERSION).tag(sync=True)

    def __init__(self, hierarchy: Hierarchy, *, summaries: bool = True, **kwargs: Any) -> None:
        """`summaries=False` leaves `stats` and `hist` empty until `ensure_summaries()`."""
        self._names = hierarchy.names()
        self._index: GraphIndex | None = None
        self._draw_autograd: Callable[[], str] | None = None
        self._live: LiveFeed | None = None
        # Weak references: the widget must not keep a deleted model's parameters alive.
        self._params: list[weakref.ref[torch.Tensor] | None] = [
            None if p.lazy else weakref.ref(p.tensor) for p in hierarchy.params
        ]
        self._summarized = summaries
        if summaries:
            kwargs["stats"], kwargs["hist"] = self._summaries()
        super().__init__(layers=hierarchy.wire_layers(), tensors=hierarchy.wire_tensors(), **kwargs)
        # Run data requests come on this model's own comm (js/src/live/attach.ts).
        self.on_msg(self._answer)

    def ensure_summaries(self) -> None:
        """Sets `stats` and `hist` from the parameters' values now, unless they are set (or the
        widget is closed)."""
        if self._summarized or self.comm is None:
            return
        with self.hold_sync():
            self.stats, self.hist = self._summaries()
        self._summarized = True

    def _summaries(self) -> tuple[dict[str, Any], dict[str, Any]]:
        tensors = [None if ref is None else ref() for ref in self._params]
        return summaries_to_wire(summarize(tensors))

    def _answer(self, _widget: object, content: Any, _buffers: Sequence[bytes]) -> None:
        reply, buffers = self.handle_request(content)
        self.send(reply, buffers)

    @traitlets.validate("selected")
    def _check_selected(self, proposal: dict[str, Any]) -> str | None:
        name: str | None = proposal["value"]
        if name is not None and name not in self._names:
            raise UnknownLayerError(unknown_layer_message(name, self._names))
        return name

    @traitlets.observe("graph")
    def _new_graph(self, change: dict[str, Any]) -> None:
        graph = change["new"]
        self._index = None if graph is None else index_graph(graph)
        with self.hold_sync():
            self.unfolded = []
            self.expanded = (
                []
                if self._index is None
                else sorted(group_key(self._node(i)) for i in default_expanded(self._index))
            )

    def _node(self, node_id: int) -> dict[str, Any]:
        assert self._index is not None
        node = self._index.nodes[node_id]
        assert node is not None
        return dict(node)

    @traitlets.validate("expanded")
    def _check_expanded(self, proposal: dict[str, Any]) -> list[str]:
        groups = {} if self._index is None else self._index.group_keys()
        by_name: dict[str, list[str]] = {}
        for key, node_id in groups.items():
            by_name.setdefault(self._node(node_id)["name"], []).append(key)
        out: list[str] = []
        for entry in proposal["value"]:
            keys = [entry] if entry in groups else by_name.get(entry)
            if keys is None:
                raise ValueError(_unknown("group", entry, list(groups), self._index))
            out.extend(k for k in keys if k not in out)
        return out

    def open_with_enclosing(self, keys: list[str]) -> list[str]:
        """Group keys with those of the groups around them."""
        return [] if self._index is None else with_enclosing(self._index, keys)

    @traitlets.validate("unfolded")
    def _check_unfolded(self, proposal: dict[str, Any]) -> list[str]:
        folds = [] if self._index is None else [f.key for f in self._index.folds]
        for entry in proposal["value"]:
            if entry not in folds:
                raise ValueError(_unknown("fold", entry, folds, self._index))
        return list(dict.fromkeys(proposal["value"]))

    @traitlets.validate("overlay")
    def _check_overlay(self, proposal: dict[str, Any]) -> str | None:
        metric: str | None = proposal["value"]
        if metric is not None and metric not in _protocol.OVERLAY_METRICS:
            raise ValueError(
                f"unknown overlay {metric!r}: choose one of {', '.join(_protocol.OVERLAY_METRICS)}"
            )
        return metric

    @traitlets.validate("kind")
    def _check_kind(self, proposal: dict[str, Any]) -> str:
        kind: str = proposal["value"]
        if kind not in _protocol.KINDS:
            raise ValueError(f"unknown kind {kind!r}: choose one of {', '.join(_protocol.KINDS)}")
        return kind

    @traitlets.validate("step")
    def _check_step(self, proposal: dict[str, Any]) -> int:
        step: int = proposal["value"]
        if not 0 <= step < self.num_steps:
            raise ValueError(f"step {step} is out of range: there are {self.num_steps} steps")
        return step

    def handle_request(self, content: Any) -> tuple[dict[str, Any], list[bytes]]:
        """Answer one request from the front end: never raises, errors go back as `ok: false`."""
        request_id = content.get("id") if isinstance(content, dict) else None
        if not isinstance(request_id, str):
            return _failure(None, "request without a string 'id'"), []
        try:
            kind = content.get("type")
            if kind == "exact_histogram":
                payload, buffers = self._exact_histogram(content.get("tensor"))
            elif kind == "autograd_graph":
                payload, buffers = self._autograd_graph(), []
            elif kind == "run_snapshot":
                payload, buffers = self._feed().snapshot()
            elif kind == "run_histograms":
                payload, buffers = self._feed().histograms(content.get("series"))
            else:
                return _failure(request_id, f"unknown request type {kind!r}"), []
        except (LookupError, TypeError, ValueError, RuntimeError) as error:
            return _failure(request_id, str(error)), []
        return {
            "type": _protocol.RESPONSE_TYPE,
            "id": request_id,
            "ok": True,
            "result": payload,
        }, buffers

    def draw_autograd_with(self, draw: Callable[[], str]) -> None:
        """Sets what answers the front end's "autograd_graph" requests: returns an SVG."""
        self._draw_autograd = draw

    def live_with(self, feed: LiveFeed) -> None:
        """Sets what answers the front end's run_snapshot and run_histograms requests."""
        self._live = feed

    def _feed(self) -> LiveFeed:
        if self._live is None:
            raise ValueError("this widget shows no recorded run (nbviz.show(..., record=False)?)")
        return self._live

    def _autograd_graph(self) -> dict[str, Any]:
        if self._draw_autograd is None:
            raise ValueError("no example input was given: nbviz.show(model, example_input)")
        return {"svg": self._draw_autograd()}

    def _exact_histogram(self, index: object) -> tuple[dict[str, Any], list[bytes]]:
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"'tensor' must be an integer index, not {index!r}")
        if not 0 <= index < len(self._params):
            raise IndexError(f"no tensor with index {index}: there are {len(self._params)}")
        name = self.tensors[index]["name"]
        ref = self._params[index]
        if ref is None:
            raise ValueError(f"{name} is lazy (uninitialized): it has no values yet")
        tensor = ref()
        if tensor is None:
            raise RuntimeError(f"{name} no longer exists: the model was deleted")
        return histogram_to_message(histogram(tensor, exact=True))


def _unknown(what: str, entry: str, known: list[str], index: GraphIndex | None) -> str:
    if index is None:
        return f"no {what} {entry!r}: this widget has no dataflow graph (no example input)"
    close = difflib.get_close_matches(entry, known, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(repr(c) for c in close)}." if close else ""
    return f"no {what} {entry!r} in the diagram ({len(known)} {what}s, as 'name#call').{hint}"


def _failure(request_id: str | None, error: str) -> dict[str, Any]:
    return {"type": _protocol.RESPONSE_TYPE, "id": request_id, "ok": False, "error": error}


class _View(anywidget.AnyWidget):
    """One view of a `VizState`; the same front-end bundle draws every kind."""

    _bundle = "widget.js"
    _esm = _STATIC / _bundle
    _css = _STATIC / "style.css"

    state = traitlets.Instance(VizState).tag(sync=True, **ipywidgets.widget_serialization)
    """The shared state this view draws."""
    view = traitlets.Unicode().tag(sync=True)
    """Which drawing: one of `_protocol.VIEW_KINDS`; fixed per class."""

    _kind = ""

    def __init__(self, state: VizState, **kwargs: Any) -> None:
        bundle = _STATIC / self._bundle
        if not bundle.is_file():
            raise RuntimeError(
                f"The nbviz front end is not built: {bundle} is missing. In a source"
                " checkout run `npm install && npm run build`, or reinstall nbviz with pip."
            )
        super().__init__(state=state, view=self._kind, **kwargs)
        self.on_msg(self._answer)

    def _answer(self, _widget: object, content: Any, _buffers: Sequence[bytes]) -> None:
        reply, buffers = self.state.handle_request(content)
        self.send(reply, buffers)


class StructureView(_View):
    """The dataflow graph of the example input (searchable, zoomable, nested modules collapsible,
    repeated blocks folded), the module tree, and the autograd graph; click to select a layer.

    Its own bundle: only this view carries the graph layout engine.
    """

    _bundle = "structure.js"
    _esm = _STATIC / _bundle
    _kind = "structure"


class LayerPicker(_View):
    """A searchable list of layers (by name or class), linked to the selection."""

    _kind = "picker"


class HistogramView(_View):
    """The selected layer at the current step: the anomaly banner, histograms and statistics per
    kind (weights, gradients, activations) and the distribution over time; before any run data
    the layer's parameters as they are now."""

    _kind = "histogram"


class StepSlider(_View):
    """Chooses the step every view shows; follows the latest step while training."""

    _kind = "slider"


class GradientFlowView(_View):
    """Gradient norm per layer at the current step and a layer x step heatmap of a metric;
    clicks select the layer and the step."""

    _kind = "flow"
