"""`trace`: one forward pass recorded as a dataflow graph.

Ops come from a `TorchFunctionMode`, module calls from the *global* forward pre/post hooks, which
also fire for modules that are not registered on the model. `nn.Module.__call__` is never
patched. What the hooks cannot see is inferred and reported as a warning: a module whose
parameters are used outside any call of it, a child called while its registered parent is not
running, registered modules that never ran, modules that are not registered at all.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.nn.parameter import is_lazy
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from .._pause import pausing_capture
from ..probe import model_preserved
from .graph import Edge, Graph, GraphWarning, Node, NodeKind, WarningKind
from .modules import (
    ModuleIndex,
    has_children,
    index_modules,
    is_compiled_wrapper,
    is_container,
    unwrap,
)
from .signature import assign_signatures
from .values import OpName, dtype_name, leaves, op_name, tensors

_NOTHING = object()


def trace(model: nn.Module, /, *args: Any, **kwargs: Any) -> Graph:
    """The dataflow graph of `model(*args, **kwargs)`, run once.

    Every positional and keyword argument after `model` goes to the forward: `trace` has no
    options of its own, so no forward argument (`mode`, even `model`) can collide with one.
    A forward that raises gives the partial graph with `error` set. The model is left as it was.
    """
    return trace_call(model, args, kwargs)


def trace_call(
    model: nn.Module, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None
) -> Graph:
    """`trace` with the forward's arguments as a tuple and a dict (for callers that hold them)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"trace needs a torch.nn.Module, got {type(model).__name__}")
    kwargs = dict(kwargs or {})
    root = unwrap(model)  # torch.compile's wrapper: trace the original module, never compile
    recorder = _Recorder(index_modules(root))
    recorder.add_inputs(root, args, kwargs)
    output: Any = _NOTHING
    # model_preserved also runs the forward under no_grad: the structure needs no autograd graph,
    # and without one no activation is kept alive for backward (memory, time). The autograd view
    # (`autograd_svg`) takes a forward the caller ran with gradients on.
    with model_preserved(root), recorder.parameters_restored(), _quiet(), _eager(recorder.index):
        handles = [
            register_module_forward_pre_hook(recorder.enter),
            register_module_forward_hook(recorder.leave),
        ]
        try:
            with recorder:
                output = root(*args, **kwargs)
        except Exception as error:  # the partial graph is the answer; the error goes with it
            recorder.fail(error)
        finally:
            for handle in handles:
                handle.remove()
    if output is not _NOTHING:
        recorder.add_outputs(output)
    return recorder.finish()


@dataclass
class _Call:
    """A module call in progress. Inside a leaf, nested calls share the leaf's node (`inner`)."""

    node: int
    module: nn.Module
    leaf: bool
    seen: set[int] = field(default_factory=set)  # tensors already wired into this leaf
    inner: bool = False


class _Recorder(TorchFunctionMode):
    def __init__(self, index: ModuleIndex) -> None:
        super().__init__()
        self.index = index
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.producer: WeakIdKeyDictionary = WeakIdKeyDictionary()  # tensor -> node id
        self.stack: list[_Call] = []
        self.active: Counter[int] = Counter()  # id(module) -> calls in progress
        self.calls: Counter[int] = Counter()  # id(module) -> calls started
        self.module_of: dict[int, nn.Module] = {}  # module node id -> module
        self.factories: set[int] = set()  # op nodes that took no tensor
        self.warnings: dict[tuple[str, str], GraphWarning] = {}
        self.saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.error: str | None = None
        self.orphans: dict[int, tuple[nn.Module, str]] = {}  # parent -> a child run without it
        # The hooks are global: module calls from other threads are not this forward's.
        self.thread = threading.get_ident()
        # Hooks run with this mode active: their own tensor accesses must not be recorded.
        self.busy = False

    # Ops

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self.busy:
            return func(*args, **kwargs)
        op = op_name(func)
        if op.inplace and args:
            self._save_parameter(args[0])
        out = func(*args, **kwargs)
        self.busy = True
        try:
            self._record(op, args, kwargs, out)
        finally:
            self.busy = False
        return out

    def _record(self, op: OpName, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        if op.name == "setitem" and args and isinstance(args[0], torch.Tensor):
            outs = [args[0]]  # x[i] = y returns None and changes x
        else:
            outs = list(tensors(out))
        # No tensor out (x.shape, x.item()): no dataflow. A Parameter out: initialization of a
        # module created during the forward, not dataflow either.
        if not outs or isinstance(outs[0], nn.Parameter):
            return
        ins = [*tensors(args), *tensors(kwargs)]
        top = self.stack[-1] if self.stack else None
        if top is not None and top.leaf:
            for tensor in ins:
                self._check_parameter(tensor, op)
                self._wire_into_leaf(top, tensor)
            for tensor in outs:
                self.producer[tensor] = top.node
            return
        node = self._node("op", op.name, op.cls, top, outs[0])
        for tensor in ins:
            self._check_parameter(tensor, op)
            self._edge(tensor, node)
        if not ins:
            self.factories.add(node)
        for tensor in outs:  # an in-place op becomes the producer of the tensor it changed
            self.producer[tensor] = node
        base = outs[0]._base if op.inplace else None
        if base is not None and base in self.producer:  # x[0].zero_() changes x too
            self.producer[base] = node

    # Module calls

    def enter(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if is_compiled_wrapper(module) or threading.get_ident() != self.thread:
            return  # torch.compile's wrapper is transparent: its `_orig_mod` is the module
        self.busy = True
        try:
            name, unregistered = self.index.name(module)
            if unregistered:
                self._warn(
                    "unregistered",
                    name,
                    f"{type(module).__name__} ran but is not registered on the model (created"
                    " in forward, or held in a plain list or dict): its parameters are not in"
                    " model.parameters() and it has no qualified name",
                )
            key = id(module)
            call = self.calls[key]
            self.calls[key] += 1
            self.active[key] += 1
            top = self.stack[-1] if self.stack else None
            if top is not None and top.leaf:  # ops inside a leaf are the leaf's own business
                self.stack.append(_Call(top.node, module, True, top.seen, inner=True))
                return
            self._check_callers(module, name)
            leaf = not has_children(module) and (
                module is not self.index.root or type(module).__module__.startswith("torch.")
            )
            node = self._node("module", name, type(module).__name__, top, None, call)
            self.module_of[node] = module
            entry = _Call(node, module, leaf)
            self.stack.append(entry)
            if leaf:
                for tensor in tensors(args):
                    self._wire_into_leaf(entry, tensor)
        finally:
            self.busy = False

    def leave(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if is_compiled_wrapper(module) or threading.get_ident() != self.thread:
            return
        self.busy = True
        try:
            # A child that raised inside a parent's try/except never returned: drop it.
            while self.stack and self.stack[-1].module is not module:
                self.active[id(self.stack.pop().module)] -= 1
            if not self.stack:
                return
            entry = self.stack.pop()
            self.active[id(module)] -= 1
            outs = list(tensors(output))
            if entry.leaf:
                for tensor in outs:
                    self.producer[tensor] = entry.node
            if entry.inner:
                return
            node = self.nodes[entry.node]
            node.cls = type(module).__name__  # a lazy module has become its `cls_to_become`
            if outs:
                node.shape, node.dtype = tuple(outs[0].shape), dtype_name(outs[0].dtype)
        finally:
            self.busy = False

    # Inputs, outputs, failure

    def add_inputs(self, root: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        names = _positional_names(root, len(args))
        values = [*zip(names, args, strict=True)]
        values += [(f"kwargs.{key}", value) for key, value in kwargs.items()]
        for prefix, value in values:
            for path, leaf in leaves(value, prefix):
                if isinstance(leaf, torch.Tensor):
                    node = self._node("input", path, "Tensor", None, leaf)
                    if leaf not in self.producer:  # the same tensor twice: its first name
                        self.producer[leaf] = node

    def add_outputs(self, output: Any) -> None:
        other = []
        for path, leaf in leaves(output, "out"):
            if isinstance(leaf, torch.Tensor):
                self._edge(leaf, self._node("output", path, "Tensor", None, leaf))
            elif leaf is not None:
                other.append(f"{path} ({type(leaf).__name__})")
        if other:
            self._warn(
                "non_tensor_output",
                "",
                f"the output holds values that are not tensors, not drawn: {', '.join(other)}",
            )

    def fail(self, error: Exception) -> None:
        self.error = f"{type(error).__name__}: {error}"
        where = [self.nodes[entry.node].name or "(root)" for entry in self.stack if not entry.inner]
        self._warn(
            "error",
            where[-1] if where else "",
            f"the forward raised in {' > '.join(where) or 'the top level'}: {self.error}."
            " The graph stops there",
        )
        self.stack.clear()
        self.active.clear()

    def finish(self) -> Graph:
        self._warn_bypassed_parents()
        self._warn_not_run()
        self._prune()
        counts: dict[int, int] = {}
        keys: dict[int, str] = {}
        for node_id, module in self.module_of.items():
            key = id(module)
            if key not in counts:
                params = [p for p in module.parameters() if not is_lazy(p)]
                counts[key] = sum(p.numel() for p in params)
                shapes = ",".join("×".join(map(str, p.shape)) for p in params)
                keys[key] = f"{type(module).__qualname__}({shapes})"
            self.nodes[node_id].params = counts[key]
        assign_signatures(
            self.nodes, self.edges, {n: keys[id(m)] for n, m in self.module_of.items()}
        )
        return Graph(self.nodes, self.edges, list(self.warnings.values()), self.error)

    @contextlib.contextmanager
    def parameters_restored(self) -> Iterator[None]:
        """Parameters the forward changes in place get their values back, however it ends."""
        try:
            yield
        finally:
            with torch.no_grad():
                for param, saved in self.saved.values():
                    param.copy_(saved)

    # Helpers

    def _node(
        self,
        kind: NodeKind,
        name: str,
        cls: str,
        parent: _Call | None,
        tensor: torch.Tensor | None,
        call: int = 0,
    ) -> int:
        node = Node(len(self.nodes), kind, name, cls, -1 if parent is None else parent.node, call)
        if tensor is not None:
            node.shape, node.dtype = tuple(tensor.shape), dtype_name(tensor.dtype)
        self.nodes.append(node)
        return node.id

    def _edge(self, tensor: torch.Tensor, dst: int) -> None:
        src = self._producer(tensor)
        if src is not None:
            self.edges.append(Edge(src, dst, tuple(tensor.shape), dtype_name(tensor.dtype)))

    def _wire_into_leaf(self, entry: _Call, tensor: torch.Tensor) -> None:
        if id(tensor) in entry.seen:
            return
        entry.seen.add(id(tensor))
        src = self._producer(tensor)
        if src is not None and src != entry.node:
            self.edges.append(Edge(src, entry.node, tuple(tensor.shape), dtype_name(tensor.dtype)))

    def _producer(self, tensor: torch.Tensor) -> int | None:
        src: int | None = self.producer.get(tensor)  # type: ignore[no-untyped-call]
        return src

    def _save_parameter(self, tensor: Any) -> None:
        key = id(tensor)
        if key in self.index.params and key not in self.saved and not is_lazy(tensor):
            self.saved[key] = (tensor, tensor.detach().clone())

    def _check_parameter(self, tensor: torch.Tensor, op: OpName) -> None:
        """A parameter used while none of the modules holding it runs: they were bypassed."""
        holders = self.index.holders.get(id(tensor))
        if holders is None or any(self.active[id(holder)] for holder in holders):
            return
        name = self.index.names[id(holders[0])]
        cls = type(holders[0]).__name__
        self._warn(
            "bypassed_hooks",
            name,
            f"its parameters were used by {op.cls} outside any call of it ({cls}.forward()"
            f" called directly, or its weights used functionally): that use shows as a {op.name}"
            " op, not as a call of the module",
        )

    def _check_callers(self, module: nn.Module, name: str) -> None:
        """A child running while none of its registered parents runs. If that parent never runs
        at all (decided in `finish`), its hooks were bypassed: `parent.forward(x)` was called."""
        callers = self.index.callers(module)
        if callers and not any(self.active[id(caller)] for caller in callers):
            self.orphans.setdefault(id(callers[0]), (callers[0], name))

    def _warn_bypassed_parents(self) -> None:
        for parent, child in self.orphans.values():
            if self.calls[id(parent)]:
                continue  # it ran elsewhere: the child is merely shared or borrowed
            self._warn(
                "bypassed_hooks",
                self.index.names[id(parent)],
                f"its child {child} ran but it never did ({type(parent).__name__}.forward()"
                " called directly?): its children appear one level up",
            )

    def _warn_not_run(self) -> None:
        index = self.index
        missing = {id(m) for m in index.modules if id(m) not in self.calls and not is_container(m)}
        reported = {w.module for w in self.warnings.values()}
        for module in index.modules:
            name = index.names[id(module)]
            if id(module) not in missing or name in reported:
                continue
            if any(id(caller) in missing for caller in index.callers(module)):
                continue  # its parent's warning covers it
            self._warn(
                "not_run",
                name,
                f"{type(module).__name__} never ran in this forward (data-dependent control"
                " flow, an unused module, or a forward that stopped early)",
            )

    def _prune(self) -> None:
        """Drops ops that took no tensor and fed nothing (parameter allocation of modules built
        during the forward, unused constants): they say nothing about the dataflow."""
        used = {edge.src for edge in self.edges}
        drop = {n for n in self.factories if n not in used}
        if not drop:
            return
        new_id: dict[int, int] = {}
        kept: list[Node] = []
        for node in self.nodes:
            if node.id not in drop:
                new_id[node.id] = len(kept)
                kept.append(node)
        for node in kept:
            node.id = new_id[node.id]
            node.parent = new_id.get(node.parent, -1)
        self.nodes = kept
        self.edges = [Edge(new_id[e.src], new_id[e.dst], e.shape, e.dtype) for e in self.edges]
        self.module_of = {new_id[n]: m for n, m in self.module_of.items()}

    def _warn(self, kind: WarningKind, module: str, message: str) -> None:
        self.warnings.setdefault((kind, module), GraphWarning(kind, module, message))


def _positional_names(root: nn.Module, count: int) -> list[str]:
    """Names of the forward's positional parameters, `args[i]` where it has none."""
    try:
        params = list(inspect.signature(root.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    named = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return [named[i] if i < len(named) else f"args[{i}]" for i in range(count)]


@contextlib.contextmanager
def _eager(index: ModuleIndex) -> Iterator[None]:
    """Compiled submodules run their original code: a trace must not trigger a compilation."""
    if not any(is_compiled_wrapper(m) for m in index.modules):
        yield
        return
    set_stance = getattr(torch.compiler, "set_stance", None)
    if set_stance is not None:
        with set_stance("force_eager"):
            yield
        return
    # torch < 2.6 has no stances: dynamo's own off switch.
    from torch._dynamo import config

    with config.patch(disable=True):
        yield


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silences warnings about the trace's own setup (not about the user's model), and
    recorders watching the model."""
    with warnings.catch_warnings(), pausing_capture():  # recorders must not record the trace
        # checkpoint() under no_grad: true, and irrelevant to a structure trace.
        warnings.filterwarnings("ignore", message="None of the inputs have requires_grad")
        # torch.compile's wrapper sees our global hooks twice; the wrapper is skipped.
        warnings.filterwarnings("ignore", message=".*global hooks on modules.*")
        yield
