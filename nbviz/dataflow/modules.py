"""What the tracer knows about a model's modules before the forward: names, registered parents,
which modules hold each parameter, and `torch.compile` wrappers to look through."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

COMPILED_PREFIX = "_orig_mod"
# Containers are never called: their children are called by the container's owner.
CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
UNREGISTERED = "<unregistered>"


def is_compiled_wrapper(module: nn.Module) -> bool:
    """`torch.compile(module)`'s OptimizedModule; by name, so that torch._dynamo is not imported."""
    return type(module).__name__ == "OptimizedModule" and COMPILED_PREFIX in module._modules


def unwrap(model: nn.Module) -> nn.Module:
    while is_compiled_wrapper(model):
        inner = model._modules[COMPILED_PREFIX]
        assert inner is not None
        model = inner
    return model


def has_children(module: nn.Module) -> bool:
    return any(child is not None for child in module._modules.values())


def is_container(module: nn.Module) -> bool:
    return isinstance(module, CONTAINERS) or is_compiled_wrapper(module)


@dataclass
class ModuleIndex:
    """Registered modules by identity. Strong references keep ids unique for the whole trace."""

    root: nn.Module
    names: dict[int, str] = field(default_factory=dict)
    modules: list[nn.Module] = field(default_factory=list)
    parents: dict[int, list[nn.Module]] = field(default_factory=dict)
    holders: dict[int, list[nn.Module]] = field(default_factory=dict)  # id(param) -> modules
    params: dict[int, torch.Tensor] = field(default_factory=dict)
    unregistered: list[nn.Module] = field(default_factory=list)
    _counts: Counter[str] = field(default_factory=Counter)
    _callers: dict[int, list[nn.Module]] = field(default_factory=dict)

    def registered(self, module: nn.Module) -> bool:
        return id(module) in self.names and not self.names[id(module)].startswith(UNREGISTERED)

    def name(self, module: nn.Module) -> tuple[str, bool]:
        """(name, first time seen unregistered): a module missing from the model is named
        `<unregistered>.Linear#0` and its own children under that prefix."""
        known = self.names.get(id(module))
        if known is not None:
            return known, False
        cls = type(module).__name__
        name = f"{UNREGISTERED}.{cls}#{self._counts[cls]}"
        self._counts[cls] += 1
        self.unregistered.append(module)
        for sub, child in _named(module, name):
            self.names.setdefault(id(child), sub)
        return name, True

    def callers(self, module: nn.Module) -> list[nn.Module]:
        """The registered parents that should be running when `module` is called: a container's
        own parents stand in for it. Empty for the root and for unregistered modules."""
        cached = self._callers.get(id(module))
        if cached is None:
            cached = []
            pending = list(self.parents.get(id(module), []))
            seen: set[int] = set()
            while pending:
                parent = pending.pop()
                if id(parent) in seen:
                    continue
                seen.add(id(parent))
                if is_container(parent):
                    pending.extend(self.parents.get(id(parent), []))
                else:
                    cached.append(parent)
            self._callers[id(module)] = cached
        return cached


def index_modules(root: nn.Module) -> ModuleIndex:
    """Every module reachable from `root` once, by its first path, `_orig_mod.` hidden."""
    index = ModuleIndex(root)
    for name, module in _named(root, ""):
        index.names[id(module)] = name
        index.modules.append(module)
        for child in module._modules.values():
            if child is not None:
                index.parents.setdefault(id(child), []).append(module)
        for param in module._parameters.values():
            if param is not None:
                index.holders.setdefault(id(param), []).append(module)
                index.params[id(param)] = param
    return index


def _named(root: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    """Depth first from an explicit stack, each module once: models may hold cycles."""
    seen: set[int] = set()
    stack = [(prefix, root)]
    while stack:
        name, module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        yield name, module
        children = [(k, c) for k, c in module._modules.items() if c is not None]
        for key, child in reversed(children):
            hidden = key == COMPILED_PREFIX and is_compiled_wrapper(module)
            stack.append((name if hidden else f"{name}.{key}" if name else key, child))
