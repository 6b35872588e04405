"""`nbviz.show`: the default layout of the views over one shared state."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import ipywidgets
import torch

from .dataflow import autograd_svg, trace_call
from .hierarchy import module_hierarchy
from .live import LiveFeed
from .probe import collecting_output_shapes, forward_args, model_preserved, tensor_leaves
from .recorder import Recorder, unwrap, watch
from .records import KINDS
from .run import Run
from .run_layers import run_hierarchy
from .widgets import (
    GradientFlowView,
    HistogramView,
    LayerPicker,
    StepSlider,
    StructureView,
    VizState,
)

STRUCTURE: Final = "structure"
"""`Viz.export`'s view of the structure diagram; the others are `nbviz.export.VIEWS`."""


class Viz(ipywidgets.VBox):  # type: ignore[misc]
    """The assembled widget: picker and hierarchy side by side, histograms below.

    Its parts are ordinary widgets (`viz.picker`, `viz.structure`, `viz.histograms`, `viz.slider`,
    `viz.flow`) over one `viz.state`; rearrange them with any ipywidgets layout and they stay
    linked.
    """

    def __init__(
        self, state: VizState, recorder: Recorder | None = None, feed: LiveFeed | None = None
    ) -> None:
        self.state = state
        self.recorder = recorder
        """Records the model's training steps from the moment it was shown (None if disabled)."""
        self.feed = feed
        """Pushes the run's new steps to the browser while it grows (None without a run)."""
        self.picker = LayerPicker(state, layout=ipywidgets.Layout(width="32%"))
        self.structure = StructureView(state, layout=ipywidgets.Layout(width="68%"))
        self.histograms = HistogramView(state)
        self.slider = StepSlider(state)
        self.flow = GradientFlowView(state)
        top = ipywidgets.HBox([self.picker, self.structure])
        super().__init__([top, self.histograms, self.slider, self.flow])

    @property
    def selected(self) -> str | None:
        """The selected layer's qualified name ("" for the root), or None.

        Follows the user's clicks in the browser; assign a name to select it there. An unknown
        name raises `ValueError` listing close matches.
        """
        selected: str | None = self.state.selected
        return selected

    @selected.setter
    def selected(self, name: str | None) -> None:
        self.state.selected = name

    @property
    def step(self) -> int:
        """The training step the views show (0 .. `num_steps` - 1).

        Recorded steps may be sparse: the views show the latest recorded step at or before it.
        In the browser the slider follows the latest step until the user moves it.
        """
        step: int = self.state.step
        return step

    @step.setter
    def step(self, step: int) -> None:
        if not isinstance(step, int) or isinstance(step, bool):
            raise TypeError(f"step must be an integer training step, not {step!r}")
        self.state.step = step  # VizState validates the range

    @property
    def num_steps(self) -> int:
        """One past the last recorded training step; grows while the run does."""
        num: int = self.state.num_steps
        return num

    def close(self) -> None:
        """Closes the views and stops recording (its hooks are removed) and following the run."""
        if self.feed is not None:
            self.feed.close()
        if self.recorder is not None:
            self.recorder.close()
        for widget in (
            self.picker,
            self.structure,
            self.histograms,
            self.slider,
            self.flow,
            self.state,
        ):
            widget.close()
        super().close()

    @property
    def layers(self) -> list[str]:
        """Qualified names of every layer, depth first; "" is the root."""
        return [row["name"] for row in self.state.layers]

    @property
    def expanded(self) -> list[str]:
        """The structure diagram's open groups, as "name#call"; follows the user's clicks.

        Assign "name#call" keys or module names (every call of it) to open those groups and the
        groups around them; `viz.state.expanded` takes exactly the groups to open.
        """
        return list(self.state.expanded)

    @expanded.setter
    def expanded(self, groups: list[str]) -> None:
        with self.state.hold_sync():
            self.state.expanded = list(groups)  # checked, names resolved to keys
            self.state.expanded = self.state.open_with_enclosing(self.state.expanded)

    @property
    def overlay(self) -> str | None:
        """The metric the structure diagram colours module boxes by, or None; settable."""
        overlay: str | None = self.state.overlay
        return overlay

    @overlay.setter
    def overlay(self, metric: str | None) -> None:
        self.state.overlay = metric

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        view: str | None = None,
        dpi: float | None = None,
        budget: int | None = None,
    ) -> Path:
        """Write what the widget shows now to `path`: .png (`dpi`), .svg or .pdf, or .html.

        `view="structure"` is the structure diagram as shown: its open groups and unfolded
        blocks (`viz.expanded`, `viz.state.unfolded`) and its overlay colours at the current
        step (needs Graphviz's `dot`). The other views ("summary", "histogram", "distribution",
        "gradient_flow", "heatmap", as `Run.export`) draw the recorded run for the selected
        layer, the kind shown over time (`viz.state.kind`) and the step the slider shows (the
        latest recorded step at or before `viz.step`). By default: the summary of the selected
        layer when it has recorded data, else the structure diagram. `.html` writes the
        standalone page (`budget`: its byte budget).
        """
        target = Path(path)
        if target.suffix.lower() == ".html":
            if view is not None or dpi is not None:
                raise ValueError("an .html export holds every view: no view= or dpi=")
            from .export.html import write_html  # lazily: only the report needs it

            return write_html(self, target, budget=budget)
        if budget is not None:
            raise ValueError("budget= applies to .html exports only")
        with self._run_to_export() as run:
            chosen = self._default_view(run) if view is None else view
            if chosen == STRUCTURE:
                return self._export_structure(target, run, dpi)
            from .export import VIEWS, export

            if chosen not in VIEWS:
                raise ValueError(
                    f"unknown view {chosen!r}: choose one of {STRUCTURE}, {', '.join(VIEWS)}"
                )
            if run is None:
                raise ValueError(
                    f"the {chosen} view draws recorded training, and this widget records none"
                    " (nbviz.show(..., record=False)?): try view='structure'"
                )
            layer, kind, step = self._selection(run)
            return export(run, target, view=chosen, layer=layer, kind=kind, step=step, dpi=dpi)

    @contextmanager
    def _run_to_export(self) -> Iterator[Run | None]:
        """The run as recorded so far, read apart from the live feed's reader."""
        if self.recorder is not None and self.recorder.writer is not None:
            yield self.recorder.run  # flushed: every step recorded so far
        elif self.feed is None:
            yield None
        elif self.feed.run.path is None:
            yield self.feed.run
        else:
            # Refreshing the feed's own reader would hide new rows from the feed.
            with Run.open(self.feed.run.path) as run:
                yield run

    def _default_view(self, run: Run | None) -> str:
        layer = self.selected
        if run is not None and layer is not None and run.series(layer=layer) and len(run.steps):
            return "summary"
        if self.state.graph is not None:
            return STRUCTURE
        raise ValueError(
            "nothing to export yet: select a recorded layer (viz.selected = ...) or pass view=..."
        )

    def _selection(self, run: Run) -> tuple[str | None, str, int]:
        """The selected layer, the kind shown and the step shown, as the browser resolves them."""
        layer, kind = self.selected, str(self.state.kind)
        if layer is not None and not run.series(layer=layer, kind=kind):
            # A layer without the kind shown (a ReLU has no weights): its first kind held.
            kind = next((k for k in KINDS if run.series(layer=layer, kind=k)), kind)
        steps = run.steps
        shown = steps[steps <= self.step]
        if len(shown) == 0:
            raise ValueError(
                f"no recorded step at or before step {self.step}"
                + (f" (the first is {int(steps[0])})" if len(steps) else " (none recorded yet)")
            )
        return layer, kind, int(shown[-1])

    def _export_structure(self, path: Path, run: Run | None, dpi: float | None) -> Path:
        from .export._overlay import Overlay
        from .export.structure import write_diagram

        graph = self.state.graph
        if graph is None:
            raise ValueError(
                "no structure diagram to export: show the model with an example input,"
                " nbviz.show(model, x)"
            )
        metric = self.state.overlay
        # The browser colours by the metric at the slider's step, whatever was recorded there.
        overlay = None if metric is None or run is None else Overlay.of_run(run, metric, self.step)
        return write_diagram(
            graph, path, expanded=list(self.state.expanded), unfolded=list(self.state.unfolded),
            overlay=overlay, names=self.layers, dpi=dpi,
        )  # fmt: skip


def show(
    model: torch.nn.Module | Run | str | os.PathLike[str],
    example_input: Any = None,
    *,
    forward_kwargs: Mapping[str, Any] | None = None,
    selected: str | None = None,
    record: bool = True,
    **watch_options: Any,
) -> Viz:
    """Show `model` in the notebook: module hierarchy, layer picker and parameter histograms.

    `model` may also be a recorded run (a `Run`, or the path of a run file, also one another
    process is still writing): its module tree and statistics are shown, following new steps.

    With `example_input` (a tuple for several positional arguments, plus `forward_kwargs` for
    keyword arguments), one forward, traced, adds the dataflow graph and each module's output
    shapes; it leaves the model as it was. If it fails, the graph up to the failure is shown with
    the error. The autograd tab runs one more forward, with gradients, when it is opened.
    `selected` preselects a layer by name. Unless `record=False`, training steps
    from now on are recorded in memory (`viz.recorder`, options as for `nbviz.watch`) until
    `viz.close()`.

    In a notebook cell, the statistics of the parameters (`viz.state.stats` and `hist`) are
    computed once the cell has run, after the widget is shown: not on the way to the diagram.
    """
    if isinstance(model, (Run, str, os.PathLike)):
        if example_input is not None or forward_kwargs is not None or watch_options:
            raise TypeError("a recorded run is shown as it is: no example_input or watch options")
        return _show_run(model, selected)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            "nbviz.show expects a Run, a run file path or a torch.nn.Module, "
            f"not {type(model).__name__}"
        )
    model = unwrap(model)  # torch.compile and DDP wrappers: names without _orig_mod./module.
    if forward_kwargs is not None and example_input is None:
        raise TypeError("forward_kwargs needs an example_input to go with it")
    state = VizState(module_hierarchy(model), summaries=False)
    viz = None
    try:
        state.selected = selected
        # The views first: their comms open now, so the browser loads their code (and starts
        # the diagram's layout worker) while the kernel traces and summarises.
        viz = Viz(state)
        if example_input is not None:
            _trace_example(state, model, forward_args(example_input), dict(forward_kwargs or {}))
        _after_the_cell(state.ensure_summaries)
        if record:
            viz.recorder = watch(model, **watch_options)
            # A reader of its own (not `recorder.run`, which flushes the writer on every use).
            writer = viz.recorder.writer  # None: a rank that does not write
            if writer is not None:
                viz.feed = LiveFeed(state, writer.open_run(), owns_run=True).start()
    except BaseException:
        (state if viz is None else viz).close()
        raise
    return viz


def _show_run(source: Run | str | os.PathLike[str], selected: str | None) -> Viz:
    # A reader of its own where possible: the feed's refresh() would hide changes from the
    # caller's own `run.refresh()`.
    if isinstance(source, Run):
        run = source if source.path is None else Run.open(source.path)
    else:
        run = Run.open(Path(source))
    state = VizState(run_hierarchy(run.layers))
    try:
        state.selected = selected
    except ValueError:
        state.close()
        if run is not source:
            run.close()
        raise
    feed = LiveFeed(state, run, owns_run=run is not source)
    return Viz(state, None, feed.start())


def _after_the_cell(action: Callable[[], None]) -> None:
    """Runs `action` once the notebook cell running now has ended (its output shown), else now."""
    from IPython import get_ipython  # a dependency of ipywidgets

    shell = get_ipython()
    get_parent = getattr(getattr(shell, "kernel", None), "get_parent", None)  # ipykernel's
    parent = get_parent() if callable(get_parent) else {}
    if shell is None or parent.get("header", {}).get("msg_type") != "execute_request":
        action()  # a script, or a widget's callback: no cell to wait for
        return

    def once(*_: object) -> None:
        shell.events.unregister("post_run_cell", once)
        action()

    shell.events.register("post_run_cell", once)


def _trace_example(
    state: VizState, model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """The example's forward, once: its dataflow graph and output shapes go into `state`."""
    with collecting_output_shapes(model) as collected:
        graph = trace_call(model, args, kwargs)
    if graph.error is not None:
        state.warnings = [
            *state.warnings,
            f"the forward with the example input failed{collected.where()}: {graph.error}",
        ]
    with state.hold_sync():
        state.outputs = collected.shapes
        state.graph = graph.to_wire()

    # The widget keeps the model and its example, as a recorder does: the autograd tab runs them
    # again when opened, which may be long after `show(Net(), x)` dropped its own reference.
    def draw() -> str:
        with model_preserved(model, grad=True):
            return autograd_svg(_first_tensors(model(*args, **kwargs)), model)

    state.draw_autograd_with(draw)


def _first_tensors(output: Any) -> tuple[torch.Tensor, ...]:
    """The tensors of a forward's output that have an autograd graph."""
    found = tuple(t for _, t in tensor_leaves(output) if t.grad_fn is not None)
    if not found:
        raise ValueError("the model's output has no autograd graph (no parameter requires grad?)")
    return found
