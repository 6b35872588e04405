"""nbviz.capture against references computed here, independently, with numpy on copies."""

from __future__ import annotations

import copy
import gc
import io
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import capture_models as zoo
import numpy as np
import pytest
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn
from torch.optim import optimizer as optimizer_module
from torch.overrides import TorchFunctionMode

from nbviz import _reduce, stats
from nbviz._outputs import dead_fraction
from nbviz.capture import Recorder
from nbviz.records import KINDS, RECORD_FIELDS, Anomaly, SeriesKey, StatRecord, StepRecord

pytestmark = pytest.mark.filterwarnings("error")  # a failure inside a hook must not hide

F = {name: i for i, name in enumerate(RECORD_FIELDS)}
EVERYTHING: dict[str, Any] = {
    "every": 1,
    "histograms_every": 1,
    "activations_every": 1,
    "updates_every": 1,
}


class ListSink:
    """Keeps everything in memory, in the order it came."""

    def __init__(self) -> None:
        self.records: list[StatRecord] = []
        self.steps: list[StepRecord] = []
        self.anomalies: list[Anomaly] = []

    def add(self, records: list[StatRecord]) -> None:
        self.records.extend(records)

    def end_step(self, step: StepRecord) -> None:
        self.steps.append(step)

    def add_anomaly(self, anomaly: Anomaly) -> None:
        self.anomalies.append(anomaly)

    def get(
        self,
        kind: str,
        layer: str,
        tensor: str = "",
        *,
        step: int,
        call: int = 0,
        mode: str = "train",
    ) -> StatRecord:
        key = SeriesKey(layer, kind, tensor, call, mode)
        found = [r for r in self.records if r.key == key and r.step == step]
        assert len(found) == 1, f"{len(found)} records of {key} at step {step}"
        return found[0]

    def keys(self, kind: str | None = None, step: int | None = None) -> set[SeriesKey]:
        return {
            r.key
            for r in self.records
            if (kind is None or r.key.kind == kind) and (step is None or r.step == step)
        }

    def train_steps(self) -> list[StepRecord]:
        return [s for s in self.steps if s.mode == "train"]


def reference(values: ArrayLike) -> NDArray[np.float64]:
    """STAT_FIELDS by numpy in float64, over the finite values."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = a[np.isfinite(a)]
    some = finite.size > 0
    result: NDArray[np.float64] = np.array(
        [
            a.size,
            finite.min() if some else math.nan,
            finite.max() if some else math.nan,
            finite.mean() if some else math.nan,
            finite.std() if some else math.nan,
            np.linalg.norm(finite) if some else math.nan,
            np.sum(a == 0),
            np.isnan(a).sum(),
            np.sum(a == np.inf),
            np.sum(a == -np.inf),
        ]
    )
    return result


def numpy_of(t: torch.Tensor) -> NDArray[np.float64]:
    values: NDArray[np.float64] = t.detach().to(torch.float64).numpy().copy()
    return values


def assert_record(record: StatRecord, expected: torch.Tensor | NDArray[np.float64]) -> None:
    """The record's statistics, and its histogram when it has one, against numpy."""
    values = numpy_of(expected) if isinstance(expected, torch.Tensor) else expected
    ref = reference(values)
    np.testing.assert_allclose(record.stats[: len(ref)], ref, rtol=1e-5, atol=1e-6)
    if record.histogram is not None:
        h = record.histogram
        flat = values.reshape(-1)
        if h.sample < flat.size:  # counted from the fixed sample: the same positions here
            flat = flat[
                _reduce.sample_indices(flat.size, int(h.sample), torch.device("cpu")).numpy()
            ]
        finite = flat[np.isfinite(flat)]
        bins = (np.floor(finite / h.width) - np.floor(h.lo / h.width)).astype(np.int64)
        np.testing.assert_array_equal(h.counts, np.bincount(bins, minlength=len(h.counts)))
        assert h.sample == flat.size


def param_keys(model: nn.Module) -> Iterator[tuple[str, str, nn.Parameter]]:
    for name, param in model.named_parameters():
        layer, _, tensor = name.rpartition(".")
        yield layer, tensor, param


def hook_count(model: nn.Module, *optimizers: torch.optim.Optimizer) -> int:
    count = 0
    for module in model.modules():
        count += len(module._forward_hooks) + len(module._forward_pre_hooks)
    for param in model.parameters():
        count += len(getattr(param, "_post_accumulate_grad_hooks", None) or {})
    for optimizer in optimizers:
        count += len(optimizer._optimizer_step_pre_hooks)
        count += len(optimizer._optimizer_step_post_hooks)
    count += len(optimizer_module._global_optimizer_pre_hooks)
    count += len(optimizer_module._global_optimizer_post_hooks)
    return count


def mlp() -> nn.Sequential:
    """Linear, ReLU (some units dead), Linear, Tanh (some saturated), Linear, Sigmoid."""
    torch.manual_seed(0)
    first, second, third = nn.Linear(4, 8), nn.Linear(8, 6), nn.Linear(6, 3)
    with torch.no_grad():
        first.bias[:3] = -100.0  # three units that never fire
        second.weight *= 6.0  # push the tanh into its tails
        third.weight *= 8.0
    return nn.Sequential(first, nn.ReLU(), second, nn.Tanh(), third, nn.Sigmoid())


def linear(model: nn.Module, name: str) -> nn.Linear:
    layer = model.get_submodule(name)
    assert isinstance(layer, nn.Linear)
    return layer


# Parameters: weights after the step, gradients at the step, updates.


@pytest.mark.parametrize("masked", [False, True], ids=["host pass", "masked passes"])
def test_weights_grads_and_updates_with_gradient_accumulation(masked: bool) -> None:
    """Updates every step: the snapshot's buffers are reused from step to step. The masked
    passes (the accelerators' path, run here on the CPU) materialise Δw; the host pass does not."""
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    recorder._capture.batch = stats.StatsBatch(masked=masked)
    generator = torch.Generator().manual_seed(1)
    for step in range(3):
        optimizer.zero_grad()
        first: dict[str, torch.Tensor] = {}
        for micro in range(2):
            x = torch.randn(5, 4, generator=generator)
            model(x).square().mean().backward()
            if micro == 0:
                first = {
                    n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
                }
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer.step()
        for layer, tensor, param in param_keys(model):
            name = f"{layer}.{tensor}"
            assert_record(sink.get("grad", layer, tensor, step=step), grads[name])
            assert not torch.allclose(first[name], grads[name])  # accumulated, not per micro-batch
            assert_record(sink.get("weight", layer, tensor, step=step), param)
            delta = numpy_of(param) - numpy_of(before[name])
            update = sink.get("update", layer, tensor, step=step)
            assert_record(update, delta)
            ratio = np.linalg.norm(delta) / np.linalg.norm(numpy_of(before[name]))
            assert update.stats[F["ratio"]] == pytest.approx(ratio, rel=1e-5)
    recorder.close()
    assert [s.step for s in sink.train_steps()] == [0, 1, 2]
    assert all(s.wall_time > 0 and not s.skipped for s in sink.train_steps())
    assert recorder.step_count == 3
    assert not sink.anomalies


def test_each_step_is_finished_and_copied_to_the_host_once() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    finished: list[int] = []
    original = stats.StatsBatch.finish

    def counting(batch: stats.StatsBatch) -> Any:
        finished.append(len(batch))
        return original(batch)

    sink = ListSink()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stats.StatsBatch, "finish", counting)
        with Recorder(model, sink, optimizer=optimizer, **EVERYTHING):
            for _ in range(2):
                model(torch.randn(2, 4)).sum().backward()
                optimizer.step()
                optimizer.zero_grad()
    # Everything of a step (weights, gradients, updates, activations and their gradients) in one.
    per_step = Counter(record.step for record in sink.records)
    assert finished == [per_step[0], per_step[1]]
    assert per_step[0] > 3 * len(list(model.parameters()))


HOST_READS = frozenset(
    {
        torch.Tensor.cpu,
        torch.Tensor.item,
        torch.Tensor.tolist,
        torch.Tensor.__bool__,
        torch.Tensor.__int__,
        torch.Tensor.__float__,
    }
)


class HostReads(TorchFunctionMode):
    """Counts the calls that read a tensor's values on the host: on an accelerator each one
    waits for the device (a synchronisation)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(
        self, func: Any, types: Any, args: Any = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        self.count += func in HOST_READS
        return func(*args, **(kwargs or {}))


def test_a_captured_step_reads_the_device_once() -> None:
    """With the accelerators' exact (masked) reductions forced on the CPU, a step that captures
    everything, histograms included, reads device values on the host once, as a plain step."""
    torch.manual_seed(0)
    model = zoo.small_resnet(channels=32)  # large tensors too: 8x32x32x32 activations
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))

    def step() -> int:
        reads = HostReads()
        with reads:
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            optimizer.zero_grad()
        return reads.count

    plain = step()
    sink = ListSink()
    with Recorder(model, sink, optimizer=optimizer, **EVERYTHING) as recorder:
        recorder._capture.batch = stats.StatsBatch(masked=True)
        captured = step()
    assert {r.key.kind for r in sink.records} == set(KINDS)
    assert all(r.histogram is not None for r in sink.records)
    assert captured - plain == 1


# Activations and their gradients.


def manual_forward(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's output, computed here with the model's parameters."""
    outputs = []
    h = x
    for layer in model:
        h = layer(h)
        outputs.append(h)
    return outputs


def test_activations_and_diagnostics_match_a_forward_done_here() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    x = torch.randn(16, 4)
    with torch.no_grad():
        expected = [numpy_of(h) for h in manual_forward(model, x)]
    model(x).mean().backward()
    optimizer.step()
    recorder.close()
    for i, values in enumerate(expected):
        record = sink.get("activation", str(i), step=0)
        assert_record(record, values)
        assert record.dtype == "float32"
    assert_record(sink.get("activation", "", step=0), expected[-1])  # the root
    relu, tanh, sigmoid = expected[1], expected[3], expected[5]
    dead = sink.get("activation", "1", step=0).stats[F["dead"]]
    assert dead == pytest.approx((relu.max(axis=0) <= 0).mean())
    assert dead >= 3 / 8
    saturated = sink.get("activation", "3", step=0).stats[F["saturated"]]
    assert saturated == pytest.approx((np.abs(tanh) > 0.99).mean())
    assert 0 < saturated < 1
    saturated = sink.get("activation", "5", step=0).stats[F["saturated"]]
    assert saturated == pytest.approx(((sigmoid < 0.01) | (sigmoid > 0.99)).mean())
    linear = sink.get("activation", "0", step=0).stats
    assert np.isnan(linear[[F["dead"], F["saturated"], F["ratio"]]]).all()


def test_activation_grads_match_autograd() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    x, target = torch.randn(16, 4), torch.rand(16, 3)
    outputs = manual_forward(model, x)
    loss = (outputs[-1] - target).square().mean()
    expected = [numpy_of(g) for g in torch.autograd.grad(loss, outputs)]
    (model(x) - target).square().mean().backward()
    optimizer.step()
    recorder.close()
    for i, grad in enumerate(expected):
        assert_record(sink.get("activation_grad", str(i), step=0), grad)
    assert_record(sink.get("activation_grad", "", step=0), expected[-1])


def test_resnet_block_with_in_place_ops() -> None:
    torch.manual_seed(0)
    model = zoo.small_resnet()
    reference_model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    x = torch.randn(2, 3, 6, 6)
    # The block again, out of place, on a copy: outputs and their gradients.
    stem, block = reference_model[0], reference_model[1]
    assert isinstance(block, zoo.BasicBlock)
    identity = stem(x)
    h1 = block.bn1(block.conv1(identity))
    r1 = torch.relu(h1)
    h2 = block.bn2(block.conv2(r1))
    out = torch.relu(h2 + identity)
    logits = reference_model[4](reference_model[3](reference_model[2](out)))
    loss = logits.square().mean()
    grads = torch.autograd.grad(loss, [h1, r1, h2, out])
    model(x).square().mean().backward()
    optimizer.step()
    recorder.close()
    # Each hook saw its tensor before the in-place ops that came after it.
    assert_record(sink.get("activation", "1.bn1", step=0), h1)
    assert_record(sink.get("activation", "1.relu", step=0, call=0), r1)
    assert_record(sink.get("activation", "1.bn2", step=0), h2)
    assert_record(sink.get("activation", "1.relu", step=0, call=1), out)
    assert_record(sink.get("activation_grad", "1.relu", step=0, call=0), grads[1])
    assert_record(sink.get("activation_grad", "1.relu", step=0, call=1), grads[3])
    # bn1's output is ReLU'd in place, bn2's gets `+= identity`: both still get gradients.
    assert_record(sink.get("activation_grad", "1.bn1", step=0), grads[0])
    assert_record(sink.get("activation_grad", "1.bn2", step=0), grads[2])
    assert not sink.anomalies
    assert not recorder.warnings


# Awkward models.


def test_tied_weights_are_recorded_once() -> None:
    torch.manual_seed(0)
    model = zoo.TinyGPT()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    assert recorder.watched_params.count("embed.weight") == 1
    assert "head.weight" not in recorder.watched_params
    tokens = torch.randint(0, 11, (2, 5))
    model(tokens).logsumexp(-1).mean().backward()
    grad = model.embed.weight.grad
    assert grad is not None
    expected = grad.clone()  # the embedding's and the head's contributions together
    optimizer.step()
    recorder.close()
    assert_record(sink.get("grad", "embed", "weight", step=0), expected)
    assert not [k for k in sink.keys("grad") if k.layer == "head"]
    assert sink.get("activation", "head", step=0).stats[0] == 2 * 5 * 11
    assert sink.get("activation_grad", "embed", step=0).stats[0] == 2 * 5 * 8


def test_reused_module_records_each_call() -> None:
    torch.manual_seed(0)
    model = zoo.Reused()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    x = torch.randn(3, 4)
    with torch.no_grad():
        first = model.shared(x)
        second = model.shared(torch.tanh(first))
    model(x).sum().backward()
    optimizer.step()
    model(x).sum().backward()
    optimizer.step()
    recorder.close()
    assert_record(sink.get("activation", "shared", step=0, call=0), first)
    assert_record(sink.get("activation", "shared", step=0, call=1), second)
    assert {k.call for k in sink.keys("activation", step=1) if k.layer == "shared"} == {0, 1}
    assert {k.call for k in sink.keys("activation_grad", step=0) if k.layer == "shared"} == {0, 1}


def test_recursive_module_numbers_calls_from_the_outside_in() -> None:
    torch.manual_seed(0)
    model = zoo.Recursive()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    x = torch.randn(2, 3)
    with torch.no_grad():
        z0 = model.linear(x)
        z1 = model.linear(torch.tanh(z0))
        z2 = model.linear(torch.tanh(z1))
    model(x).sum().backward()
    optimizer.step()
    recorder.close()
    for call, z in enumerate([z0, z1, z2]):
        assert_record(sink.get("activation", "linear", step=0, call=call), z)
        # Every call of the root returns the innermost result.
        assert_record(sink.get("activation", "", step=0, call=call), torch.tanh(z2))


def test_structured_outputs_are_recorded_by_path() -> None:
    torch.manual_seed(0)
    model = zoo.Structured()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, modules=["as_*"], **EVERYTHING)
    x = torch.randn(4, 3)
    with torch.no_grad():
        y_dict = model.as_dict.linear(x)
        y_dataclass = model.as_dataclass.linear(x)
        y_tuple = model.as_namedtuple.linear(x)
    model(x).sum().backward()
    optimizer.step()
    recorder.close()
    assert_record(sink.get("activation", "as_dict", "['logits']", step=0), y_dict)
    assert_record(sink.get("activation", "as_dict", "['hidden']", step=0), y_dict.relu())
    assert_record(sink.get("activation", "as_dataclass", ".logits", step=0), y_dataclass)
    assert_record(sink.get("activation", "as_dataclass", ".hidden", step=0), 2 * y_dataclass)
    assert_record(sink.get("activation", "as_namedtuple", ".first", step=0), y_tuple)
    assert_record(sink.get("activation", "as_namedtuple", ".second[0]", step=0), y_tuple)
    assert_record(sink.get("activation", "as_namedtuple", ".second[1]", step=0), y_tuple.sum())
    # Only outputs the loss depends on get gradients.
    grads = {k.tensor for k in sink.keys("activation_grad") if k.layer == "as_dict"}
    assert grads == {"['logits']"}
    assert recorder.warnings == [
        "as_dataclass (DataclassOut) returns str at output.note: not captured"
    ]


def test_frozen_parameters_have_weights_but_no_grads_or_updates() -> None:
    torch.manual_seed(0)
    model = zoo.frozen_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    recorder.close()
    assert {k.layer for k in sink.keys("weight")} == {"0", "2"}
    assert {k.layer for k in sink.keys("grad")} == {"2"}
    assert {k.layer for k in sink.keys("update")} == {"2"}
    assert_record(sink.get("weight", "0", "weight", step=0), linear(model, "0").weight)


# Steps: GradScaler, eval forwards, manual stepping, the global optimizer hook.


def test_grad_scaler_skipped_step_is_recorded_and_steps_continue() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    assert scaler.is_enabled()
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, scaler=scaler, **EVERYTHING)
    at_step: list[dict[str, torch.Tensor]] = []
    optimizer.register_step_pre_hook(
        lambda *_: at_step.append(
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        )
    )
    x = torch.randn(8, 4)
    unscaled = []
    for iteration in range(3):
        optimizer.zero_grad()
        reference = copy.deepcopy(model)
        reference(x).mean().backward()
        unscaled.append({n: p.grad for n, p in reference.named_parameters()})
        loss = model(x).mean()
        if iteration == 1:
            loss = loss * math.inf  # Inf/NaN gradients: the scaler skips the step
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    recorder.close()
    steps = sink.train_steps()
    assert [(s.step, s.skipped) for s in steps] == [(0, False), (1, True), (2, False)]
    assert steps[1].reason == (
        "GradScaler skipped the optimizer step: Inf/NaN gradients (scale 65536 -> 32768)"
    )
    assert len(at_step) == 2  # the optimizer did not step at iteration 1
    for step, grads, expected in ((0, at_step[0], unscaled[0]), (2, at_step[1], unscaled[2])):
        for layer, tensor, _ in param_keys(model):
            name = f"{layer}.{tensor}"
            assert_record(sink.get("grad", layer, tensor, step=step), grads[name])
            torch.testing.assert_close(grads[name], expected[name])  # unscaled
    assert not sink.keys("grad", step=1)
    assert recorder.step_count == 3
    # The activation gradients are unscaled too.
    record = sink.get("activation_grad", "", step=0)
    assert record.stats[F["max"]] == pytest.approx(1 / 8)
    assert {a.phase for a in sink.anomalies} == {"backward"}
    assert {a.step for a in sink.anomalies} == {1}


def test_skipped_last_step_is_recorded_on_close() -> None:
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, scaler=scaler)
    scaler.scale(model(torch.ones(1, 2)).sum() * math.nan).backward()
    scaler.step(optimizer)
    scaler.update()
    recorder.close()
    assert [(s.step, s.skipped) for s in sink.steps] == [(0, True)]
    assert recorder.step_count == 1


def test_eval_forwards_are_kept_apart_and_do_not_advance_steps() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    x = torch.randn(4, 4)
    model(x).sum().backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        layer = linear(model, "0")
        expected = numpy_of(nn.functional.linear(x, layer.weight, layer.bias))
        model(x)
        model(x)  # only the first eval forward of a step is recorded
    model.train()
    assert recorder.step_count == 1
    eval_records = [r for r in sink.records if r.key.mode == "eval"]
    assert {r.key.kind for r in eval_records} == {"activation"}
    assert {r.step for r in eval_records} == {1}
    assert {r.key.call for r in eval_records} == {0}
    assert len(eval_records) == len(recorder.watched_modules)
    assert_record(sink.get("activation", "0", step=1, mode="eval"), expected)
    assert next(s for s in sink.steps if s.mode == "eval").step == 1
    # Training mode but no gradients: an eval forward as well, at the next step.
    model(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        model(x)
    recorder.close()
    assert {r.step for r in sink.records if r.key.mode == "eval"} == {1, 2}
    assert [s.step for s in sink.train_steps()] == [0, 1]
    assert model.training


def test_fine_tuning_in_eval_mode_records_training_steps() -> None:
    """model.eval() freezes dropout and BatchNorm, but a forward whose backward fills the
    parameters' gradients and an optimizer step is training; validation under no_grad stays
    eval."""
    model = mlp().eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    first = linear(model, "0")
    generator = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(5, 4, generator=generator)
        expected = numpy_of(nn.functional.linear(x, first.weight, first.bias))
        out = model(x)
        out.retain_grad()
        out.square().sum().backward()
        grad = first.weight.grad
        assert grad is not None
        assert out.grad is not None
        expected_grad, expected_out_grad = numpy_of(grad), numpy_of(out.grad)
        optimizer.step()
        optimizer.zero_grad()
        assert_record(sink.get("activation", "0", step=step), expected)
        assert_record(sink.get("activation_grad", "", step=step), expected_out_grad)
        assert_record(sink.get("grad", "0", "weight", step=step), expected_grad)
        with torch.no_grad():
            held_out = torch.randn(3, 4, generator=generator)
            expected_eval = numpy_of(nn.functional.linear(held_out, first.weight, first.bias))
            model(held_out)
        assert_record(sink.get("activation", "0", step=step + 1, mode="eval"), expected_eval)
    recorder.close()
    assert [s.step for s in sink.train_steps()] == [0, 1, 2]
    assert [s.step for s in sink.steps if s.mode == "eval"] == [1, 2, 3]
    assert {r.key.kind for r in sink.records if r.key.mode == "eval"} == {"activation"}
    assert not model.training


def test_eval_mode_training_steps_take_histograms_at_the_training_period() -> None:
    model = mlp().eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    options = {**EVERYTHING, "histograms_every": 2}
    with Recorder(model, sink, optimizer=optimizer, **options):
        for _ in range(2):
            model(torch.randn(5, 4)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    forward = [r for r in sink.records if r.key.kind in ("activation", "activation_grad")]
    assert {r.key.mode for r in forward} == {"train"}
    assert {r.step for r in forward} == {0, 1}
    assert all((r.histogram is not None) == (r.step == 0) for r in forward)


def test_an_eval_mode_forward_with_gradients_but_no_backward_is_eval() -> None:
    """A saliency map through torch.autograd.grad (no parameter gradient, no step) is
    evaluation: the first such forward of a step is the step's eval pass, with no gradients."""
    model = mlp().eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    first = linear(model, "0")
    x = torch.randn(5, 4, requires_grad=True)
    expected = numpy_of(nn.functional.linear(x, first.weight, first.bias))
    (saliency,) = torch.autograd.grad(model(x).sum(), x)
    assert saliency.shape == x.shape
    model(torch.randn(2, 4))  # a second one in the same step: not recorded
    assert all(p.grad is None for p in model.parameters())
    recorder.close()
    assert {(r.step, r.key.mode, r.key.call, r.key.kind) for r in sink.records} == {
        (0, "eval", 0, "activation")
    }
    assert len(sink.records) == len(recorder.watched_modules)
    assert_record(sink.get("activation", "0", step=0, mode="eval"), expected)
    assert [(s.step, s.mode) for s in sink.steps] == [(0, "eval")]


def test_a_backward_into_the_parameters_makes_an_eval_mode_forward_training() -> None:
    """A saliency map through .backward() fills the parameters' gradients as training does, so
    it is recorded as the step's training forward, gradients of activations included."""
    model = mlp().eval()
    sink = ListSink()
    recorder = Recorder(model, sink, **EVERYTHING)
    x = torch.randn(5, 4)
    out = model(x)
    out.retain_grad()
    out.sum().backward()
    assert out.grad is not None
    recorder.step()
    recorder.close()
    assert {r.key.mode for r in sink.records} == {"train"}
    assert_record(sink.get("activation_grad", "", step=0), numpy_of(out.grad))
    assert [(s.step, s.mode) for s in sink.steps] == [(0, "train")]


def test_manual_steps_without_an_optimizer() -> None:
    model = mlp()
    sink = ListSink()
    recorder = Recorder(model, sink, **EVERYTHING)
    for step in range(3):
        model.zero_grad()
        model(torch.randn(6, 4)).square().mean().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.sub_(0.1 * p.grad)
        recorder.step()
        for layer, tensor, param in param_keys(model):
            name = f"{layer}.{tensor}"
            assert_record(sink.get("grad", layer, tensor, step=step), grads[name])
            assert_record(sink.get("weight", layer, tensor, step=step), param)
            if step > 0:  # the change since the previous step()
                assert_record(sink.get("update", layer, tensor, step=step), param - before[name])
    recorder.close()
    assert not sink.keys("update", step=0)
    assert [s.step for s in sink.steps] == [0, 1, 2]


def test_global_optimizer_hook_counts_only_this_models_optimizer() -> None:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    other = nn.Linear(2, 2)
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, **EVERYTHING)
    model(torch.randn(2, 4)).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    other(torch.randn(1, 2)).sum().backward()
    other_optimizer.step()
    assert recorder.step_count == 1
    assert_record(sink.get("grad", "0", "weight", step=0), grads["0.weight"])
    with pytest.raises(RuntimeError, match=r"optimizer\.step\(\)"):
        recorder.step()
    recorder.close()


def test_step_with_an_optimizer_is_refused() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with (
        Recorder(model, ListSink(), optimizer=optimizer) as recorder,
        pytest.raises(RuntimeError, match="without a torch optimizer"),
    ):
        recorder.step()


# Frequencies.


def test_frequencies() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    sink = ListSink()
    options: dict[str, Any] = {
        "every": 2,
        "histograms_every": 4,
        "activations_every": 3,
        "updates_every": 2,
    }
    recorder = Recorder(model, sink, optimizer=optimizer, **options)
    for _ in range(7):
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    recorder.close()
    steps_of = {
        kind: sorted({r.step for r in sink.records if r.key.kind == kind}) for kind in KINDS
    }
    assert steps_of == {
        "weight": [0, 2, 4, 6],
        "grad": [0, 2, 4, 6],
        "activation": [0, 3, 6],
        "activation_grad": [0, 3, 6],
        "update": [0, 2, 4, 6],
    }
    for record in sink.records:
        assert (record.histogram is not None) == (record.step % 4 == 0), record


def test_only_the_first_micro_batch_gives_activations() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    x = torch.randn(3, 4)
    with torch.no_grad():
        expected = model[0](x)
    for micro in range(3):
        model(x if micro == 0 else torch.randn(3, 4)).sum().backward()
    optimizer.step()
    recorder.close()
    assert {k.call for k in sink.keys("activation")} == {0}
    assert_record(sink.get("activation", "0", step=0), expected)


def test_selection_by_glob_and_class() -> None:
    torch.manual_seed(0)
    model = zoo.small_resnet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(
        model, sink, optimizer=optimizer, modules=["1.conv*", nn.Linear], **EVERYTHING
    )
    assert recorder.watched_modules == ("1.conv1", "1.conv2", "4")
    assert recorder.watched_params == ("1.conv1.weight", "1.conv2.weight", "4.weight", "4.bias")
    model(torch.randn(2, 3, 5, 5)).sum().backward()
    optimizer.step()
    recorder.close()
    assert {r.key.layer for r in sink.records} == {"1.conv1", "1.conv2", "4"}


def test_kinds_restrict_what_is_recorded() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    with Recorder(model, sink, optimizer=optimizer, kinds=["activation", "update"], **EVERYTHING):
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
    assert {r.key.kind for r in sink.records} == {"activation", "update"}


# Non-finite values.


def train_poisoned(
    steps: int, armed: int, device: torch.device | None = None, **options: Any
) -> ListSink:
    """`poisoned_mlp` trained for `steps` steps, recorded with `options`; its Poison layer ("1")
    puts a NaN in its output at step `armed`."""
    torch.manual_seed(0)
    model = zoo.poisoned_mlp().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    sink = ListSink()
    poison = model[1]
    assert isinstance(poison, zoo.Poison)
    with Recorder(model, sink, optimizer=optimizer, **options):
        for step in range(steps):
            poison.armed = step == armed
            model(torch.randn(4, 4, device=device)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    return sink


def test_first_nan_names_the_layer_that_made_it() -> None:
    sink = train_poisoned(5, armed=3, **EVERYTHING)
    first = sink.anomalies[0]
    assert (first.step, first.phase, first.key.layer, first.key.kind) == (
        3,
        "forward",
        "1",
        "activation",
    )
    assert (first.nan, first.posinf, first.neginf) == (1, 0, 0)
    assert "1 NaN in the output of 1 (Poison)" in first.detail
    assert all(a.step >= 3 for a in sink.anomalies)
    assert len({a.key for a in sink.anomalies}) == len(sink.anomalies)  # once per series
    assert {a.phase for a in sink.anomalies} == {"forward", "backward", "optimizer"}


def test_first_nan_between_captured_steps_names_the_layer_that_made_it() -> None:
    """With the default periods (activations every 100 steps), a forward NaN at step 7 is still
    reported at its source, with exact counts, and not as the gradient it poisons."""
    sink = train_poisoned(10, armed=7)
    first = sink.anomalies[0]
    assert (first.step, first.phase, first.key.layer, first.key.kind, first.key.call) == (
        7,
        "forward",
        "1",
        "activation",
        0,
    )
    assert (first.nan, first.posinf, first.neginf) == (1, 0, 0)
    recorded = [r for r in sink.records if r.key.kind == "activation" and r.step == 7]
    assert [r.key.layer for r in recorded] == ["1"]  # only the culprit, not what followed it


def test_nan_gradients_are_caught_between_captured_steps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, every=10)
    for step in range(3):
        out = model(torch.randn(2, 3))
        if step == 1:
            out.register_hook(lambda g: g * math.nan)
        out.sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    recorder.close()
    assert sorted({r.step for r in sink.records if r.key.kind == "grad"})[:2] == [0, 1]
    first = sink.anomalies[0]
    assert (first.step, first.phase, first.key.kind) == (1, "optimizer", "grad")
    assert first.nan == 6


# Diagnostics.


@pytest.mark.parametrize(
    ("shape", "channel_axes"),
    [
        ((5, 7), (0,)),
        ((2, 3, 7), (0, 1)),
        ((2, 7, 3, 3), (0, 2, 3)),
        ((2, 7, 2, 3, 3), (0, 2, 3, 4)),
    ],
)
def test_dead_fraction_per_channel(shape: tuple[int, ...], channel_axes: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(shape, generator=generator).relu()
    channel = next(d for d in range(len(shape)) if d not in channel_axes)
    dead = torch.zeros(shape[channel], dtype=torch.bool)
    dead[::3] = True
    index: list[Any] = [slice(None)] * len(shape)
    index[channel] = dead
    y[tuple(index)] = 0.0
    y[(0,) * len(shape)] = math.nan  # NaN is not alive
    expected = (np.nan_to_num(numpy_of(y), nan=-1.0).max(axis=channel_axes) <= 0).mean()
    assert expected >= 1 / 3
    # Contiguous float32 on the host: the host kernel; bfloat16 (exact for 0 and NaN), a
    # non-contiguous copy: torch's reductions.
    strided = torch.empty(y.shape[::-1]).permute(*reversed(range(len(shape)))).copy_(y)
    for variant in (y, y.double(), y.bfloat16(), strided):
        value = dead_fraction(variant)
        assert value is not None
        assert float(value) == pytest.approx(expected)


def test_dead_fraction_edge_cases() -> None:
    assert float(dead_fraction(torch.tensor([0.0, 1.0, 0.0, 2.0])) or -1) == 0.5
    assert dead_fraction(torch.tensor(1.0)) is None
    assert dead_fraction(torch.zeros(0, 3)) is None
    assert dead_fraction(torch.ones(2, 2, dtype=torch.int64)) is None


def test_dead_relu_in_a_conv_net() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 6, 1)
    assert conv.bias is not None
    with torch.no_grad():
        conv.bias[:2] = -50.0
    model = nn.Sequential(conv, nn.ReLU())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    sink = ListSink()
    x = torch.randn(3, 2, 4, 4)
    with Recorder(model, sink, optimizer=optimizer, **EVERYTHING):
        y = model(x)
        expected = (numpy_of(y).max(axis=(0, 2, 3)) <= 0).mean()
        y.sum().backward()
        optimizer.step()
    assert sink.get("activation", "1", step=0).stats[F["dead"]] == pytest.approx(expected)
    assert expected >= 2 / 6


# Hooks, state and garbage collection.


def test_hooks_are_removed_by_close() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    baseline = hook_count(model, optimizer)
    recorder = Recorder(model, ListSink(), optimizer=optimizer)
    assert hook_count(model, optimizer) > baseline
    recorder.close()
    recorder.close()  # idempotent
    assert recorder.closed
    assert hook_count(model, optimizer) == baseline
    with pytest.raises(RuntimeError, match="closed"):
        recorder.step()


def test_global_hooks_are_removed_by_close() -> None:
    model = mlp()
    baseline = hook_count(model)
    with Recorder(model, ListSink()):
        assert hook_count(model) > baseline
    assert hook_count(model) == baseline


def test_hooks_are_removed_when_the_block_raises() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    baseline = hook_count(model, optimizer)
    with (
        pytest.raises(ValueError, match="inside"),
        Recorder(model, ListSink(), optimizer=optimizer) as recorder,
    ):
        raise ValueError("inside")
    assert recorder.closed
    assert hook_count(model, optimizer) == baseline


def test_hooks_are_removed_when_the_recorder_is_collected() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    baseline = hook_count(model, optimizer)
    recorder = Recorder(model, ListSink(), optimizer=optimizer, **EVERYTHING)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    del recorder
    gc.collect()
    assert hook_count(model, optimizer) == baseline


def test_a_forward_that_raises_leaves_no_state_behind() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), zoo.Raises(), nn.Linear(3, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    recorder = Recorder(model, sink, optimizer=optimizer, **EVERYTHING)
    raising = model[1]
    assert isinstance(raising, zoo.Raises)
    raising.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        model(torch.randn(2, 3))
    assert not recorder._capture._stack
    raising.fail = False
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    recorder.close()
    # The failed forward was step 0's: what it captured is kept, its calls counted, and the next
    # forward's continue from them.
    assert {k.call for k in sink.keys("activation") if k.layer == "2"} == {0}
    assert {k.call for k in sink.keys("activation") if k.layer == "0"} == {0, 1}
    assert {r.step for r in sink.records} == {0}


def train_and_snapshot(record: bool) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], Any]:
    torch.manual_seed(0)
    model = zoo.regularized()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    recorder = Recorder(model, ListSink(), optimizer=optimizer, **EVERYTHING) if record else None
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(4):
        x, y = torch.randn(8, 6, generator=generator), torch.randn(8, 2, generator=generator)
        loss = (model(x) - y).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        model.eval()
        with torch.no_grad():
            model(x)
        model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    assert all(flags)
    if recorder is not None:
        recorder.close()
    return losses, state, torch.get_rng_state()


def test_capture_changes_nothing() -> None:
    plain_losses, plain_state, plain_rng = train_and_snapshot(record=False)
    losses, state, rng = train_and_snapshot(record=True)
    for a, b in zip(plain_losses, losses, strict=True):
        assert torch.equal(a, b)
    assert plain_state.keys() == state.keys()
    for name, value in plain_state.items():
        assert torch.equal(value, state[name]), name
    assert torch.equal(plain_rng, rng)


# Bad input.


def test_bad_input_is_refused_with_clear_errors() -> None:
    model = mlp()
    sink = ListSink()
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module, not str"):
        Recorder("model", sink)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lacks add, end_step, add_anomaly"):
        Recorder(model, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown kinds \['weights'\]: choose from weight, grad"):
        Recorder(model, sink, kinds=["weights"])
    with pytest.raises(ValueError, match=r"no module matches '0\.wieght'; close names: 0"):
        Recorder(model, sink, modules=["0.wieght"])
    with pytest.raises(ValueError, match="no module is a Conv2d; the model has: "):
        Recorder(model, sink, modules=[nn.Conv2d])
    with pytest.raises(TypeError, match="name globs"):
        Recorder(model, sink, modules=[3])  # type: ignore[list-item]
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="holds none of the model's parameters"):
        Recorder(model, sink, optimizer=other)
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        Recorder(model, sink, optimizer=model)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="every must be at least 1, not 0"):
        Recorder(model, sink, every=0)
    with pytest.raises(ValueError, match="updates_every must be at least 1, not -1"):
        Recorder(model, sink, updates_every=-1)
    with pytest.raises(TypeError, match="histograms_every must be an int, not float"):
        Recorder(model, sink, histograms_every=2.0)  # type: ignore[arg-type]
    assert hook_count(model) == 0  # nothing was installed by the failed constructions


def test_repr() -> None:
    model = mlp()
    with Recorder(model, ListSink()) as recorder:
        assert repr(recorder) == "<Recorder step 0: 7 modules, 6 parameters>"
    assert repr(recorder).startswith("<Recorder closed")


# The batched statistics capture uses.


def test_summarize_batch_agrees_with_summarize() -> None:
    generator = torch.Generator().manual_seed(0)
    with_nan = torch.randn(300_000, generator=generator)
    with_nan[[5, 70]] = torch.tensor([math.nan, -math.inf])
    tensors: list[torch.Tensor | None] = [
        torch.randn(3_000_000, generator=generator) * 3 + 100,  # several chunks, large mean
        with_nan,
        torch.randn(50_000, generator=generator).relu().double(),
        torch.randint(0, 7, (9_000,), generator=generator),
        torch.randn(100, generator=generator),
        torch.tensor([1.0, math.inf, math.nan]),  # tiny, several of them: by segment
        torch.ones(6, dtype=torch.bool),
        torch.randn(64, 40, generator=generator).t(),  # not contiguous
        None,
        torch.zeros(0),
        torch.tensor(2.5),
    ]
    expected = stats.summarize(tensors)
    got, values = stats.summarize_batch(tensors, extras=[torch.tensor(3.0), torch.tensor(7)])
    np.testing.assert_allclose(got.stats, expected.stats, rtol=1e-6, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(got.counts, expected.counts)
    np.testing.assert_array_equal(got.lo, expected.lo)
    np.testing.assert_array_equal(got.width, expected.width)
    np.testing.assert_array_equal(got.sample, expected.sample)
    np.testing.assert_array_equal(values, [3.0, 7.0])
    bare, none = stats.summarize_batch(tensors, histograms=False)
    np.testing.assert_allclose(bare.stats, expected.stats, rtol=1e-6, atol=1e-9, equal_nan=True)
    assert not bare.counts.any()
    assert not bare.sample.any()
    assert np.isnan(bare.lo).all()
    assert np.isnan(bare.width).all()
    assert none.shape == (0,)


def test_summarize_batch_of_one_tiny_tensor_with_nan() -> None:
    x = torch.tensor([1.0, math.nan, 3.0, -math.inf])
    got, _ = stats.summarize_batch([x])
    np.testing.assert_allclose(got.stats[0], reference(x.numpy()), equal_nan=True)
    assert got.counts.sum() == 2


def test_a_watched_model_can_be_copied_and_saved() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    with Recorder(model, sink, optimizer=optimizer, **EVERYTHING):
        twin = copy.deepcopy(model)  # e.g. an EMA copy: its hooks' copies record nothing
        buffer = io.BytesIO()
        torch.save(model, buffer)
        twin(torch.randn(2, 4)).sum().backward()
        assert not sink.records
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
    assert sink.records
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    loaded(torch.randn(2, 4))


def test_a_second_backward_through_the_graph_records_nothing_more() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = ListSink()
    with Recorder(model, sink, optimizer=optimizer, kinds=["activation_grad"], **EVERYTHING):
        loss = model(torch.randn(3, 4)).sum()
        loss.backward(retain_graph=True)
        loss.backward()
        optimizer.step()
    keys = [r.key for r in sink.records]
    assert len(keys) == len(set(keys)) == 7  # six layers and the root, once each


def test_bfloat16_and_lazy_parameters() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.LazyLinear(3), nn.Linear(3, 2).to(torch.bfloat16))
    sink = ListSink()
    recorder = Recorder(model, sink, **EVERYTHING)  # lazy: the optimizer comes after the forward
    x = torch.randn(4, 5)
    lazy, half = linear(model, "0"), linear(model, "1")
    out = half(lazy(x).to(torch.bfloat16))  # materializes the lazy weight
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    out.float().sum().backward()
    before = half.weight.detach().clone()
    optimizer.step()
    recorder.close()
    record = sink.get("update", "1", "weight", step=0)
    assert record.dtype == "bfloat16"
    delta = numpy_of(half.weight) - numpy_of(before)
    assert_record(record, delta)
    ratio = np.linalg.norm(delta) / np.linalg.norm(numpy_of(before))
    assert record.stats[F["ratio"]] == pytest.approx(ratio, rel=1e-3)
    assert_record(sink.get("weight", "0", "weight", step=0), lazy.weight)


def test_inference_only_records_one_eval_forward() -> None:
    model = mlp().eval()
    sink = ListSink()
    with Recorder(model, sink) as recorder, torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 4))
    assert recorder.step_count == 0
    assert {(r.step, r.key.mode, r.key.call) for r in sink.records} == {(0, "eval", 0)}
    assert len(sink.records) == len(recorder.watched_modules)
    assert all(r.histogram is not None for r in sink.records)
    assert [(s.step, s.mode) for s in sink.steps] == [(0, "eval")]
