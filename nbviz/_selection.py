"""Which modules and parameters a `Recorder` watches, and the checks of its arguments."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .records import KINDS, SeriesKey


@dataclass(frozen=True)
class Param:
    """A watched parameter, under the first watched module that holds it."""

    layer: str
    name: str
    param: nn.Parameter

    def key(self, kind: str) -> SeriesKey:
        return SeriesKey(self.layer, kind, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}" if self.layer else self.name


def check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")


def check_sink(sink: object) -> None:
    missing = [
        m for m in ("add", "end_step", "add_anomaly") if not callable(getattr(sink, m, None))
    ]
    if missing:
        raise TypeError(f"sink {type(sink).__name__} lacks {', '.join(missing)} (a RecordSink)")


def check_kinds(kinds: Sequence[str] | None) -> frozenset[str]:
    if kinds is None:
        return frozenset(KINDS)
    if isinstance(kinds, str):
        kinds = [kinds]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}: choose from {', '.join(KINDS)}")
    return frozenset(kinds)


def check_period(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def check_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    if optimizer is None:
        return
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, not {type(optimizer).__name__}"
        )
    ours = {id(p) for p in model.parameters()}
    if not any(id(p) in ours for group in optimizer.param_groups for p in group["params"]):
        raise ValueError(
            f"the {type(optimizer).__name__} holds none of the model's parameters: "
            "pass the optimizer that trains this model"
        )


def select_modules(
    model: nn.Module, patterns: Sequence[str | type[nn.Module]] | None
) -> list[tuple[str, nn.Module]]:
    """The watched modules, in `named_modules` order (each module object once)."""
    named = list(model.named_modules())
    if patterns is None:
        return [(n, m) for n, m in named if _has_own_params(m) or not _has_children(m)]
    if isinstance(patterns, (str, type)):
        patterns = [patterns]
    chosen: set[int] = set()
    for pattern in patterns:
        hits = [id(m) for n, m in named if _matches(pattern, n, m)]
        if not hits:
            raise ValueError(_no_match(pattern, named))
        chosen.update(hits)
    return [(n, m) for n, m in named if id(m) in chosen]


def _matches(pattern: str | type[nn.Module], name: str, module: nn.Module) -> bool:
    if isinstance(pattern, str):
        return fnmatch.fnmatchcase(name, pattern)
    if isinstance(pattern, type) and issubclass(pattern, nn.Module):
        return isinstance(module, pattern)
    raise TypeError(f"modules holds {pattern!r}: give name globs (str) or nn.Module subclasses")


def _no_match(pattern: str | type[nn.Module], named: list[tuple[str, nn.Module]]) -> str:
    if isinstance(pattern, str):
        names = [n for n, _ in named if n]
        close = difflib.get_close_matches(pattern, names, n=6, cutoff=0.4) or names[:6]
        return f"no module matches {pattern!r}; close names: {', '.join(close) or '(none)'}"
    classes = sorted({type(m).__name__ for _, m in named})
    close = difflib.get_close_matches(pattern.__name__, classes, n=6, cutoff=0.4) or classes[:6]
    return f"no module is a {pattern.__name__}; the model has: {', '.join(close)}"


def _has_own_params(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


def _has_children(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def watched_params(selected: list[tuple[str, nn.Module]]) -> list[Param]:
    """Own parameters of the selected modules, each tensor once (tied weights: the first)."""
    seen: set[int] = set()
    params = []
    for layer, module in selected:
        for name, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                params.append(Param(layer, name, param))
    return params
