"""Awkward models for the capture tests: in-place ops, tied weights, reuse, recursion, structured
outputs, frozen parts, injected NaN. Each is small enough to recompute by hand in a test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn


class BasicBlock(nn.Module):
    """A ResNet basic block as torchvision writes it: ReLU(inplace=True) and `out += identity`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        result: torch.Tensor = self.relu(out)
        return result


def small_resnet(channels: int = 4, classes: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        BasicBlock(channels),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, classes),
    )


class TinyGPT(nn.Module):
    """Token embedding shared with the output head, as in GPT-2."""

    def __init__(self, vocab: int = 11, width: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        h = h + self.mlp(self.norm(h))
        logits: torch.Tensor = self.head(h)
        return logits


class Reused(nn.Module):
    """One Linear applied twice per forward: calls 0 and 1."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.shared = nn.Linear(width, width)
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.head(torch.tanh(self.shared(torch.tanh(self.shared(x)))))
        return result


class Recursive(nn.Module):
    """Calls itself `depth` more times: the outermost call is call 0."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, depth: int = 2) -> torch.Tensor:
        y = torch.tanh(self.linear(x))
        if depth == 0:
            return y
        result: torch.Tensor = self(y, depth - 1)
        return result


@dataclass
class Output:
    logits: torch.Tensor
    hidden: torch.Tensor
    note: str


class Pair(NamedTuple):
    first: torch.Tensor
    second: torch.Tensor


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.linear(x)
        return {"logits": y, "hidden": y.relu()}


class DataclassOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> Output:
        y = self.linear(x)
        return Output(logits=y, hidden=2 * y, note="not a tensor")


class NamedTupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> Pair:
        y = self.linear(x)
        return Pair(first=y, second=(y, y.sum()))  # type: ignore[arg-type]


class Structured(nn.Module):
    """Children returning a dict, a dataclass (with a str), a namedtuple (with a nested tuple)."""

    def __init__(self) -> None:
        super().__init__()
        self.as_dict = DictOut()
        self.as_dataclass = DataclassOut()
        self.as_namedtuple = NamedTupleOut()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.as_dict(x)["logits"]
        b = self.as_dataclass(x).logits
        c = self.as_namedtuple(x).first
        result: torch.Tensor = a + b + c
        return result


def frozen_mlp() -> nn.Sequential:
    """The first Linear frozen, the second trained."""
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    model[0].requires_grad_(False)
    return model


class Poison(nn.Module):
    """Identity, until `armed`: then its output holds a NaN (a layer that just blew up)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.armed:
            return x
        y = x.clone()
        y[0, 0] = float("nan")
        return y


def poisoned_mlp() -> nn.Sequential:
    """Linear, Poison ("1"), ReLU, Linear."""
    return nn.Sequential(nn.Linear(4, 6), Poison(), nn.ReLU(), nn.Linear(6, 2))


class Raises(nn.Module):
    """Raises in its forward when `fail` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail:
            raise RuntimeError("boom")
        result: torch.Tensor = self.linear(x)
        return result


def regularized() -> nn.Sequential:
    """Dropout (RNG) and BatchNorm (buffers): capture must leave both alone."""
    return nn.Sequential(
        nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2)
    )
