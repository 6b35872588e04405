"""The trace zoo: real architectures (hand-built ResNet-18, tied-weight GPT, UNet, LSTM tagger,
MoE with routing, TransformerEncoder) and the awkward cases `nbviz.trace` must survive.

Each `ZOO` entry builds a fresh `Case`: the model (seeded, so weights and routing are fixed) and
the example arguments for its forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import capture_models
import torch
import torch.nn.functional as F  # noqa: N812 (the name everyone uses)
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class Case:
    model: nn.Module
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


# ResNet-18, as torchvision writes it (no torchvision here).


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        result: torch.Tensor = self.relu(out)
        return result


class ResNet18(nn.Module):
    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            self.add_module(
                f"layer{i + 1}",
                nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)),
            )
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
        result: torch.Tensor = self.fc(torch.flatten(self.avgpool(x), 1))
        return result


# GPT with the token embedding tied to the output head.


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, context: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mask: torch.Tensor
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        result: torch.Tensor = self.proj(y)
        return result


class GPTBlock(nn.Module):
    def __init__(self, width: int, heads: int, context: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, context)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        result: torch.Tensor = x + self.mlp(self.ln2(x))
        return result


class GPT(nn.Module):
    def __init__(
        self, blocks: int = 3, width: int = 16, heads: int = 2, vocab: int = 32, context: int = 16
    ) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(GPTBlock(width, heads, context) for _ in range(blocks))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        for block in self.blocks:
            x = block(x)
        logits: torch.Tensor = self.head(self.ln_f(x))
        return logits


def gpt_case(blocks: int = 3, width: int = 16) -> Case:
    torch.manual_seed(0)
    return Case(GPT(blocks, width).eval(), (torch.randint(0, 32, (2, 8)),))


# UNet, two levels down and up.


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(),
    )


class Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = double_conv(2 * cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.conv(torch.cat([skip, self.up(x)], dim=1))
        return result


class UNet(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.inc = double_conv(1, width)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), double_conv(width, 2 * width))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), double_conv(2 * width, 4 * width))
        self.up1 = Up(4 * width, 2 * width)
        self.up2 = Up(2 * width, width)
        self.outc = nn.Conv2d(width, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        result: torch.Tensor = self.outc(self.up2(self.up1(x3, x2), x1))
        return result


# LSTM tagger: nn.LSTM returns (output, (h, c)).


class LSTMTagger(nn.Module):
    def __init__(self, vocab: int = 20, width: int = 8, tags: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, batch_first=True)
        self.tag = nn.Linear(width, tags)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, (_h, _c) = self.lstm(self.embed(tokens))
        return F.log_softmax(self.tag(out), dim=-1)


# Mixture of experts with top-1 routing: the last expert is never chosen.


class MoE(nn.Module):
    def __init__(self, width: int = 8, experts: int = 4) -> None:
        super().__init__()
        self.router = nn.Linear(width, experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, width))
            for _ in range(experts)
        )
        with torch.no_grad():  # routing is data-dependent; this makes expert 3 lose every time
            self.router.bias[-1] = -1e4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        choice = self.router(x).argmax(dim=-1)
        out = torch.zeros_like(x)
        for i, expert in enumerate(self.experts):
            chosen = choice == i
            if chosen.any():
                out[chosen] = expert(x[chosen])
        return out


def transformer_encoder() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


# The awkward cases.


class Aliased(nn.Module):
    """One Linear registered under two parents (a.0 and b.1) and run through both."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(3, 3)
        self.a = nn.Sequential(shared, nn.ReLU())
        self.b = nn.Sequential(nn.Linear(3, 3), shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.b(self.a(x))
        return result


@dataclass
class Batch:
    image: torch.Tensor
    scale: float


class StructuredInput(nn.Module):
    """A tuple, a dict and a dataclass (holding a float) as inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(
        self, pair: tuple[torch.Tensor, torch.Tensor], extra: dict[str, torch.Tensor], batch: Batch
    ) -> torch.Tensor:
        x = pair[0] + pair[1] * extra["gain"] + batch.image * batch.scale
        result: torch.Tensor = self.fc(x)
        return result


class KwargsOnly(nn.Module):
    """Keyword-only forward with non-tensor arguments named `mode` and `model`."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(
        self,
        *,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        mode: str = "sum",
        model: int = 1,
    ) -> torch.Tensor:
        y = self.fc(x) * model
        if mask is not None:
            y = y.masked_fill(mask, 0.0)
        result: torch.Tensor = y.sum(dim=-1) if mode == "sum" else y.amax(dim=-1)
        return result


class Branchy(nn.Module):
    """Data-dependent control flow: only one branch runs."""

    def __init__(self) -> None:
        super().__init__()
        self.positive = nn.Linear(3, 3)
        self.negative = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.positive if x.sum() > 0 else self.negative
        result: torch.Tensor = branch(x)
        return result


class CreatedInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = nn.Linear(3, 2)  # a new module every call: never registered
        result: torch.Tensor = extra(self.fc(x))
        return result


class PlainList(nn.Module):
    """Layers in a Python list: invisible to model.modules() and model.parameters()."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = [nn.Linear(3, 3), nn.Sequential(nn.Linear(3, 3), nn.Tanh())]
        self.out = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        result: torch.Tensor = self.out(x)
        return result


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.fc2(torch.relu(self.fc1(x)))
        return result


class DirectForward(nn.Module):
    """`block.forward(x)` and `fc.forward(x)`: no hooks fire for `block` or `fc`."""

    def __init__(self) -> None:
        super().__init__()
        self.block = Inner()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.fc.forward(self.block.forward(x))
        return result


class BorrowedChild(nn.Module):
    """A child called both through its parent and directly: shared, not bypassed."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.encoder.fc1(self.encoder(x))
        return result


class TiedFunctional(nn.Module):
    """Output head as `F.linear(h, wte.weight)`: the embedding's weight used functionally."""

    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(10, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.linear(self.wte(tokens), self.wte.weight)


class Checkpointed(nn.Module):
    """Activation checkpointing, reentrant and not."""

    def __init__(self) -> None:
        super().__init__()
        self.first = Inner()
        self.second = Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = checkpoint(self.first, x, use_reentrant=True)
        result: torch.Tensor = checkpoint(self.second, x, use_reentrant=False)
        return result


class CompiledChild(nn.Module):
    """A child wrapped by torch.compile (the trace must look through it, not compile it)."""

    def __init__(self) -> None:
        super().__init__()
        self.block: nn.Module = torch.compile(Inner())  # type: ignore[assignment]
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.fc(self.block(x))
        return result


class InPlace(nn.Module):
    """`x[:, 0] = ...`, `relu_()` and `+=`: each in-place op becomes its tensor's producer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        y[:, 0] = 0.0
        y.relu_()
        y += x
        result: torch.Tensor = y * 2
        return result


class RowsAndViews(nn.Module):
    """`for row in x` (Tensor.__iter__) and an in-place op on a view (`y[0].zero_()`)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        y[0].zero_()
        rows = [row * 2 for row in y]
        return torch.stack(rows)


class MutatesParameter(nn.Module):
    """Changes its own parameter during forward; the trace must put it back."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.scale.mul_(2.0)
        return x * self.scale


def lazy_mlp() -> nn.Sequential:
    return nn.Sequential(nn.LazyLinear(6), nn.ReLU(), nn.LazyLinear(2))


def raising() -> nn.Module:
    raises = capture_models.Raises()
    raises.fail = True
    return nn.Sequential(nn.Linear(3, 3), raises, nn.Linear(3, 1))


def _seeded(build: Callable[[], Case]) -> Callable[[], Case]:
    def seeded() -> Case:
        torch.manual_seed(0)
        return build()

    return seeded


def _x(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


ZOO: dict[str, Callable[[], Case]] = {
    name: _seeded(build)
    for name, build in {
        "resnet18": lambda: Case(ResNet18().eval(), (_x(2, 3, 32, 32),)),
        "resnet18_train": lambda: Case(ResNet18().train(), (_x(2, 3, 32, 32),)),
        "gpt": lambda: Case(GPT().eval(), (torch.randint(0, 32, (2, 8)),)),
        "unet": lambda: Case(UNet(), (_x(1, 1, 16, 16),)),
        "lstm_tagger": lambda: Case(LSTMTagger(), (torch.randint(0, 20, (2, 7)),)),
        "moe": lambda: Case(MoE(), (_x(6, 8),)),
        "transformer_train": lambda: Case(transformer_encoder().train(), (_x(2, 5, 16),)),
        "transformer_eval": lambda: Case(transformer_encoder().eval(), (_x(2, 5, 16),)),
        "small_resnet": lambda: Case(capture_models.small_resnet(), (_x(2, 3, 8, 8),)),
        "reused": lambda: Case(capture_models.Reused(), (_x(2, 4),)),
        "recursive": lambda: Case(capture_models.Recursive(), (_x(2, 3),)),
        "aliased": lambda: Case(Aliased(), (_x(2, 3),)),
        "structured_output": lambda: Case(capture_models.Structured(), (_x(2, 3),)),
        "dataclass_output": lambda: Case(capture_models.DataclassOut(), (_x(2, 3),)),
        "structured_input": lambda: Case(
            StructuredInput(),
            ((_x(2, 4), _x(2, 4)), {"gain": _x(4)}, Batch(_x(2, 4), 0.5)),
        ),
        "kwargs_only": lambda: Case(
            KwargsOnly(), (), {"x": _x(2, 4), "mask": _x(2, 4) > 0, "mode": "max", "model": 3}
        ),
        "branchy": lambda: Case(Branchy(), (_x(2, 3).abs(),)),
        "created_in_forward": lambda: Case(CreatedInForward(), (_x(2, 3),)),
        "plain_list": lambda: Case(PlainList(), (_x(2, 3),)),
        "direct_forward": lambda: Case(DirectForward(), (_x(2, 3),)),
        "borrowed_child": lambda: Case(BorrowedChild(), (_x(2, 3),)),
        "tied_functional": lambda: Case(TiedFunctional(), (torch.randint(0, 10, (2, 5)),)),
        "multihead_attention": lambda: Case(
            nn.MultiheadAttention(8, 2, batch_first=True), (_x(1, 4, 8), _x(1, 4, 8), _x(1, 4, 8))
        ),
        "lazy": lambda: Case(lazy_mlp(), (_x(2, 5),)),
        "compiled": lambda: Case(
            torch.compile(nn.Sequential(nn.Linear(3, 4), nn.ReLU())),  # type: ignore[arg-type]
            (_x(2, 3),),
        ),
        "compiled_child": lambda: Case(CompiledChild(), (_x(2, 3),)),
        "checkpointed": lambda: Case(Checkpointed(), (_x(2, 3),)),
        "in_place": lambda: Case(InPlace(), (_x(2, 3),)),
        "rows_and_views": lambda: Case(RowsAndViews(), (_x(2, 3),)),
        "mutates_parameter": lambda: Case(MutatesParameter(), (_x(2, 3),)),
        "regularized_train": lambda: Case(capture_models.regularized().train(), (_x(4, 6),)),
        "raising": lambda: Case(raising(), (_x(2, 3),)),
    }.items()
}
"""Every trace case by name; each call builds a fresh, seeded model and its inputs."""
