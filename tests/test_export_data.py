"""Data out of a run: histograms as arrays, a tidy DataFrame, TensorBoard event files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_run import Truth, write_synthetic_run

import nbviz
from nbviz.export.tensorboard import tag, tensorboard_buckets
from nbviz.records import RECORD_FIELDS, SeriesKey
from nbviz.run import Run

FIELD = {name: i for i, name in enumerate(RECORD_FIELDS)}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    path = tmp_path_factory.mktemp("data") / "synthetic.nbviz"
    _, truth = write_synthetic_run(path)
    return path, truth


def test_histograms_are_arrays_with_numpy_edges(synthetic: tuple[Path, Truth]) -> None:
    path, truth = synthetic
    key = SeriesKey("fc1", "activation", "")
    with nbviz.open(path) as run:
        hists = run.histograms("fc1", "activation")
    expected = truth.hists[key]
    np.testing.assert_array_equal(hists.steps, sorted(expected))
    assert hists.counts.shape == (len(expected), 64)
    for i, step in enumerate(sorted(expected)):
        h = expected[step]
        np.testing.assert_array_equal(hists.counts[i], h.counts)
        # edges as numpy.histogram's: histogramming the data again with them gives the counts
        np.testing.assert_allclose(hists.edges[i], h.lo + h.width * np.arange(65))


def test_to_pandas_has_one_row_per_series_and_step(synthetic: tuple[Path, Truth]) -> None:
    path, truth = synthetic
    with nbviz.open(path) as run:
        df = run.to_pandas()
    assert list(df.columns[:7]) == ["step", "layer", "kind", "tensor", "call", "mode", "dtype"]
    assert len(df) == sum(len(by_step) for by_step in truth.stats.values())
    relu = df[(df.layer == "relu") & (df.kind == "activation")].set_index("step")
    expected = truth.stats[SeriesKey("relu", "activation", "")]
    np.testing.assert_array_equal(relu.index, sorted(expected))
    np.testing.assert_allclose(relu["l2"], [expected[s][FIELD["l2"]] for s in sorted(expected)],
                               rtol=1e-6)  # fmt: skip
    assert (relu["dead"] == 0.5).all()


def _accumulator(logdir: Path) -> object:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    return accumulator


def test_to_tensorboard_round_trips(synthetic: tuple[Path, Truth], tmp_path: Path) -> None:
    path, truth = synthetic
    logdir = tmp_path / "tb"
    with nbviz.open(path) as run:
        assert run.to_tensorboard(logdir) == logdir
        check_scalars_and_histograms(run, truth, _accumulator(logdir))


def check_scalars_and_histograms(run: Run, truth: Truth, acc: object) -> None:
    tags = acc.Tags()  # type: ignore[attr-defined]
    assert "grad/fc2.weight/l2" in tags["scalars"]
    assert "activation/relu/dead" in tags["scalars"]
    assert "grad/fc2.weight/dead" not in tags["scalars"]  # NaN: does not apply to gradients
    for key, by_step in truth.stats.items():
        for field in ("mean", "l2", "max"):
            events = acc.Scalars(f"{tag(key)}/{field}")  # type: ignore[attr-defined]
            assert [e.step for e in events] == sorted(by_step)
            np.testing.assert_allclose([e.wall_time for e in events],
                                       [truth.wall_times[s] for s in sorted(by_step)])  # fmt: skip
            np.testing.assert_allclose(
                [e.value for e in events], [by_step[s][FIELD[field]] for s in sorted(by_step)],
                rtol=1e-6,
            )  # fmt: skip
    for key, hists in truth.hists.items():
        events = acc.Histograms(tag(key))  # type: ignore[attr-defined]
        assert [e.step for e in events] == sorted(hists)
        assert [e.wall_time for e in events] == pytest.approx(
            [truth.wall_times[s] for s in sorted(hists)]
        )
        for event in events:
            h = hists[event.step]
            value = event.histogram_value
            occupied = np.flatnonzero(h.counts)
            first, last = occupied[0], occupied[-1]
            # TensorBoard bucket i holds (limit[i-1], limit[i]]: an empty one up to the first
            # occupied bin's left edge, then one per bin.
            np.testing.assert_array_equal(value.bucket, [0, *h.counts[first : last + 1]])
            np.testing.assert_allclose(
                value.bucket_limit, h.lo + h.width * np.arange(first, last + 2)
            )
            assert value.num == h.counts.sum()
            assert value.min == h.lo + first * h.width
            assert value.max == h.lo + (last + 1) * h.width


def test_tensorboard_tags_and_empty_histograms() -> None:
    assert tag(SeriesKey("head.fc1", "grad", "weight")) == "grad/head.fc1.weight"
    assert tag(SeriesKey("head.relu", "activation", "")) == "activation/head.relu"
    assert tag(SeriesKey("enc", "activation", "[0]", 1, "eval")) == "eval/activation/enc[0] #1"
    assert tensorboard_buckets(np.zeros(64), 0.0, 1.0) is None
    assert tensorboard_buckets(np.ones(64), float("nan"), float("nan")) is None
