"""The module tree of a model, with parameter counts that never count a tensor twice.

One row per path from the root to a module, depth first, children in registration order. A module
object reached a second time (registered under two parents, or a cycle back to an ancestor) is an
alias row with no children and no counts, so the tree is finite. A parameter held by several
modules (tied weights) is one `ParamInfo`, under its first qualified name; subtree totals count it
once. Field names and order are the wire contract of `_protocol`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from ._protocol import LAYER_FIELDS, TENSOR_FIELDS


@dataclass(frozen=True)
class LayerInfo:
    """One row of the module tree; the fields are `_protocol.LAYER_FIELDS`, in that order."""

    name: str
    parent: int
    depth: int
    cls: str
    module: str
    own_params: int
    total_params: int
    trainable: int
    frozen: int
    buffers: tuple[str, ...]
    buffer_elements: int
    dtypes: tuple[str, ...]
    devices: tuple[str, ...]
    lazy: bool
    shared: bool
    alias_of: str | None
    tensors: tuple[int, ...]


@dataclass(frozen=True)
class ParamInfo:
    """One parameter, once however many modules hold it; the wire fields are TENSOR_FIELDS."""

    name: str
    layer: int
    param: str
    shape: tuple[int, ...]
    dtype: str
    device: str
    requires_grad: bool
    lazy: bool
    complex: bool
    shared_with: tuple[str, ...]
    tensor: torch.Tensor = field(repr=False, compare=False)


@dataclass(frozen=True)
class Hierarchy:
    """The rows of the module tree (depth first) and its unique parameters."""

    layers: tuple[LayerInfo, ...]
    params: tuple[ParamInfo, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen dataclass: the lookup table is derived once, here.
        object.__setattr__(self, "_index", {row.name: i for i, row in enumerate(self.layers)})

    def names(self) -> list[str]:
        """Qualified names of the rows, depth first; "" is the root."""
        return [row.name for row in self.layers]

    def index(self, name: str) -> int:
        """Row index of the layer `name`; KeyError if the model has no such path."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"no layer named {name!r}") from None

    def layer(self, name: str) -> LayerInfo:
        return self.layers[self.index(name)]

    def wire_layers(self) -> list[dict[str, Any]]:
        """The `layers` trait: JSON-ready dicts keyed by `_protocol.LAYER_FIELDS`."""
        return [_wire(row, LAYER_FIELDS) for row in self.layers]

    def wire_tensors(self) -> list[dict[str, Any]]:
        """The `tensors` trait: JSON-ready dicts keyed by `_protocol.TENSOR_FIELDS`."""
        return [_wire(param, TENSOR_FIELDS) for param in self.params]

    def to_text(self) -> str:
        """One line per row, indented by depth: deterministic, for tests, logs and the demo."""
        return "\n".join(_text_line(row) for row in self.layers)


def module_hierarchy(model: torch.nn.Module) -> Hierarchy:
    """The module tree of `model` with parameter and buffer metadata (see the module docstring)."""
    nodes = _walk(model)
    params = _collect_params(nodes)
    totals = _subtree_totals(nodes, params)
    layers = tuple(_layer_info(node, params, totals[row]) for row, node in enumerate(nodes))
    return Hierarchy(layers=layers, params=tuple(p.freeze() for p in params))


@dataclass
class _Node:
    """A row while the tree is being built."""

    name: str
    module: torch.nn.Module
    parent: int
    depth: int
    alias_of: str | None
    tensors: list[int] = field(default_factory=list)


@dataclass
class _Param:
    """A unique parameter while the tree is being built: where it lives and who else holds it."""

    name: str
    layer: int
    param: str
    tensor: torch.Tensor
    rows: list[int]
    shared_with: list[str] = field(default_factory=list)

    @property
    def lazy(self) -> bool:
        return torch.nn.parameter.is_lazy(self.tensor)

    @property
    def numel(self) -> int:
        # numel() raises on an uninitialized parameter.
        return 0 if self.lazy else self.tensor.numel()

    def freeze(self) -> ParamInfo:
        t = self.tensor
        return ParamInfo(
            name=self.name,
            layer=self.layer,
            param=self.param,
            shape=() if self.lazy else tuple(t.shape),
            dtype=_dtype_name(t.dtype),
            device=str(t.device),
            requires_grad=t.requires_grad,
            lazy=self.lazy,
            complex=t.dtype.is_complex,
            shared_with=tuple(self.shared_with),
            tensor=t,
        )


def _walk(model: torch.nn.Module) -> list[_Node]:
    """Rows in depth-first order from an explicit stack.

    Not `named_modules(remove_duplicate=False)`, which never ends on a cycle, and not recursion,
    which a deep enough model would exhaust.
    """
    nodes: list[_Node] = []
    first_row: dict[int, int] = {}  # id(module) -> row of its first path
    stack: list[tuple[str, torch.nn.Module, int, int]] = [("", model, -1, 0)]
    while stack:
        name, module, parent, depth = stack.pop()
        seen = first_row.get(id(module))
        alias_of = None if seen is None else nodes[seen].name
        nodes.append(_Node(name, module, parent, depth, alias_of))
        if seen is not None:
            continue
        row = len(nodes) - 1
        first_row[id(module)] = row
        children = [(key, child) for key, child in module._modules.items() if child is not None]
        # Reversed, so that the first registered child is popped first.
        stack.extend((_join(name, key), child, row, depth + 1) for key, child in reversed(children))
    return nodes


def _collect_params(nodes: list[_Node]) -> list[_Param]:
    """Unique parameters by identity, first qualified name first; fills each node's `tensors`."""
    params: list[_Param] = []
    by_id: dict[int, int] = {}
    for row, node in enumerate(nodes):
        if node.alias_of is not None:
            continue
        for key, tensor in node.module._parameters.items():
            if tensor is None:
                continue
            qualified = _join(node.name, key)
            index = by_id.get(id(tensor))
            if index is None:
                index = by_id[id(tensor)] = len(params)
                params.append(_Param(qualified, row, key, tensor, [row]))
            else:
                params[index].shared_with.append(qualified)
                params[index].rows.append(row)
            if index not in node.tensors:  # the same Parameter under two names of one module
                node.tensors.append(index)
    return params


def _subtree_totals(nodes: list[_Node], params: list[_Param]) -> list[tuple[int, int]]:
    """(trainable, frozen) elements per row, each unique parameter once per subtree.

    A parameter held by one module is summed up the tree in one reverse pass. A shared one is added
    once to the union of its holders' ancestors, which costs depth per holder: shared parameters
    are few, so the whole stays linear in the number of rows.
    """
    summed = [[0, 0] for _ in nodes]  # propagated to the parent
    extra = [[0, 0] for _ in nodes]  # shared parameters, already on every ancestor
    for param in params:
        column = 0 if param.tensor.requires_grad else 1
        holders = set(param.rows)
        if len(holders) == 1:
            summed[param.layer][column] += param.numel
            continue
        for row in _ancestors(nodes, holders):
            extra[row][column] += param.numel
    for row in range(len(nodes) - 1, 0, -1):  # children come after their parent
        parent = nodes[row].parent
        summed[parent][0] += summed[row][0]
        summed[parent][1] += summed[row][1]
    return [(s[0] + e[0], s[1] + e[1]) for s, e in zip(summed, extra, strict=True)]


def _ancestors(nodes: list[_Node], rows: Iterable[int]) -> set[int]:
    """The rows and all their ancestors."""
    found: set[int] = set()
    for row in rows:
        while row >= 0 and row not in found:
            found.add(row)
            row = nodes[row].parent
    return found


def _layer_info(node: _Node, params: list[_Param], totals: tuple[int, int]) -> LayerInfo:
    module = node.module
    cls = type(module)
    # Everything an alias holds already belongs to the first path to the same module.
    alias = node.alias_of is not None
    own = [] if alias else [params[i] for i in node.tensors]
    buffers = {} if alias else {key: b for key, b in module._buffers.items() if b is not None}
    trainable, frozen = (0, 0) if alias else totals
    tensors = [p.tensor for p in own] + list(buffers.values())
    return LayerInfo(
        name=node.name,
        parent=node.parent,
        depth=node.depth,
        cls=cls.__name__,
        module=cls.__module__,
        own_params=sum(p.numel for p in own),
        total_params=trainable + frozen,
        trainable=trainable,
        frozen=frozen,
        buffers=tuple(buffers),
        buffer_elements=sum(_numel(b) for b in buffers.values()),
        dtypes=tuple(sorted({_dtype_name(t.dtype) for t in tensors})),
        devices=tuple(sorted({str(t.device) for t in tensors})),
        lazy=any(torch.nn.parameter.is_lazy(t) for t in tensors),
        shared=any(p.shared_with for p in own),
        alias_of=node.alias_of,
        tensors=() if alias else tuple(node.tensors),
    )


def _text_line(row: LayerInfo) -> str:
    head = f"{'  ' * row.depth}{row.name or '(root)'} ({row.cls})"
    if row.alias_of is not None:
        return f"{head}  [alias of {row.alias_of or '(root)'}]"
    flags = []
    if row.frozen and row.trainable:
        flags.append("partly frozen")
    elif row.frozen:
        flags.append("frozen")
    if row.lazy:
        flags.append("lazy")
    if row.shared:
        flags.append("shared")
    if row.buffers:
        flags.append(f"buffers: {', '.join(row.buffers)} ({row.buffer_elements:,})")
    counts = f"own {row.own_params:,}  total {row.total_params:,}"
    return f"{head}  {counts}" + (f"  [{'; '.join(flags)}]" if flags else "")


def _wire(info: LayerInfo | ParamInfo, fields: tuple[str, ...]) -> dict[str, Any]:
    # JSON has no tuples: sequences cross as lists.
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key in fields
        for value in [getattr(info, key)]
    }


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _numel(tensor: torch.Tensor) -> int:
    return 0 if torch.nn.parameter.is_lazy(tensor) else tensor.numel()
