"""One probe forward with an example input, to learn each module's output shapes.

The probe leaves the model as it was: hooks removed, training flags, buffers (BatchNorm running
statistics) and RNG state restored, even when the forward raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy


class ProbeError(RuntimeError):
    """The model's forward failed on the example input."""


def forward_args(example_input: Any) -> tuple[Any, ...]:
    """A tuple is the positional arguments; anything else is the one positional argument."""
    return example_input if isinstance(example_input, tuple) else (example_input,)


def tensor_leaves(value: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors inside nested tuples, lists, dicts and dataclasses, with a path to each."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from tensor_leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from tensor_leaves(item, f"{path}[{index}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from tensor_leaves(getattr(value, field.name), f"{path}.{field.name}")


def describe(tensor: torch.Tensor) -> str:
    """A tensor's shape as people write it: `16×3×32×32`, `scalar` for 0-d."""
    return "×".join(str(size) for size in tensor.shape) or "scalar"


@contextlib.contextmanager
def model_preserved(model: nn.Module, *, grad: bool = False) -> Iterator[None]:
    """Restores training flags, buffers and the RNG streams after the block, however it ends.

    The block runs under `torch.no_grad()` unless `grad`: then its outputs carry an autograd
    graph (for drawing it), and the caller must not run backward through it.
    """
    flags = [(module, module.training) for module in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers() if not is_lazy(b)]
    devices = sorted({b.device.index or 0 for b, _ in buffers if b.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices), torch.set_grad_enabled(grad):
            yield
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in flags:
            module.training = training


@contextlib.contextmanager
def collecting_output_shapes(model: nn.Module) -> Iterator[OutputShapes]:
    """Hooks that note each module's output shapes while the block runs a forward, and the
    modules that had been entered and not left when it failed; removed however it ends."""
    names = {id(module): name for name, module in model.named_modules()}
    collected = OutputShapes()

    def enter(module: nn.Module, _args: Any) -> None:
        collected.running.append(names.get(id(module), "?"))

    def leave(module: nn.Module, _args: Any, output: Any) -> None:
        collected.running.pop()
        leaves = [describe(t) for _, t in tensor_leaves(output)]
        shapes = collected.shapes.setdefault(names.get(id(module), "?"), [])
        shapes.append(", ".join(leaves) or "no tensor")

    handles = [m.register_forward_pre_hook(enter) for m in model.modules()]
    handles += [m.register_forward_hook(leave) for m in model.modules()]
    try:
        yield collected
    finally:
        for handle in handles:
            handle.remove()


@dataclasses.dataclass
class OutputShapes:
    shapes: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Module name -> the output shapes of each call, in call order."""
    running: list[str] = dataclasses.field(default_factory=list)
    """Modules entered and not yet left: after a failure, where it happened."""

    def where(self) -> str:
        inner = [name or "(root)" for name in self.running]
        return f" in {' > '.join(inner)}" if inner else ""


def output_shapes(
    model: nn.Module,
    example_input: Any,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, list[str]]:
    """Runs `model` once on the example; maps each module that ran to its output shapes.

    A module called several times gets one entry per call, in call order. Lazy modules stay
    uninitialized only if the forward never reaches them: materializing them is what a forward
    does, and nbviz does not undo it.
    """
    with collecting_output_shapes(model) as collected:
        try:
            with model_preserved(model):
                model(*forward_args(example_input), **(forward_kwargs or {}))
        except Exception as error:
            raise ProbeError(
                f"the forward with the example input failed{collected.where()}: "
                f"{type(error).__name__}: {error}"
            ) from error
    return collected.shapes
