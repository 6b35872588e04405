"""Capture: hooks that turn what happens inside a model during training into records.

A `Recorder` watches a model (with its optimizer and GradScaler when given) and hands plain
records to a `RecordSink`, per watched module and step:

- ``weight``: each parameter of its own, after the optimizer step;
- ``grad``: each parameter's ``.grad`` at the optimizer step (a step pre-hook), so after gradient
  accumulation and AMP unscaling; a hook on the parameter would see per-micro-batch, scaled ones;
- ``activation``: every tensor the module returns (also inside tuples, lists, dicts, dataclasses
  and namedtuples), with its path in the output as `SeriesKey.tensor`;
- ``activation_grad``: the gradient of each of those tensors, from ``Tensor.register_hook`` called
  inside the forward hook (``register_full_backward_hook`` crashes on in-place ops such as
  ``ReLU(inplace=True)`` and ``out += identity``);
- ``update``: Δw = w_after − w_before per parameter, with ``ratio`` = ‖Δw‖₂ / ‖w_before‖₂.

The full-size reductions run inside the hooks, on the tensor's device (`stats.StatsBatch.add`),
and no captured tensor is kept: a later in-place op would change it. What remains (grids,
histograms of the samples, the host copy) runs once per step for everything the step captured,
when the step ends: one host copy per device and step.

Steps. A step ends at the optimizer step: the given optimizer's, or, without one, that of any
optimizer holding the model's parameters, seen through torch's global step hooks. Without any
optimizer, `Recorder.step()` ends a step. Everything captured in a step carries its number.

Forward passes. A call of a hooked module while none is running starts a pass. A pass is
"eval" under `torch.no_grad()` or `torch.inference_mode()`, and "train" when gradients are
enabled and its outermost module is in training mode: the two never share a series. A pass with
gradients enabled in eval mode is undecided until a backward fills a parameter's gradient or the
optimizer steps (then it was training: fine-tuning with frozen BatchNorm and dropout), or until
the next pass starts or the recorder closes (then it was evaluation); its records wait until
then. So a saliency map made with `.backward()` counts as training (it fills the parameters'
gradients, as training does), one made with `torch.autograd.grad(out, inputs)` (as Captum does)
or on frozen parameters as evaluation; an eval-mode step whose loss needs two forwards before
its backward counts the first as evaluation. Activations of a training step are taken from the
forwards before its first backward (with gradient accumulation: the first micro-batch), those in
eval mode from the first eval pass of each step, which ends with `StepRecord(step, "eval")`; eval
passes never advance the step. A module called several times records each call with its index
(`SeriesKey.call`), counted per step (per pass in eval mode).

GradScaler. A step the scaler skips (Inf/NaN gradients: it never calls `optimizer.step()` and
lowers its scale) is noticed at the next forward pass or at `close()`: a backward ran since the
last optimizer step and the scale went down. It is recorded as `StepRecord(skipped=True)` with the
reason, and the step count advances. Gradients of activations are divided by the scale.

Not seen: functional ops, modules called as ``.forward(x)`` or never through ``__call__``, and
modules held outside the module tree; non-tensor outputs are listed in `Recorder.warnings`.
"""

from __future__ import annotations

import cmath
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Final, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn.parameter import is_lazy
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.utils.hooks import RemovableHandle

from ._outputs import DIAGNOSTICS, RATIO, diagnostic, output_tensors
from ._pause import capture_paused
from ._reduce import local
from ._selection import (
    Param,
    check_kinds,
    check_model,
    check_optimizer,
    check_period,
    check_sink,
    select_modules,
    watched_params,
)
from .records import (
    PHASE_OF_KIND,
    RECORD_FIELDS,
    Anomaly,
    RecordSink,
    SeriesKey,
    StatRecord,
    StepRecord,
)
from .stats import MAX_SAMPLE, Histogram, StatsBatch, Summaries

__all__ = ["Recorder"]

_NAN: Final = RECORD_FIELDS.index("nan")
_L2: Final = RECORD_FIELDS.index("l2")


_Hook = TypeVar("_Hook", bound=Callable[..., None])


def _eager(hook: _Hook) -> _Hook:
    """`hook` run eagerly, at a graph break of its own, in a compiled model (about 0.4 µs a call).

    Dynamo would otherwise trace the module hooks into the model's graph, where it cannot follow
    numba (its first compile fails there) and recompiles on every id() it meets.
    """
    eager: _Hook = torch.compiler.disable(hook)  # type: ignore[no-untyped-call]
    return eager


@dataclass
class _Pass:
    """What the forward pass now running records."""

    mode: str
    step: int
    histograms: bool
    activations: bool
    gradients: bool
    calls: dict[str, int]  # next call index per layer
    probe: bool = False  # only look for the first NaN/Inf (a training step not captured)
    undecided: _Undecided | None = None  # gradients on in eval mode: train or eval, see later


@dataclass
class _Undecided:
    """A pass with gradients on in eval mode, until it turns out to be training or evaluation.

    It captures what either would record; its records are held here until it is decided.
    """

    train: bool  # its activations are due as a training step's
    train_histograms: bool
    eval: bool  # it would be the step's recorded eval pass
    calls: dict[str, int]
    held: list[_Pending] = field(default_factory=list)
    decided: str = ""  # "train" or "eval" once known


@dataclass
class _Frame:
    """A hooked module call in progress."""

    module: nn.Module
    call: int  # -1: not recorded


@dataclass
class _GradHook:
    """The hook on one output tensor: records its gradient once.

    Once: a second backward through the same graph (retain_graph, or autograd.grad for a penalty
    term before the loss's backward) would record the series twice in one step.
    """

    capture: _Capture
    key: SeriesKey
    step: int
    histograms: bool
    undecided: _Undecided | None
    fired: bool = False

    def __call__(self, grad: torch.Tensor) -> None:
        if not self.fired:
            self.fired = True
            self.capture.on_activation_grad(
                self.key, self.step, self.histograms, grad, self.undecided
            )


@dataclass(frozen=True)
class _Pending:
    """Records added to the step's `StatsBatch`, to be emitted when it is finished."""

    step: int
    keys: list[SeriesKey]
    dtypes: list[str]
    histograms: bool
    first: int  # their first row in the batch
    slots: list[tuple[int, int, int]]  # (row, diagnostic column, extra) of each diagnostic


@dataclass(frozen=True)
class _Periods:
    every: int
    histograms: int
    activations: int
    updates: int


@dataclass
class _Snapshot:
    """Watched parameters copied before an optimizer step, for the update Δw."""

    step: int
    params: list[Param] = field(default_factory=list)
    before: list[torch.Tensor] = field(default_factory=list)


class Recorder:
    """Records statistics of a model's weights, gradients, activations and updates per step.

    Args:
        model: the model to watch.
        sink: where the records go (`nbviz.records.RecordSink`); its methods must not block.
        optimizer: the optimizer whose steps end the training steps. Without one, any optimizer
            holding the model's parameters does (torch's global step hooks); without any,
            call `step()` at the end of each step.
        scaler: the GradScaler, if any: a step it skips (Inf/NaN gradients) is recorded as
            skipped, with its reason, and the step count still advances.
        modules: qualified-name globs (``fnmatch``: ``"layer1.*"``, ``"*.conv1"``, ``""`` for the
            root) and/or module classes. Default: every module with parameters of its own or no
            children, and the root for activations.
        kinds: some of `nbviz.records.KINDS`; default all.
        every: weights and gradients on every `every`-th step.
        histograms_every: histograms on steps that are multiples of this; other records have
            statistics only (histogram None).
        activations_every: activations and their gradients on every n-th step.
        updates_every: updates Δw on every n-th step.
        histogram_sample: how many elements a histogram counts; larger tensors are counted from
            a fixed sample (their statistics stay exact). None counts every element: exact
            histograms, at the cost of a full pass per tensor.

    The defaults keep the mean cost of a training step under 1.05× that of a plain step on a
    ResNet-18-like CNN on the CPU (batch 16, 3×64×64, SGD), where summarising all weights and
    gradients costs about 0.2× a step (one batched call each), histograms of them 0.1× more,
    activations and their gradients 0.25× each and updates 0.2×. Between captured steps the
    gradients are still checked for NaN/Inf (a sum each, ~2% of a step), so that a NaN gradient
    is reported, with full statistics, at the step where it appeared.

    Diagnostics (`RECORD_FIELDS`): ``dead`` for outputs of ``nn.ReLU`` and ``nn.ReLU6``, the
    fraction of channels never positive across the batch, the channel dimension being 1 for
    [N, C], [N, C, H, W] and [N, C, D, H, W], the last one for [B, T, F], and each element of a
    1-D output; ``saturated`` for ``nn.Tanh`` (|y| > 0.99) and ``nn.Sigmoid`` (y < 0.01 or
    y > 0.99), a fraction of elements; ``ratio`` for updates. NaN where they do not apply.

    Hooks are removed by `close()`, on leaving a ``with`` block, and when the recorder is
    garbage collected. Capture changes no training flag, parameter, buffer or RNG state.
    """

    def __init__(
        self,
        model: nn.Module,
        sink: RecordSink,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        scaler: torch.amp.GradScaler | None = None,
        modules: Sequence[str | type[nn.Module]] | None = None,
        kinds: Sequence[str] | None = None,
        every: int = 20,
        histograms_every: int = 100,
        activations_every: int = 100,
        updates_every: int = 100,
        histogram_sample: int | None = MAX_SAMPLE,
    ) -> None:
        check_model(model)
        check_sink(sink)
        chosen_kinds = check_kinds(kinds)
        periods = _Periods(
            every=check_period("every", every),
            histograms=check_period("histograms_every", histograms_every),
            activations=check_period("activations_every", activations_every),
            updates=check_period("updates_every", updates_every),
        )
        check_optimizer(model, optimizer)
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise TypeError(f"scaler must be a torch.amp.GradScaler, not {type(scaler).__name__}")
        selected = select_modules(model, modules)
        if histogram_sample is not None and histogram_sample < 1:
            raise ValueError(f"histogram_sample must be at least 1 or None, not {histogram_sample}")
        self._capture = _Capture(
            model, sink, optimizer, scaler, selected, modules is None, chosen_kinds, periods
        )
        self._capture.batch.max_sample = (
            sys.maxsize if histogram_sample is None else histogram_sample
        )
        # Removes the hooks when the recorder is collected; holds the capture, never `self`.
        self._finalizer = weakref.finalize(self, self._capture.detach)

    @property
    def step_count(self) -> int:
        """The current step: what the next records are numbered."""
        return self._capture.step

    @property
    def closed(self) -> bool:
        return self._capture.closed

    @property
    def warnings(self) -> list[str]:
        """What could not be captured (non-tensor outputs, failures inside hooks), once each."""
        return list(self._capture.notes)

    @property
    def watched_modules(self) -> tuple[str, ...]:
        """Qualified names of the modules whose activations are recorded ("" is the root)."""
        return tuple(name for name, _ in self._capture.activation_layers)

    @property
    def watched_params(self) -> tuple[str, ...]:
        """Qualified names of the parameters whose weights, gradients and updates are recorded."""
        return tuple(p.qualified for p in self._capture.params)

    def step(self) -> None:
        """Ends a step by hand, for training without a torch optimizer.

        Reads gradients and weights now; updates are the change since the previous `step()`
        (none at the first step).
        """
        self._capture.manual_step()

    def close(self) -> None:
        """Removes every hook; idempotent. A step the GradScaler skipped last is recorded first."""
        if not self._capture.closed:
            self._capture.check_skipped()
            self._capture.decide(train=False)  # no backward followed the last pass
            self._capture.flush()  # a step cut short: what it captured so far
        self._finalizer()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"step {self.step_count}"
        return (
            f"<Recorder {state}: {len(self.watched_modules)} modules, "
            f"{len(self.watched_params)} parameters>"
        )


class _Capture:
    """The hooks and their state. Hooks hold this object, never the `Recorder`, so that
    collecting the recorder runs its finalizer, which removes them."""

    def __init__(
        self,
        model: nn.Module,
        sink: RecordSink,
        optimizer: torch.optim.Optimizer | None,
        scaler: torch.amp.GradScaler | None,
        selected: list[tuple[str, nn.Module]],
        default_selection: bool,
        kinds: frozenset[str],
        periods: _Periods,
    ) -> None:
        self.sink = sink
        self.batch = StatsBatch(max_sample=MAX_SAMPLE)  # what this step captured, not yet emitted
        self._pending: list[_Pending] = []
        self.kinds = kinds
        self.periods = periods
        self.optimizer = optimizer
        self.scaler = scaler if scaler is not None and scaler.is_enabled() else None
        self.step = 0
        self.closed = False
        self.notes: list[str] = []
        self._noted: set[str] = set()
        self._anomalous: set[SeriesKey] = set()
        self._lock = threading.Lock()  # activation-gradient hooks may run on autograd threads

        self.params = watched_params(selected)
        self._model_params = {id(p) for p in model.parameters()}
        activations = list(selected)
        if default_selection and all(m is not model for _, m in activations):
            activations.insert(0, ("", model))  # the model's own output
        self.activation_layers = activations
        self._recorded = {id(m) for _, m in activations}  # modules whose outputs are recorded
        self._names = {id(m): name for name, m in [("", model), *activations]}
        self._classes = {name: type(m).__name__ for name, m in activations}
        self._diagnostics = {id(m): diagnostic(m) for _, m in activations}

        self._stepping = ""  # "optimizer" or "manual" once known
        self._in_step: torch.optim.Optimizer | None = None
        self._snapshot: _Snapshot | None = None
        self._spare: dict[str, torch.Tensor] = {}  # the last snapshot's buffers, for the next
        self._stack: list[_Frame] = []
        self._pass: _Pass | None = None
        self._undecided: _Undecided | None = None
        self._train_calls: dict[str, int] = {}
        self._eval_done = False
        self._backward_seen = False
        self._grads_went_bad = False
        self._outputs_went_bad = False
        self._scale_before: torch.Tensor | float | None = None
        self._handles: list[RemovableHandle] = []
        self._install(model)

    # Installation and removal.

    def _install(self, model: nn.Module) -> None:
        forward_kinds = self.kinds & {"activation", "activation_grad"}
        hooked = {id(m): m for _, m in self.activation_layers} if forward_kinds else {}
        hooked.setdefault(id(model), model)  # the root marks forward passes
        for module in hooked.values():
            self._handles.append(module.register_forward_pre_hook(self._before_forward))
            self._handles.append(
                module.register_forward_hook(self._after_forward, always_call=True)
            )
        if forward_kinds or self.scaler is not None:
            # Cheap flags: "a backward ran in this step". (Not on lazy parameters: torch refuses.)
            for param in model.parameters():
                if param.requires_grad and not is_lazy(param):
                    register = param.register_post_accumulate_grad_hook
                    self._handles.append(register(self._on_grad_accumulated))  # type: ignore[no-untyped-call]
        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(self._before_opt_step))
            self._handles.append(self.optimizer.register_step_post_hook(self._after_opt_step))
        else:
            # Every optimizer's steps; those that hold none of the model's parameters are ignored.
            self._handles.append(register_optimizer_step_pre_hook(self._before_opt_step))
            self._handles.append(register_optimizer_step_post_hook(self._after_opt_step))

    def __reduce__(self) -> tuple[Callable[[], _Capture], tuple[()]]:
        # A copied or pickled model carries its hooks along: their copies must do nothing (and
        # must not try to copy the sink, the lock, the model).
        return _inert_capture, ()

    def detach(self) -> None:
        """Removes every hook and drops per-step state; idempotent, never emits."""
        self.closed = True
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stack.clear()
        self._pass = None
        self._snapshot = None
        self._spare = {}
        self._pending.clear()
        self.batch = StatsBatch()

    # Forward passes.

    @_eager
    def _before_forward(self, module: nn.Module, args: Any) -> None:
        if self.closed or capture_paused():  # nbviz's own forward (a trace): not the user's
            return
        if not self._stack:
            self._start_pass(module)
        current = self._pass
        name = self._names[id(module)]
        if current is None or id(module) not in self._recorded:
            self._stack.append(_Frame(module, -1))
            return
        call = current.calls.get(name, 0)
        current.calls[name] = call + 1
        self._stack.append(_Frame(module, call))

    @_eager
    def _after_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        # always_call: runs even when the forward raised (output None), so the stack unwinds.
        if self.closed or capture_paused():
            return
        frame = self._pop(module)
        current = self._pass
        if (
            frame is not None
            and frame.call >= 0
            and current is not None
            and (current.probe or current.activations or current.gradients)
            and output is not None
        ):
            self._guarded(
                f"activations of {self._names[id(module)] or 'the model'}",
                lambda: self._record_output(module, frame.call, output, current),
            )
        if not self._stack:
            self._end_pass()

    def _pop(self, module: nn.Module) -> _Frame | None:
        for depth in range(len(self._stack) - 1, -1, -1):
            if self._stack[depth].module is module:
                frame = self._stack[depth]
                del self._stack[depth:]  # frames above it were left by failed calls
                return frame
        return None

    def _start_pass(self, module: nn.Module) -> None:
        if self._stepping != "manual":
            self.check_skipped()
        self.decide(train=False)  # no backward followed the previous pass
        grad = torch.is_grad_enabled()  # False under inference_mode too
        if grad and not module.training:
            self._start_undecided()
        elif grad:
            wanted = self.kinds & {"activation", "activation_grad"}
            due = self.step % self.periods.activations == 0 and not self._backward_seen
            self._pass = None
            if wanted and due:
                self._pass = _Pass(
                    mode="train",
                    step=self.step,
                    histograms=self.step % self.periods.histograms == 0,
                    activations="activation" in self.kinds,
                    gradients="activation_grad" in self.kinds,
                    calls=self._train_calls,
                )
            elif "activation" in self.kinds and not self._outputs_went_bad:
                self._pass = _Pass("train", self.step, True, False, False, self._train_calls, True)
        elif "activation" in self.kinds and not self._eval_done:
            self._eval_done = True
            self._pass = _Pass("eval", self.step, True, True, False, {})
        else:
            self._pass = None

    def _start_undecided(self) -> None:
        forward_kinds = self.kinds & {"activation", "activation_grad"}
        train = bool(forward_kinds) and self.step % self.periods.activations == 0
        train = train and not self._backward_seen
        evaluate = "activation" in self.kinds and not self._eval_done
        if not (train or evaluate):
            self._pass = None
            if "activation" in self.kinds and not self._outputs_went_bad:
                self._pass = _Pass("train", self.step, True, False, False, self._train_calls, True)
            return
        histograms = self.step % self.periods.histograms == 0
        calls = dict(self._train_calls)
        self._undecided = _Undecided(train, histograms, evaluate, calls)
        self._pass = _Pass(
            mode="train",
            step=self.step,
            histograms=histograms or evaluate,
            activations="activation" in self.kinds,
            gradients=train and "activation_grad" in self.kinds,
            calls=calls,
            undecided=self._undecided,
        )

    def decide(self, train: bool) -> None:
        """Settles the undecided pass, if any: its held records become training ones, or eval
        ones (the step's eval pass when it is the first), and what neither wants is dropped."""
        if self._undecided is None:
            return  # the common case, at every pass and step: no lock taken
        with self._lock:
            undecided, self._undecided = self._undecided, None
            if undecided is None:
                return
            undecided.decided = "train" if train else "eval"
            for p in undecided.held:
                activation = p.keys[0].kind == "activation"
                if train and (undecided.train or not activation):
                    histograms = p.histograms and undecided.train_histograms
                    self._pending.append(replace(p, histograms=histograms))
                elif not train and undecided.eval and activation:
                    keys = [replace(key, mode="eval") for key in p.keys]
                    self._pending.append(replace(p, keys=keys))
            if train and undecided.train:
                self._train_calls = undecided.calls
        if not train and undecided.eval:
            self._eval_done = True
            self.flush()
            with self._lock:
                self.sink.end_step(StepRecord(self.step, "eval", wall_time=time.time()))

    def _end_pass(self) -> None:
        current, self._pass = self._pass, None
        if current is not None and current.mode == "eval":
            self.flush()
            with self._lock:
                self.sink.end_step(StepRecord(current.step, "eval", wall_time=time.time()))

    def _record_output(self, module: nn.Module, call: int, output: Any, current: _Pass) -> None:
        name = self._names[id(module)]
        skipped: list[str] = []
        leaves = list(output_tensors(output, "", skipped))
        if skipped:
            self._note(
                f"{name or 'the model'} ({type(module).__name__}) returns "
                f"{', '.join(skipped)}: not captured"
            )
        if not leaves:
            return
        if current.probe:
            self._probe_outputs(module, call, leaves, current)
        if current.activations:
            self._record_activations(module, call, leaves, current)
        if current.gradients:
            undecided = current.undecided  # its gradients can only be a training step's
            histograms = current.histograms if undecided is None else undecided.train_histograms
            for path, tensor in leaves:
                # Not on leaves: a hook on a parameter or an input would stay there for good.
                if tensor.requires_grad and tensor.grad_fn is not None:
                    key = SeriesKey(name, "activation_grad", path, call, current.mode)
                    hook = _GradHook(self, key, current.step, histograms, undecided)
                    tensor.register_hook(hook)  # type: ignore[no-untyped-call]

    def _probe_outputs(
        self, module: nn.Module, call: int, leaves: list[tuple[str, torch.Tensor]], current: _Pass
    ) -> None:
        """Between captured steps: the first output holding NaN/Inf is recorded in full, so the
        anomaly names the module (and call) that made it, not a gradient it poisoned later.

        One sum per output (NaN and Inf propagate through it), read at once: on the CPU that
        read is free. On accelerators it would synchronise per module, so they are not probed
        and their first NaN/Inf is found by the gradient check.
        """
        if self._outputs_went_bad or isinstance(module, _SELECTS_ONLY):
            return  # downstream of the first; or a module that cannot make a NaN/Inf itself
        bad = []
        for path, tensor in leaves:
            if tensor.device.type != "cpu" or tensor.is_sparse:
                continue
            if tensor.is_floating_point() or tensor.is_complex():
                with torch.no_grad():
                    total = tensor.detach().sum().item()
                if not cmath.isfinite(total):
                    bad.append((path, tensor))
        if bad:
            self._outputs_went_bad = True  # the first occurrence only; later ones follow from it
            probe = replace(current, probe=False, gradients=False)
            self._record_activations(module, call, bad, probe)

    def _record_activations(
        self, module: nn.Module, call: int, leaves: list[tuple[str, torch.Tensor]], current: _Pass
    ) -> None:
        name = self._names[id(module)]
        tensors = [t for _, t in leaves]
        diagnostic = self._diagnostics[id(module)]
        extras: list[torch.Tensor] = []
        slots: list[tuple[int, int, int]] = []  # (leaf, diagnostic column, extra)
        if diagnostic is not None:
            column, compute = diagnostic
            for index, tensor in enumerate(tensors):
                value = compute(tensor.detach())
                if value is not None:
                    slots.append((index, column, len(extras)))
                    extras.append(value)
        keys = [SeriesKey(name, "activation", path, call, current.mode) for path, _ in leaves]
        dtypes = [_dtype_name(t) for t in tensors]
        self._add(
            current.step,
            keys,
            tensors,
            dtypes,
            current.histograms,
            extras,
            slots,
            current.undecided,
        )

    def on_activation_grad(
        self,
        key: SeriesKey,
        step: int,
        histograms: bool,
        grad: torch.Tensor,
        undecided: _Undecided | None,
    ) -> None:
        if self.closed or (undecided is not None and undecided.decided == "eval"):
            return  # an evaluation pass records no gradients

        def record() -> None:
            tensors = [self._unscaled(grad)]
            self._add(step, [key], tensors, [_dtype_name(grad)], histograms, None, None, undecided)

        self._guarded(f"activation gradients of {key.layer or 'the model'}", record)

    def _unscaled(self, grad: torch.Tensor) -> torch.Tensor:
        """The gradient before the GradScaler's loss scaling, when one is in use."""
        scale = getattr(self.scaler, "_scale", None) if self.scaler is not None else None
        if isinstance(scale, torch.Tensor) and grad.is_floating_point():
            return local(grad).detach() / scale.to(grad.device)
        return grad

    def _on_grad_accumulated(self, param: torch.Tensor) -> None:
        if self._undecided is not None and not self.closed:
            self.decide(train=True)  # a backward into the parameters: training, in eval mode
        if not self.closed and not self._backward_seen:
            self._backward_seen = True
            if self.scaler is not None:
                self._scale_before = _current_scale(self.scaler)

    # Optimizer steps.

    def _before_opt_step(
        self, optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self.closed or self._stepping == "manual":
            return
        if not self._owns_any(optimizer):
            return
        owned = self._owned(optimizer)
        self.decide(train=True)
        self._stepping = "optimizer"
        self._in_step = optimizer
        step = self.step
        self._guarded("gradients", lambda: self._record_grads(owned, step))
        self._snapshot = None
        if "update" in self.kinds and step % self.periods.updates == 0:
            self._guarded("updates", lambda: self._take_snapshot(step, owned))

    def _take_snapshot(self, step: int, params: list[Param]) -> None:
        self._snapshot = _take_snapshot(step, params, self._spare)

    def _after_opt_step(
        self, optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if self.closed or optimizer is not self._in_step:
            return
        self._in_step = None
        step = self.step
        self._guarded("weights and updates", lambda: self._record_weights_and_updates(step))
        self._end_step()

    def _owned(self, optimizer: torch.optim.Optimizer) -> list[Param]:
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return [p for p in self.params if id(p.param) in ids]

    def _owns_any(self, optimizer: torch.optim.Optimizer) -> bool:
        return any(
            id(p) in self._model_params for group in optimizer.param_groups for p in group["params"]
        )

    def manual_step(self) -> None:
        if self.closed:
            raise RuntimeError("this Recorder is closed")
        if self.optimizer is not None or self._stepping == "optimizer":
            raise RuntimeError(
                "steps end at optimizer.step() here; Recorder.step() is for training "
                "without a torch optimizer"
            )
        self._stepping = "manual"
        self.decide(train=True)
        step = self.step
        reason = self._skip_reason()
        self._guarded("gradients", lambda: self._record_grads(self.params, step))
        self._guarded("weights and updates", lambda: self._record_weights_and_updates(step))
        self._end_step(skipped=bool(reason), reason=reason)
        if "update" in self.kinds and self.step % self.periods.updates == 0:
            self._guarded("updates", lambda: self._take_snapshot(self.step, self.params))

    def _record_grads(self, params: list[Param], step: int) -> None:
        if "grad" not in self.kinds:
            return
        with_grad = [p for p in params if p.param.grad is not None]
        sparse = [
            p.qualified for p in with_grad if p.param.grad is not None and p.param.grad.is_sparse
        ]
        if sparse:
            self._note(f"sparse gradients are not captured: {', '.join(sparse)}")
            with_grad = [p for p in with_grad if p.qualified not in sparse]
        grads = [p.param.grad for p in with_grad if p.param.grad is not None]
        if not grads:
            return
        due = step % self.periods.every == 0
        if not due and (self._grads_went_bad or _all_finite(grads)):
            return  # a cheap check between captured steps, until the first NaN/Inf
        histograms = due and step % self.periods.histograms == 0
        keys = [p.key("grad") for p in with_grad]
        self._add(step, keys, grads, [_dtype_name(g) for g in grads], histograms)
        if not due:
            self._grads_went_bad = True  # a broken run would otherwise pay this every step

    def _record_weights_and_updates(self, step: int) -> None:
        histograms = step % self.periods.histograms == 0
        weights_due = "weight" in self.kinds and step % self.periods.every == 0
        snapshot, self._snapshot = self._snapshot, None
        fused: set[str] = set()
        if snapshot is not None and snapshot.step == step and snapshot.params:
            # Δw = w_after - w_before, with the ratio ‖Δw‖ / ‖w_before‖ (of this rank's shard,
            # which the snapshot holds: add_updates takes it of a DTensor). The weights of
            # these parameters are measured in the same pass.
            self._add(
                step,
                [p.key("update") for p in snapshot.params],
                [p.param for p in snapshot.params],
                [_dtype_name(p.param) for p in snapshot.params],
                histograms,
                before=snapshot.before,
                weights=[p.key("weight") for p in snapshot.params] if weights_due else None,
            )
            fused = {p.qualified for p in snapshot.params}
            if self.periods.updates == 1:  # fresh copies every step would fault their pages in
                self._spare = {
                    p.qualified: b for p, b in zip(snapshot.params, snapshot.before, strict=True)
                }
        if weights_due:
            # Not in the optimizer, frozen, or lazy (nothing to summarise before the first
            # forward).
            rest = [p for p in self.params if p.qualified not in fused and not is_lazy(p.param)]
            if rest:
                self._add(
                    step,
                    [p.key("weight") for p in rest],
                    [p.param.detach() for p in rest],
                    [_dtype_name(p.param) for p in rest],
                    histograms,
                )

    # Steps.

    def _end_step(self, skipped: bool = False, reason: str = "") -> None:
        self.flush()
        record = StepRecord(self.step, "train", skipped, reason, wall_time=time.time())
        with self._lock:
            self.sink.end_step(record)
        self.step += 1
        self._train_calls = {}
        self._eval_done = False
        self._backward_seen = False
        self._scale_before = None
        self._snapshot = None if self._stepping == "optimizer" else self._snapshot

    def check_skipped(self) -> None:
        """Ends the step as skipped when a backward ran and the GradScaler then lowered its
        scale without an optimizer step: it found Inf/NaN gradients and skipped the step."""
        if self._stepping == "manual":
            return
        reason = self._skip_reason()
        if reason:
            self._end_step(skipped=True, reason=reason)

    def _skip_reason(self) -> str:
        if self.scaler is None or not self._backward_seen or self._scale_before is None:
            return ""
        before = float(self._scale_before)
        after = float(self.scaler.get_scale())
        if after >= before:
            return ""
        return (
            "GradScaler skipped the optimizer step: Inf/NaN gradients "
            f"(scale {before:g} -> {after:g})"
        )

    # Records.

    def _add(
        self,
        step: int,
        keys: list[SeriesKey],
        tensors: list[torch.Tensor],
        dtypes: list[str],
        histograms: bool,
        extras: list[torch.Tensor] | None = None,
        slots: list[tuple[int, int, int]] | None = None,
        undecided: _Undecided | None = None,
        before: list[torch.Tensor] | None = None,
        weights: list[SeriesKey] | None = None,
    ) -> None:
        """Reduces `tensors` now; their records are emitted by the next `flush`.

        `slots` place `extras` in the diagnostics: (tensor, column, extra); the ratio column
        divides the tensor's L2 norm by its extra. With `before`, the records are of the
        updates tensors[i] - before[i], with their ratios, and with `weights` (their keys) also
        of the weights tensors[i]. Records of an `undecided` pass wait in it until it is decided.
        """
        with self._lock:
            if undecided is not None and undecided.decided == "eval":
                return
            pending: list[_Pending] = []
            if before is not None:
                first, first_extra = self.batch.add_updates(
                    tensors, before, histograms=histograms, weights=weights is not None
                )
                if weights is not None:  # their rows come first
                    pending.append(_Pending(step, weights, dtypes, histograms, first, []))
                    first += len(tensors)
                slots = [(k, RATIO, k) for k in range(len(tensors))]
            else:
                first, first_extra = self.batch.add(
                    tensors, histograms=histograms, extras=extras or ()
                )
            slots = [(row, column, first_extra + extra) for row, column, extra in slots or []]
            pending.append(_Pending(step, keys, dtypes, histograms, first, slots))
            if undecided is not None and not undecided.decided:
                undecided.held += pending
            else:
                self._pending += pending

    def flush(self) -> None:
        """Finishes the step's batch (one host copy per device) and emits its records."""
        with self._lock:
            pending, self._pending = self._pending, []
            if not pending:
                return
            summaries, values = self.batch.finish()
            records, nonfinite = _records(pending, summaries, values)
            self.sink.add(records)
            for i in nonfinite:
                self._check_finite(records[i])

    def _check_finite(self, record: StatRecord) -> None:
        counts = record.stats[_NAN : _NAN + 3]
        if not (counts > 0).any() or record.key in self._anomalous:  # NaN: nothing was counted
            return
        nan, posinf, neginf = (int(c) for c in np.nan_to_num(counts))
        self._anomalous.add(record.key)  # the first occurrence per series only
        anomaly = Anomaly(
            step=record.step,
            phase=PHASE_OF_KIND[record.key.kind],
            key=record.key,
            nan=nan,
            posinf=posinf,
            neginf=neginf,
            detail=_anomaly_detail(record.key, nan, posinf, neginf, self._classes),
        )
        self.sink.add_anomaly(anomaly)

    def _note(self, message: str) -> None:
        if message not in self._noted:
            self._noted.add(message)
            self.notes.append(message)

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        """Runs `action`; a failure is noted and warned about once, and never stops training."""
        try:
            action()
        except Exception as error:
            message = f"capturing {what} failed: {type(error).__name__}: {error}"
            if message not in self._noted:
                warnings.warn(f"nbviz: {message}", RuntimeWarning, stacklevel=2)
            self._note(message)


# Hook helpers.


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether no tensor holds NaN or Inf: one sum each (NaN and Inf propagate), one host copy.

    A sum that overflows reads as Inf: then the full statistics are taken, and they tell.
    """
    shards = [local(t) for t in tensors]  # a DTensor: this rank's shard
    with torch.no_grad():
        if all(t.device.type == "cpu" for t in shards):
            sums = [t.sum() for t in shards]
            sums = [s.abs() if s.is_complex() else s for s in sums]
            return bool(torch.isfinite(torch.stack([s.float() for s in sums])).all())
        # Elsewhere one launch per tensor costs more than the device's work: the norms of each
        # device and dtype in one fused call (as clip_grad_norm_ does), one read per device.
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for t in shards:
            groups.setdefault((t.device, t.dtype), []).append(t)
        flags: dict[torch.device, list[torch.Tensor]] = {}
        for (device, _), group in groups.items():
            norms = torch.stack([n.float() for n in torch._foreach_norm(group)])
            flags.setdefault(device, []).append(norms.isfinite().all())
        return all(bool(torch.stack(f).all()) for f in flags.values())


_HALF: Final = (torch.float16, torch.bfloat16)

# Modules whose outputs only select, mask or reshape their finite inputs: the forward probe skips
# them (a NaN/Inf in their output was already in their input, where it was looked for).
_SELECTS_ONLY: Final = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
)


def _take_snapshot(step: int, params: list[Param], spare: dict[str, torch.Tensor]) -> _Snapshot:
    """Copies of the parameters, into the `spare` buffers of an earlier snapshot where they fit."""
    snapshot = _Snapshot(step)
    with torch.no_grad():
        for p in params:
            tensor = p.param
            if tensor.requires_grad and not is_lazy(tensor) and not tensor.is_meta:
                snapshot.params.append(p)
                before = local(tensor).detach()  # a DTensor (FSDP2): this rank's shard
                # Half precision widened: w_after - w_before is then exact in float32.
                dtype = torch.float32 if before.dtype in _HALF else before.dtype
                buffer = spare.get(p.qualified)
                wanted = (before.shape, dtype, before.device)
                if buffer is None or (buffer.shape, buffer.dtype, buffer.device) != wanted:
                    buffer = torch.empty(before.shape, dtype=dtype, device=before.device)
                snapshot.before.append(buffer.copy_(before))
    return snapshot


def _current_scale(scaler: torch.amp.GradScaler) -> torch.Tensor | float:
    """The scale now, without a host copy when possible: update() changes it in place."""
    scale = getattr(scaler, "_scale", None)
    if isinstance(scale, torch.Tensor):
        return scale.detach().clone()
    return float(scaler.get_scale())


def _inert_capture() -> _Capture:
    """A closed capture, without state: what the hooks of a copied model hold."""
    capture = _Capture.__new__(_Capture)
    capture.closed = True
    return capture


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _records(
    pending: list[_Pending], summaries: Summaries, values: NDArray[np.float64]
) -> tuple[list[StatRecord], list[int]]:
    """The records of everything pending, built together (most steps have one pending item per
    hook, each of a tensor or two, and per item the arrays would cost more than their data),
    and which of them count NaN or Inf: rare, so looked for in all at once."""
    sizes = [len(p.keys) for p in pending]
    starts = np.cumsum([0, *sizes]).tolist()
    rows = np.concatenate(
        [np.arange(p.first, p.first + n) for p, n in zip(pending, sizes, strict=True)]
    )
    diagnostics = np.full((len(rows), len(DIAGNOSTICS)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for p, start in zip(pending, starts, strict=False):
            for row, column, extra in p.slots:
                value = values[extra]
                if column == RATIO:
                    value = summaries.stats[p.first + row, _L2] / value
                diagnostics[start + row, column] = value
    stats = np.concatenate([summaries.stats[rows], diagnostics], axis=1)
    counts = summaries.counts[rows]
    lo, width = summaries.lo[rows].tolist(), summaries.width[rows].tolist()
    sample = summaries.sample[rows].astype(np.int64).tolist()
    records: list[StatRecord] = []
    for p, start in zip(pending, starts, strict=False):
        for k, key, dtype in zip(range(start, start + len(p.keys)), p.keys, p.dtypes, strict=True):
            # Each record owns its arrays: a sink that keeps some holds no more than those.
            histogram = (
                Histogram(lo[k], width[k], counts[k].copy(), sample[k]) if p.histograms else None
            )
            records.append(StatRecord(p.step, key, stats[k].copy(), histogram, dtype))
    nonfinite = np.flatnonzero((stats[:, _NAN : _NAN + 3] > 0).any(axis=1)).tolist()
    return records, nonfinite


def _anomaly_detail(
    key: SeriesKey, nan: int, posinf: int, neginf: int, classes: dict[str, str]
) -> str:
    counts = ", ".join(
        f"{count} {label}"
        for count, label in ((nan, "NaN"), (posinf, "+Inf"), (neginf, "−Inf"))
        if count
    )
    layer = key.layer or "the model"
    module = f"{layer} ({classes[key.layer]})" if key.layer in classes else layer
    where = {
        "activation": f"the output{key.tensor} of {module}, call {key.call}",
        "activation_grad": f"the gradient of the output{key.tensor} of {module}, call {key.call}",
        "grad": f"the gradient of {layer}.{key.tensor} at the optimizer step",
        "weight": f"{layer}.{key.tensor} after the optimizer step",
        "update": f"the update of {layer}.{key.tensor}",
    }[key.kind]
    return f"{counts} in {where}, {key.mode}"
