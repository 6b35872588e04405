"""The probe forward: shapes per module, and the model left exactly as it was."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from nbviz.demo import demo_model
from nbviz.probe import ProbeError, output_shapes


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_shapes_of_every_module() -> None:
    shapes = output_shapes(demo_model(), torch.randn(4, 1, 16, 16))
    assert shapes["features.conv1"] == ["4×8×16×16"]
    assert shapes["features.pool"] == ["4×16×8×8"]
    assert shapes["head.flatten"] == ["4×1024"]
    assert shapes[""] == ["4×10"]


def test_module_called_twice_has_two_entries() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            twice: torch.Tensor = self.proj(self.proj(x)[:, :2].repeat(1, 2))
            return twice

    assert output_shapes(Twice(), torch.randn(3, 4))["proj"] == ["3×4", "3×4"]


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    note: str


class Structured(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor, *, mode: str) -> dict[str, object]:
        y = self.fc(x)
        return {"out": Output(y, mode), "pair": (y.sum(), [y[:1]])}


def test_structured_outputs_and_a_kwarg_named_mode() -> None:
    shapes = output_shapes(Structured(), torch.randn(5, 2), forward_kwargs={"mode": "eval"})
    assert shapes[""] == ["5×3, scalar, 1×3"]


def test_tuple_is_positional_arguments() -> None:
    class Add(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a + b

    assert output_shapes(Add(), (torch.ones(2), torch.ones(2))) == {"": ["2"]}


def test_model_is_left_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a mixed state must survive too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model[1].train()
    flags = [m.training for m in model.modules()]
    example = torch.randn(8, 4)
    rng = torch.get_rng_state()
    output_shapes(model, example)
    assert [m.training for m in model.modules()] == flags
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert hooks_left(model) == 0


def test_failure_names_the_module_and_leaves_no_hook() -> None:
    model = demo_model()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ProbeError, match=r"in \(root\) > features > features.conv1: RuntimeError"):
        output_shapes(model, torch.randn(2, 3, 16, 16))  # 3 channels, conv1 expects 1
    assert hooks_left(model) == 0
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
