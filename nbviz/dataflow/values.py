"""Tensors inside the values that cross a call (nested tuples, lists, dicts, dataclasses), and
the names the graph gives to the callables a `TorchFunctionMode` sees."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import torch

FUNCTIONAL_MODULES = ("torch.nn.functional", "torch._C._nn")
TORCH_MODULES = ("torch", "torch.functional")  # torch.einsum lives in torch.functional


def tensors(value: Any) -> Iterator[torch.Tensor]:
    """Tensors in op arguments, depth first. Fast path for the common shapes of op arguments."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensors(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from tensors(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from tensors(getattr(value, f.name))


def leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, leaf) for every leaf of a model's input or output, containers opened.

    Paths read like Python: `out.logits` (dict key, dataclass field or namedtuple field),
    `out[1]` (sequence index), `out['a b']` (a key that is not an identifier).
    """
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            part = f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!r}]"
            yield from leaves(item, path + part)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        for key, item in zip(value._fields, value, strict=True):
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from leaves(getattr(value, f.name), f"{path}.{f.name}")
    else:
        yield path, value


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


class OpName(NamedTuple):
    """`name` is short ("add_", "getitem", "T"); `cls` says where it lives ("Tensor.add_")."""

    name: str
    cls: str
    inplace: bool


def op_name(func: Callable[..., Any]) -> OpName:
    """Names for a callable as `__torch_function__` receives it (cached: a few hundred exist)."""
    try:
        return _cached_op_name(func)
    except TypeError:  # an unhashable callable
        return _op_name(func)


def _op_name(func: Callable[..., Any]) -> OpName:
    raw = getattr(func, "__name__", None) or type(func).__name__
    owner = getattr(func, "__self__", None)
    qualname = getattr(func, "__qualname__", raw)
    module = getattr(func, "__module__", None) or ""
    if raw == "__get__" and owner is not None:  # a property such as `x.T`
        name = getattr(owner, "__name__", "get")
        return OpName(name, f"Tensor.{name}", False)
    setitem = raw == "__setitem__"
    name = raw.strip("_") if raw.startswith("__") else raw
    if raw.startswith("__i") and raw[3:-2] in _INPLACE_DUNDERS:  # x += y, when not add_
        name = raw[3:-2] + "_"
    elif raw.startswith("__r") and raw[3:-2] in _INPLACE_DUNDERS:  # 1 + x
        name = raw[3:-2]
    if qualname.startswith(("TensorBase.", "Tensor.")):
        cls = f"Tensor.{raw}"
    elif qualname.startswith("_VariableFunctionsClass.") or module in TORCH_MODULES:
        cls = f"torch.{raw}"
    elif module in FUNCTIONAL_MODULES:
        cls = f"F.{raw}"
    elif module:
        cls = f"{module.removeprefix('torch.')}.{qualname}"
    else:
        cls = qualname
    inplace = setitem or (name.endswith("_") and not name.startswith("_"))
    return OpName(name, cls, inplace)


_INPLACE_DUNDERS = frozenset(
    [
        "add",
        "sub",
        "mul",
        "truediv",
        "floordiv",
        "mod",
        "pow",
        "matmul",
        "and",
        "or",
        "xor",
        "lshift",
        "rshift",
    ]
)


_cached_op_name = functools.lru_cache(maxsize=4096)(_op_name)
