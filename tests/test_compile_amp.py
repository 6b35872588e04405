"""torch.compile'd models and bf16 autocast on the CPU: recorded, traced and shown.

The compiled model uses the ``aot_eager`` backend: Dynamo and AOTAutograd trace the model (and
break its graph at nbviz's hooks, which run eagerly) exactly as with the default backend, without
Inductor's C++ build (about 30 s here).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nbviz

EVERY: dict[str, Any] = {
    "every": 1,
    "histograms_every": 1,
    "activations_every": 1,
    "updates_every": 1,
}


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def _compiled(model: nn.Module) -> nn.Module:
    compiled = torch.compile(model, backend="aot_eager")
    assert isinstance(compiled, nn.Module)  # an OptimizedModule
    return compiled


def _first_layer(model: nn.Sequential) -> nn.Linear:
    layer = model[0]
    assert isinstance(layer, nn.Linear)
    return layer


def _expect(series: nbviz.run.StatSeries, step: int, t: torch.Tensor) -> None:
    a = t.detach().double().numpy()
    expected = {"min": a.min(), "max": a.max(), "mean": a.mean(), "std": a.std(), "numel": a.size}
    for name, value in expected.items():
        assert series.values[name][step] == pytest.approx(value, rel=1e-6, abs=1e-12), name


def test_a_compiled_model_records_under_its_own_names() -> None:
    model, eager = _model(), _model()
    compiled = _compiled(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    eager_opt = torch.optim.SGD(eager.parameters(), lr=0.1)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    seen = []
    with nbviz.watch(compiled, **EVERY) as recorder:
        for _ in range(3):
            compiled(x).square().mean().backward()
            opt.step()
            opt.zero_grad()
            # The same step, uncompiled: the reference.
            hidden = _first_layer(eager)(x)
            eager[2](eager[1](hidden)).square().mean().backward()
            eager_opt.step()
            eager_opt.zero_grad()
            seen.append((hidden.detach(), _first_layer(eager).weight.detach().clone()))
        run = recorder.run
        assert recorder.watched_params[0] == "0.weight"
    assert run.steps.tolist() == [0, 1, 2]
    assert {k.layer for k in run.series(mode=None)} == {"", "0", "1", "2"}  # no _orig_mod.
    assert not any("_orig_mod" in layer.name for layer in run.layers)
    for step, (hidden, weight) in enumerate(seen):
        _expect(run.stats("0", "activation"), step, hidden)
        _expect(run.stats("0", "weight", "weight"), step, weight)


def test_a_compiled_model_traces_and_shows_under_its_own_names() -> None:
    compiled = _compiled(_model())
    x = torch.randn(2, 4)
    assert "_orig_mod" not in nbviz.trace(compiled, x).to_text()
    viz = nbviz.show(compiled, x, record=False)
    try:
        assert viz.layers == ["", "0", "1", "2"]
        assert set(viz.state.outputs) >= {"0", "1", "2"}
    finally:
        viz.close()


def test_autocast_bf16_records_the_dtype_of_each_tensor() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    with nbviz.watch(model, **EVERY) as recorder:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hidden = _first_layer(model)(x)
            out = model[2](model[1](hidden))
        out.float().square().mean().backward()
        grad = _first_layer(model).weight.grad
        assert grad is not None
        grad = grad.clone()
        opt.step()
        run = recorder.run
    assert hidden.dtype == torch.bfloat16
    activation = run.stats("0", "activation")
    assert activation.dtype == "bfloat16"  # what autocast produced
    _expect(activation, 0, hidden)  # bf16 -> float64 is exact
    assert run.stats("0", "activation_grad").dtype == "bfloat16"
    grads = run.stats("0", "grad", "weight")
    assert grads.dtype == "float32"  # parameters and their gradients stay float32
    _expect(grads, 0, grad)
    assert run.stats("0", "weight", "weight").dtype == "float32"
    frame = run.to_pandas()
    dtypes = dict(zip(frame["kind"] + ":" + frame["layer"], frame["dtype"], strict=True))
    assert dtypes["activation:2"] == "bfloat16"
    assert np.all(frame[frame["kind"] == "weight"]["dtype"] == "float32")


def test_autocast_dtypes_are_shown_in_the_trace() -> None:
    model = _model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        text = nbviz.trace(model, torch.randn(2, 4)).to_text()
    assert "#0 input input (Tensor) 2×4 float32" in text
    assert "module 0 (Linear) 2×8 bfloat16" in text


def test_dynamo_leaves_the_hooks_to_run_eagerly(caplog: pytest.LogCaptureFixture) -> None:
    """Traced into the graph, the hooks made Dynamo recompile nbviz's code on every new id()
    (and fail on numba's first compile): they must run as they are, at a graph break."""
    torch._dynamo.reset()
    compiled = _compiled(_model())
    with nbviz.watch(compiled, **EVERY) as recorder:
        for _ in range(4):
            compiled(torch.randn(3, 4)).sum().backward()
            recorder.step()
    traced = {
        record.getMessage()
        for record in caplog.records
        if "nbviz" in record.getMessage() and record.levelno >= logging.WARNING
    }
    assert not traced
    assert recorder.run.steps.tolist() == [0, 1, 2, 3]
