"""`nbviz.show`: the default layout of the views over one shared state."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets
import torch

from .dataflow import autograd_svg, trace_call
from .hierarchy import module_hierarchy
from .live import LiveFeed
from .probe import collecting_output_shapes, forward_args, model_preserved, tensor_leaves
from .recorder import Recorder, unwrap, watch
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
    state = VizState(module_hierarchy(model))
    if example_input is not None:
        _trace_example(state, model, forward_args(example_input), dict(forward_kwargs or {}))
    state.selected = selected
    recorder = watch(model, **watch_options) if record else None
    # A reader of its own (not `recorder.run`, which flushes the writer on every use).
    writer = None if recorder is None else recorder.writer  # None: a rank that does not write
    run = None if writer is None else writer.open_run()
    feed = None if run is None else LiveFeed(state, run, owns_run=True).start()
    return Viz(state, recorder, feed)


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
