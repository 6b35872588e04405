"""nbviz on a CUDA device: statistics computed there against numpy, one host read per captured
step, AMP's skipped steps, NaN sources, and a trace that leaves the device's RNG alone.

Skipped where no CUDA device is present (CI has none). On a GPU machine:
`pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Callable

import capture_models as zoo
import numpy as np
import pytest
import torch
from test_capture import (
    EVERYTHING,
    HostReads,
    ListSink,
    assert_record,
    numpy_of,
    param_keys,
    train_poisoned,
)
from test_stats import check_grid, check_stats, numpy_counts
from torch import nn

import nbviz
from nbviz import stats
from nbviz.capture import Recorder
from nbviz.records import KINDS
from nbviz.stats import histogram, summarize, tensor_stats

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def sample(dtype: torch.dtype, n: int, generator: torch.Generator) -> torch.Tensor:
    """Values of `dtype` with zeros and, for floats, NaN and both infinities at known places."""
    if dtype == torch.bool:
        return torch.rand(n, generator=generator) < 0.3
    if not dtype.is_floating_point and not dtype.is_complex:
        return torch.randint(-5, 21, (n,), generator=generator).to(dtype)
    if dtype.is_complex:
        return torch.randn(n, generator=generator, dtype=dtype)
    values = 3 + torch.randn(n, generator=generator, dtype=torch.float64)
    values[torch.randperm(n, generator=generator)[: n // 50]] = 0
    if n >= 100:
        values[7], values[11], values[13] = math.nan, math.inf, -math.inf
    return values.to(dtype)


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool],
)
@pytest.mark.parametrize("n", [0, 1, 1_000, 200_000, 3_000_000])
def test_statistics_on_the_device_match_numpy(dtype: torch.dtype, n: int) -> None:
    host = sample(dtype, n, torch.Generator().manual_seed(n))
    values = host.to(torch.float64).numpy()
    device = host.to(CUDA)
    check_stats(tensor_stats(device), values)
    if n == 0:
        return
    exact = histogram(device, exact=True)
    check_grid(exact, values, integral=not dtype.is_floating_point)
    np.testing.assert_array_equal(exact.counts, numpy_counts(values, exact))
    # A sampled histogram reads the same fixed positions on every device.
    on_device, on_host = histogram(device), histogram(host)
    assert (on_device.lo, on_device.width, on_device.sample) == (
        on_host.lo,
        on_host.width,
        on_host.sample,
    )
    np.testing.assert_array_equal(on_device.counts, on_host.counts)


@pytest.mark.parametrize("scale", [1e-20, 1e-12, 1e20])
def test_huge_and_tiny_float32_on_the_device(scale: float) -> None:
    t = (torch.randn(100_000, dtype=torch.float64) * scale).float()
    check_stats(tensor_stats(t.to(CUDA)), t.double().numpy())


def test_complex_on_the_device_is_summarised_by_magnitude() -> None:
    t = torch.randn(200_000, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    on_device = t.to(CUDA)
    # The device's |z| may differ from the host's in the last bit: compare with its own.
    check_stats(tensor_stats(on_device), on_device.abs().double().cpu().numpy())


def test_summarize_on_the_device_matches_numpy_per_tensor() -> None:
    generator = torch.Generator().manual_seed(3)
    hosts = [sample(torch.float32, n, generator) for n in (1, 5, 1_000, 70_000, 300_000)]
    hosts.append(sample(torch.float16, 4_000, generator))
    summaries = summarize([t.to(CUDA) for t in hosts])
    for row, t in zip(summaries.stats, hosts, strict=True):
        check_stats(row, t.double().numpy())


def host(t: torch.Tensor) -> torch.Tensor:
    """A copy on the host, also of a host tensor (`.cpu()` of one is the tensor itself)."""
    return t.detach().to("cpu", copy=True)


def host_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: host(p.grad) for n, p in model.named_parameters() if p.grad is not None}


def step_of(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> Callable[[], None]:
    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        optimizer.zero_grad()

    return step


def test_training_on_the_device_matches_numpy() -> None:
    """Weights, gradients and updates of every parameter, and each layer's activations, of a
    ResNet block (in-place ReLU, `+=`) trained on the device, against numpy on host copies."""
    torch.manual_seed(0)
    model = zoo.small_resnet(channels=16).to(CUDA)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(8, 3, 16, 16, device=CUDA), torch.randint(0, 3, (8,), device=CUDA)
    sink = ListSink()
    grads: list[dict[str, torch.Tensor]] = []
    optimizer.register_step_pre_hook(lambda *_: grads.append(host_grads(model)))
    outputs: dict[str, torch.Tensor] = {}
    for name in ("0", "1.conv1", "1.bn2", "4"):
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, host(out))
        )
    with Recorder(model, sink, optimizer=optimizer, **EVERYTHING):
        for step in range(3):
            before = {n: host(p) for n, p in model.named_parameters()}
            step_of(model, optimizer, x, y)()
            for layer, tensor, param in param_keys(model):
                name = f"{layer}.{tensor}"
                assert_record(sink.get("grad", layer, tensor, step=step), grads[step][name])
                assert_record(sink.get("weight", layer, tensor, step=step), host(param))
                delta = numpy_of(host(param)) - numpy_of(before[name])
                assert_record(sink.get("update", layer, tensor, step=step), delta)
            for name, output in outputs.items():
                assert_record(sink.get("activation", name, step=step), output)
    assert {r.key.kind for r in sink.records} == set(KINDS)
    assert all(r.histogram is not None for r in sink.records)
    assert not sink.anomalies


def synchronisations(run: Callable[[], None]) -> list[str]:
    """The synchronising CUDA calls that `run` makes, as PyTorch's sync debug mode reports:
    where each was made."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [
        f"{w.filename}:{w.lineno}" for w in caught if "called a synchronizing" in str(w.message)
    ]


def test_a_captured_step_synchronises_once() -> None:
    """Everything captured, histograms included: one device-to-host copy more than a plain
    step, by PyTorch's own sync detector and by counting the calls that read values."""
    torch.manual_seed(0)
    model = zoo.small_resnet(channels=32).to(CUDA)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(8, 3, 32, 32, device=CUDA), torch.randint(0, 3, (8,), device=CUDA)
    step = step_of(model, optimizer, x, y)

    def counted() -> tuple[list[str], int]:
        reads = HostReads()

        def run() -> None:
            with reads:
                step()

        return synchronisations(run), reads.count

    step()  # warm-up: cuDNN's and the allocator's first calls
    plain = counted()
    sink = ListSink()
    with Recorder(model, sink, optimizer=optimizer, **EVERYTHING):
        step()  # the first captured step also builds the recorder's buffers
        captured = [counted() for _ in range(3)]
    assert {r.key.kind for r in sink.records} == set(KINDS)
    for syncs, reads in captured:
        assert len(syncs) - len(plain[0]) == 1, (plain, captured)
        assert reads - plain[1] == 1, (plain, captured)


def test_grad_scaler_on_the_device() -> None:
    """Autocast float16 with a real GradScaler: gradients unscaled, a step skipped for Inf
    recorded as skipped with the reason, and no extra synchronisation at the steps it takes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to(CUDA)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    x = torch.randn(8, 16, device=CUDA)
    sink = ListSink()
    at_step: list[dict[str, torch.Tensor]] = []
    optimizer.register_step_pre_hook(lambda *_: at_step.append(host_grads(model)))

    def iteration(poison: bool) -> None:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x).float().square().mean()
        if poison:
            loss = loss * math.inf
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    iteration(poison=False)  # warm-up, unrecorded
    plain = synchronisations(lambda: iteration(poison=False))
    unscaled = []
    syncs = []
    with Recorder(model, sink, optimizer=optimizer, scaler=scaler, **EVERYTHING):
        for i in range(4):
            reference = copy.deepcopy(model)
            with torch.autocast("cuda", dtype=torch.float16):
                reference(x).float().square().mean().backward()
            unscaled.append(host_grads(reference))
            syncs.append(synchronisations(functools.partial(iteration, poison=i == 1)))
    steps = sink.train_steps()
    assert [(s.step, s.skipped) for s in steps] == [(0, False), (1, True), (2, False), (3, False)]
    assert steps[1].reason == (
        "GradScaler skipped the optimizer step: Inf/NaN gradients (scale 65536 -> 32768)"
    )
    for step, grads, expected in ((0, at_step[2], unscaled[0]), (2, at_step[3], unscaled[2])):
        for layer, tensor, _ in param_keys(model):
            name = f"{layer}.{tensor}"
            assert_record(sink.get("grad", layer, tensor, step=step), grads[name])
            torch.testing.assert_close(grads[name], expected[name], rtol=1e-3, atol=1e-5)
    # The scaler reads its Inf check itself at every step; capture adds its one copy, and
    # reads the scale only after a step that may have been skipped.
    assert len(syncs[3]) - len(plain) == 1, (plain, syncs)


def test_first_nan_on_the_device_names_the_layer_that_made_it() -> None:
    sink = train_poisoned(5, armed=3, device=CUDA, **EVERYTHING)
    first = sink.anomalies[0]
    assert (first.step, first.phase, first.key.layer, first.key.kind) == (
        3,
        "forward",
        "1",
        "activation",
    )
    assert (first.nan, first.posinf, first.neginf) == (1, 0, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nan_gradients_on_the_device_are_caught_between_captured_steps(dtype: torch.dtype) -> None:
    """The check between captured steps (fused norms, one read) finds the step and counts."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 4)).to(CUDA, dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    sink = ListSink()
    with Recorder(model, sink, optimizer=optimizer, every=10):
        for step in range(4):
            out = model(torch.randn(2, 3, device=CUDA, dtype=dtype))
            if step == 2:
                out.register_hook(lambda g: g * math.nan)
            out.sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    assert sorted({r.step for r in sink.records if r.key.kind == "grad"})[:2] == [0, 2]
    first = sink.anomalies[0]
    assert (first.step, first.phase, first.key.kind) == (2, "optimizer", "grad")


def test_trace_and_show_leave_the_device_rng_and_buffers_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(4)
    ).to(CUDA)
    x = torch.randn(2, 3, 8, 8, device=CUDA)
    model(x)  # materialise the lazy layer
    rng = torch.cuda.get_rng_state()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    graph = nbviz.trace(model, x)
    assert "2×4" in graph.to_text()
    assert torch.equal(rng, torch.cuda.get_rng_state())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model.training


def test_a_batch_on_two_devices_copies_each_once() -> None:
    """Host and device tensors in one batch: each device's rows come back in one copy."""
    generator = torch.Generator().manual_seed(5)
    hosts = [sample(torch.float32, n, generator) for n in (10, 50_000)]
    batch = stats.StatsBatch()
    for t in hosts:
        batch.add([t, t.to(CUDA)])
    reads = HostReads()
    with reads:
        summaries, _ = batch.finish()
    assert reads.count <= 2  # at most one per device
    for row, t in zip(summaries.stats, [t for t in hosts for _ in range(2)], strict=True):
        check_stats(row, t.double().numpy())
