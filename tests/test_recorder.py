"""`nbviz.watch` and `nbviz.open` end to end: a real training loop into a real SQLite file."""

from __future__ import annotations

import pathlib
import sqlite3

import numpy as np
import pytest
import torch
from torch import nn

import nbviz
from nbviz.demo import demo_batch, demo_model


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> list[np.ndarray]:
    """Trains on the demo task; returns fc2's weight gradient as each step saw it."""
    generator = torch.Generator().manual_seed(0)
    fc2 = model.get_submodule("head.fc2")
    assert isinstance(fc2, nn.Linear)
    grads = []
    for _ in range(steps):
        images, labels = demo_batch(8, generator)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        assert fc2.weight.grad is not None
        grads.append(fc2.weight.grad.numpy().astype(np.float64))
        optimizer.step()
    return grads


def test_watch_records_to_a_file_that_open_reads(tmp_path: pathlib.Path) -> None:
    model = demo_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    path = tmp_path / "exp.nbviz"
    with nbviz.watch(model, path, optimizer=optimizer, every=1, histograms_every=2) as recorder:
        grads = train(model, optimizer, 6)
        assert recorder.run.last_step == 5  # readable while recording
    assert not any(m._forward_hooks for m in model.modules()), "hooks removed on exit"

    with nbviz.open(path) as run:
        np.testing.assert_array_equal(run.steps, np.arange(6))
        assert [layer.name for layer in run.layers][:3] == ["", "features", "features.conv1"]
        series = run.stats("head.fc2", "grad", "weight")
        np.testing.assert_array_equal(series.step_lo, np.arange(6))
        expected = [np.linalg.norm(g) for g in grads]
        np.testing.assert_allclose(series.values["l2"], expected, rtol=1e-5)
        np.testing.assert_allclose(series.values["mean"], [g.mean() for g in grads], atol=1e-7)
        hists = run.histograms("head.fc2", "grad", "weight")
        np.testing.assert_array_equal(hists.steps, [0, 2, 4])
        frame = run.to_pandas()
        assert {"step", "layer", "kind", "tensor", "l2"} <= set(frame.columns)


def test_in_memory_run_has_the_same_api() -> None:
    model = demo_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    recorder = nbviz.watch(model, optimizer=optimizer, every=1)
    train(model, optimizer, 3)
    assert recorder.path is None
    np.testing.assert_array_equal(recorder.run.steps, np.arange(3))
    recorder.close()
    assert recorder.closed


def test_watch_rejects_bad_input(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module, not str"):
        nbviz.watch("model")  # type: ignore[arg-type]
    text = tmp_path / "notes.nbviz"
    text.write_text("my notes")
    with pytest.raises(ValueError, match="not an nbviz run"):
        nbviz.watch(demo_model(), text)
    assert text.read_text() == "my notes", "nothing overwritten"
    with pytest.raises(FileNotFoundError, match=r"missing\.nbviz"):
        nbviz.open(tmp_path / "missing.nbviz")


def test_show_records_training_until_closed() -> None:
    model = demo_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    viz = nbviz.show(model, every=1)
    assert viz.recorder is not None
    train(model, optimizer, 2)
    np.testing.assert_array_equal(viz.recorder.run.steps, [0, 1])
    viz.close()
    assert not any(m._forward_hooks for m in model.modules())
    assert nbviz.show(model, record=False).recorder is None


@pytest.mark.parametrize(("sample", "expected"), [(None, 300 * 1000), (65_536, 65_536)])
def test_histograms_are_exact_on_request(sample: int | None, expected: int) -> None:
    layer = nn.Linear(1000, 300)
    model = nn.Sequential(layer)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with nbviz.watch(
        model, optimizer=optimizer, every=1, histograms_every=1, histogram_sample=sample
    ) as recorder:
        nn.functional.mse_loss(model(torch.randn(4, 1000)), torch.zeros(4, 300)).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        hists = recorder.run.histograms("0", "weight", "weight")
    assert hists.sample.tolist() == [expected]
    if sample is None:
        weights = layer.weight.detach().numpy()
        edges = hists.lo[0] + hists.width[0] * np.arange(65)
        np.testing.assert_array_equal(hists.counts[0], np.histogram(weights, edges)[0])


def test_histogram_sample_must_be_positive() -> None:
    with pytest.raises(ValueError, match="histogram_sample must be at least 1"):
        nbviz.watch(demo_model(), histogram_sample=0)


def test_retention_merges_histograms_of_a_long_run_exactly(tmp_path: pathlib.Path) -> None:
    """Past its budget a series' histograms are merged, not dropped: each row's counts are numpy's
    histogram, on that row's grid, of every gradient it covers; the first and latest stay exact."""
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    model = nn.Sequential(layer)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    steps, budget, keep = 300, 12, 2
    retention = nbviz.Retention(stats_per_series=20, hists_per_series=budget, keep_first=keep)
    grads = []
    path = tmp_path / "long.nbviz"
    with nbviz.watch(
        model, path, optimizer=optimizer, every=1, histograms_every=1, retention=retention
    ):
        for step in range(steps):
            x = torch.randn(4, 16) * (1 + step / 50)  # widening gradients: grids change
            loss = model(x).square().mean()
            optimizer.zero_grad()
            loss.backward()
            assert layer.weight.grad is not None
            grads.append(layer.weight.grad.numpy().astype(np.float64).ravel())
            optimizer.step()
    with nbviz.open(path) as run:
        h = run.histograms("0", "grad", "weight")
    conn = sqlite3.connect(path)
    (most,) = conn.execute("SELECT max(n) FROM (SELECT count(*) n FROM hists GROUP BY series)")
    conn.close()
    assert most[0] <= budget + 1  # thinned back to the budget once 10% (here 1 row) over
    assert h.count.sum() == steps
    assert all(np.isfinite(g).all() for g in grads)
    assert h.counts.sum() == steps * grads[0].size  # 128 elements: exact histograms
    own = set(h.steps[h.count == 1].tolist())
    assert {0, keep - 1, steps - 1} <= own
    assert (h.count > 1).sum() > 0
    for k in range(len(h)):
        first, last = int(h.steps[k]), int(h.step_hi[k])
        covered = [s for s in range(first, last + 1) if s not in own or s == first]
        assert len(covered) == h.count[k]
        data = np.concatenate([grads[s] for s in covered])
        expected, _ = np.histogram(data, bins=h.edges[k])
        np.testing.assert_array_equal(h.counts[k], expected)
        assert np.log2(h.width[k]).is_integer()
