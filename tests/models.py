"""A zoo of awkward models: each function builds one small module that breaks naive walkers.

Parameter counts are kept small so that tests can count them by hand.
"""

from __future__ import annotations

import torch
from torch import nn


class TiedLM(nn.Module):
    """Embedding and output head sharing one weight, as in GPT-2."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)  # weight 10*4
        self.body = nn.Linear(4, 4)  # 4*4 + 4
        self.head = nn.Linear(4, 10, bias=False)  # its own weight is replaced below
        self.head.weight = self.embed.weight


def tied() -> nn.Module:
    return TiedLM()


def aliased() -> nn.Module:
    """The same Linear registered under two parents: a.0 and b.1."""
    shared = nn.Linear(3, 2)  # 3*2 + 2
    model = nn.Module()
    model.a = nn.Sequential(shared, nn.ReLU())
    model.b = nn.Sequential(nn.Linear(2, 2), shared)  # the first: 2*2 + 2
    return model


def cycle() -> nn.Module:
    """A module that contains itself, and a child that contains its parent."""
    model = nn.Sequential(nn.Linear(2, 2))  # 2*2 + 2
    inner = nn.Module()
    model.add_module("inner", inner)
    # Straight into _modules: nothing in torch stops this, and named_modules would loop on it.
    model._modules["self"] = model
    inner._modules["back"] = model
    return model


def lazy() -> nn.Module:
    """Uninitialized lazy modules next to an ordinary one; never run, so still lazy."""
    return nn.Sequential(
        nn.LazyLinear(4),
        nn.LazyConv2d(3, kernel_size=3),
        nn.LazyBatchNorm1d(),
        nn.Linear(2, 3),  # 2*3 + 3
    )


def containers() -> nn.Module:
    """ModuleList, ModuleDict with an HTML-ish key, a None submodule and a bias-free layer."""
    model = nn.Module()
    model.blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 1, bias=False)])
    model.heads = nn.ModuleDict({"cls": nn.Linear(1, 2), "<b>x</b>": nn.Linear(1, 1)})
    model.register_module("missing", None)
    return model


def frozen() -> nn.Module:
    """A fully frozen layer and a partly frozen one (weight trainable, bias frozen)."""
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # 4*3 + 3, then 3*2 + 2
    model[0].requires_grad_(False)
    model[1].bias.requires_grad_(False)
    return model


def buffers() -> nn.Module:
    """BatchNorm: parameters plus float and int64 buffers."""
    return nn.Sequential(nn.Conv2d(1, 2, kernel_size=3), nn.BatchNorm2d(2))


def mlp(layers: int = 500, width: int = 64) -> nn.Sequential:
    return nn.Sequential(*(nn.Linear(width, width) for _ in range(layers)))


def nested(depth: int = 10) -> nn.Module:
    """Each level is Sequential(Linear(2, 2), next level): names 1, 1.1, 1.1.1, ..."""
    model: nn.Module = nn.Sequential(nn.Linear(2, 2))
    for _ in range(depth - 1):
        model = nn.Sequential(nn.Linear(2, 2), model)
    return model


class ComplexLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([3 + 4j, 0j, -1 + 0j], dtype=torch.complex64))
        self.scale = nn.Parameter(torch.ones(2))


def complex_valued() -> nn.Module:
    return ComplexLayer()


def bf16() -> nn.Module:
    """A bfloat16 layer next to a float32 one."""
    return nn.Sequential(nn.Linear(4, 4).to(torch.bfloat16), nn.Linear(4, 2))


class SameParamTwice(nn.Module):
    """One module holding one Parameter under two attribute names."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(5))
        self.b = self.a


def same_param_twice() -> nn.Module:
    return SameParamTwice()


ZOO = {
    "tied": tied,
    "aliased": aliased,
    "cycle": cycle,
    "lazy": lazy,
    "containers": containers,
    "frozen": frozen,
    "buffers": buffers,
    "mlp": mlp,
    "nested": nested,
    "complex_valued": complex_valued,
    "bf16": bf16,
    "same_param_twice": same_param_twice,
}
"""Every model by name, for tests that should hold for all of them."""
