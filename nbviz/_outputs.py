"""The tensors in a module's output, and the diagnostics computed on them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, Final

import torch
from torch import nn

from .records import RECORD_FIELDS

# The diagnostics that follow STAT_FIELDS in a record, in RECORD_FIELDS order.
DIAGNOSTICS: Final = ("dead", "saturated", "ratio")
_NSTATS: Final = RECORD_FIELDS.index(DIAGNOSTICS[0])
if RECORD_FIELDS[_NSTATS:] != DIAGNOSTICS:
    raise ImportError(f"nbviz writes {DIAGNOSTICS} after the statistics")
DEAD, SATURATED, RATIO = range(len(DIAGNOSTICS))
_HOST_FLOATS: Final = (torch.float32, torch.float64)


def output_tensors(value: Any, path: str, skipped: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors in a module's output with their paths; other leaves (not None) go to `skipped`."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif value is None:
        return
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from output_tensors(item, f"{path}[{key!r}]", skipped)
    elif isinstance(value, tuple) and _namedtuple_fields(value):
        for name, item in zip(_namedtuple_fields(value), value, strict=True):
            yield from output_tensors(item, f"{path}.{name}", skipped)
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from output_tensors(item, f"{path}[{index}]", skipped)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from output_tensors(getattr(value, f.name), f"{path}.{f.name}", skipped)
    else:
        skipped.append(f"{type(value).__name__} at output{path}")


def _namedtuple_fields(value: tuple[Any, ...]) -> tuple[str, ...]:
    names: tuple[str, ...] = getattr(type(value), "_fields", ())
    return names


Diagnostic = tuple[int, Callable[[torch.Tensor], torch.Tensor | None]]


def diagnostic(module: nn.Module) -> Diagnostic | None:
    """(column in DIAGNOSTICS, device computation) for the modules that have one."""
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return DEAD, dead_fraction
    if isinstance(module, nn.Tanh):
        return SATURATED, saturated_tanh
    if isinstance(module, nn.Sigmoid):
        return SATURATED, saturated_sigmoid
    return None


def _channel_dim(ndim: int) -> int:
    """Where the channels are: last for [B, T, F] (sequences), 1 otherwise ([N, C, ...])."""
    return 2 if ndim == 3 else 1


def dead_fraction(y: torch.Tensor) -> torch.Tensor | None:
    """Fraction of channels never positive across the batch (and positions)."""
    if not y.is_floating_point() or y.numel() == 0 or y.dim() == 0:
        return None
    channel = 0 if y.dim() == 1 else _channel_dim(y.dim())  # 1-D: each element is a channel
    if y.device.type == "cpu" and y.dtype in _HOST_FLOATS and y.is_contiguous():
        from . import _cpu  # numba: imported at the first host tensor, not with nbviz

        shape = y.shape
        outer, inner = math.prod(shape[:channel]), math.prod(shape[channel + 1 :])
        dead = _cpu.dead_channels(y.detach().reshape(-1).numpy(), outer, shape[channel], inner)
        return torch.tensor(dead / shape[channel], dtype=torch.float64)
    peak = y if y.dim() == 1 else y.amax(dim=[d for d in range(y.dim()) if d != channel])
    alive = torch.count_nonzero(peak > 0)  # NaN is not alive
    return (peak.numel() - alive) / peak.numel()


def saturated_tanh(y: torch.Tensor) -> torch.Tensor | None:
    if not y.is_floating_point() or y.numel() == 0:
        return None
    return torch.count_nonzero(y.abs() > 0.99) / y.numel()


def saturated_sigmoid(y: torch.Tensor) -> torch.Tensor | None:
    if not y.is_floating_point() or y.numel() == 0:
        return None
    return torch.count_nonzero((y < 0.01) | (y > 0.99)) / y.numel()
