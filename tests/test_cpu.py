"""The fused host pass (`nbviz._cpu`) against numpy: statistics, histograms of every value or of
a sample, updates that are never materialised, and the grid against the device's."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from nbviz import _cpu, _reduce, stats
from nbviz._protocol import HIST_BINS, STAT_FIELDS

FLOATS = [np.float32, np.float64]


def reference(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """min, max, mean, std, l2, zeros of finite values, in float64 by numpy."""
    v = x.astype(np.float64)
    return np.array([v.min(), v.max(), v.mean(), v.std(), np.sqrt(np.sum(v * v)), np.sum(v == 0)])


def moments(row: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """The moments of a row of `reduce`, or None when it found NaN or ±Inf."""
    return None if np.isnan(row[_cpu.MIN]) else row[_cpu.MOMENTS]


def grid(row: NDArray[np.float64]) -> tuple[float, float]:
    return float(row[_cpu.LO]), float(row[_cpu.WIDTH])


def counts(row: NDArray[np.float64]) -> NDArray[np.float64]:
    return row[_cpu.COUNTS : _cpu.NORM]


def assert_moments(got: NDArray[np.float64] | None, x: NDArray[np.floating]) -> None:
    assert got is not None
    want = reference(x)
    np.testing.assert_array_equal(got[[0, 1, 5]], want[[0, 1, 5]])  # exact
    scale = max(abs(want[2]), want[3], 1e-300)
    assert abs(got[2] - want[2]) <= 1e-12 * scale
    np.testing.assert_allclose(got[3:5], want[3:5], rtol=1e-9, atol=0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 2, 4095, 4096, 4097, 3 * 4096 + 17, 1_000_003])
def test_moments_match_numpy(dtype: type[np.floating], n: int) -> None:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3 + 7).astype(dtype)
    x[rng.integers(0, n, max(1, n // 50))] = 0
    if n > 3:
        x[1] = -0.0  # a zero too
    assert_moments(moments(_cpu.reduce(x)), x)


@pytest.mark.parametrize("scale", [1e-40, 1e-30, 1e-20, 1.0, 1e20, 1e30, 3e38])
def test_float32_at_any_magnitude(scale: float) -> None:
    """float64 accumulators: no overflow of the squares near float32's largest values, no
    underflow for subnormal ones (the old float32 sums failed outside [2^-30, 2^50])."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(-1, 1, 50_000) * scale).astype(np.float32)
    assert_moments(moments(_cpu.reduce(x)), x)


def test_first_value_far_from_the_mean() -> None:
    """The shift is the first value; an outlier there costs at most a factor n of precision."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1_000_000).astype(np.float32) * 1e-3 + 5.0
    x[0] = 1e6
    assert_moments(moments(_cpu.reduce(x)), x)


def test_constant_values() -> None:
    x = np.full(10_000, 0.1, dtype=np.float32)
    got = moments(_cpu.reduce(x))
    assert got is not None
    assert got[0] == got[1] == np.float32(0.1)
    assert got[3] == 0.0


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bad", [math.nan, -math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [0, 4096, -1])
def test_nan_and_inf_leave_the_fast_path(dtype: type[np.floating], bad: float, where: int) -> None:
    x = np.linspace(-1, 1, 9000).astype(dtype)
    x[where] = bad
    assert moments(_cpu.reduce(x)) is None


def histogram_of(values: NDArray[np.floating], lo: float, width: float) -> NDArray[np.int64]:
    bins = np.floor(values.astype(np.float64) / width) - math.floor(lo / width)
    assert bins.min() >= 0  # the grid holds every value
    assert bins.max() < HIST_BINS
    return np.bincount(bins.astype(np.int64), minlength=HIST_BINS)


def grid_of(low: float, high: float, integral: bool = False) -> tuple[float, float]:
    lo, width = _reduce.grid(
        torch.tensor([low], dtype=torch.float64),
        torch.tensor([high], dtype=torch.float64),
        torch.tensor([integral]),
    )
    return float(lo[0]), float(width[0])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 4097, 70_000])
def test_histogram_of_every_value(dtype: type[np.floating], n: int) -> None:
    x = (np.random.default_rng(n).standard_normal(n) * 5).astype(dtype)
    reduced = _cpu.reduce(x, histogram=True)
    assert grid(reduced) == grid_of(float(x.min()), float(x.max()))
    np.testing.assert_array_equal(counts(reduced), histogram_of(x, *grid(reduced)))


@pytest.mark.parametrize("n", [70_000, 1_000_000])
def test_histogram_of_the_values_at_the_positions(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    index = np.sort(rng.integers(0, n, 65_536))  # with repeats, as the fixed sample has
    reduced = _cpu.reduce(x, index, histogram=True)
    # The grid is the exact extremes'; the counts are the sample's.
    assert grid(reduced) == grid_of(float(x.min()), float(x.max()))
    np.testing.assert_array_equal(counts(reduced), histogram_of(x[index], *grid(reduced)))
    assert_moments(moments(reduced), x)


def assert_no_histogram(row: NDArray[np.float64]) -> None:
    assert np.isnan(grid(row)).all()
    assert row[_cpu.SAMPLE] == 0
    assert not counts(row).any()


def test_no_histogram_unless_asked() -> None:
    row = _cpu.reduce(np.ones(10, dtype=np.float32), np.arange(3))
    assert_no_histogram(row)
    assert row[_cpu.NUMEL] == 10


def test_a_row_is_laid_out_as_a_host_row_of_stats() -> None:
    """`stats` takes the kernels' rows as its own: numel, STAT_FIELDS, lo, width, sample, the
    counts; ‖before‖₂ comes after them."""
    assert STAT_FIELDS.index("numel") == _cpu.NUMEL
    assert slice(STAT_FIELDS.index("min"), STAT_FIELDS.index("zeros") + 1) == _cpu.MOMENTS
    assert (_cpu.LO, _cpu.WIDTH, _cpu.SAMPLE) == (stats._LO, stats._WIDTH, stats._SAMPLE)
    assert (_cpu.COUNTS, _cpu.NORM) == (stats._COUNTS, stats._ROW)
    x = np.arange(-3.0, 5.0)
    row = _cpu.reduce(x, histogram=True)
    assert row[_cpu.NUMEL] == row[_cpu.SAMPLE] == counts(row).sum() == len(x)
    assert_moments(moments(row), x)
    nonfinite = [STAT_FIELDS.index(name) for name in ("nan", "posinf", "neginf")]
    assert not row[nonfinite].any()


@pytest.mark.parametrize("integral", [False, True])
def test_the_grid_is_the_device_grid(integral: bool) -> None:
    """The host's scalar grid and the device's vectorized one, on random and extreme spans."""
    rng = np.random.default_rng(7)
    ends = [0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 2.0**-1022, 1e-300, 1e300, 1.7e308, -1.7e308]
    ends += list(rng.standard_normal(60) * 10.0 ** rng.integers(-40, 40, 60))
    if integral:
        ends = [float(round(e)) for e in ends if abs(e) < 2**53]
    pairs = [(min(a, b), max(a, b)) for a in ends for b in ends[::3]]
    for low, high in pairs:
        assert _cpu._grid(low, high, integral) == grid_of(low, high, integral), (low, high)


def test_zeros_are_counted_exactly_past_float32_integers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks count their zeros in float32 lanes; a whole pass must not (2**24 + 1 is not a
    float32), on one thread too."""
    monkeypatch.setattr(_cpu, "_SPLIT", 2**30)
    x = np.zeros(2**24 + 4097, dtype=np.float32)
    x[5] = 1.0
    zeros = _cpu.MIN + 5
    assert _cpu.reduce(x)[zeros] == len(x) - 1
    assert _cpu.reduce_update(x, x)[1, zeros] == len(x)  # an update of nothing


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 4096, 100_001])
def test_weights_and_their_update_in_one_pass(dtype: type[np.floating], n: int) -> None:
    """after itself, after - before in their dtype (what torch.sub gives), never materialised,
    and ‖before‖₂: all from one pass."""
    rng = np.random.default_rng(n)
    before = rng.standard_normal(n).astype(dtype)
    after = (before - rng.standard_normal(n).astype(dtype) * 1e-3).astype(dtype)
    after[::7] = before[::7]  # zero updates, frozen entries
    after[1::11] = 0.0  # zero weights
    index = np.sort(rng.integers(0, n, min(n, 5000)))
    delta = after - before
    for positions in (index, None):  # a sample, or every value
        weights, update = _cpu.reduce_update(
            after, before, positions, histogram=True, delta_histogram=True
        )
        norm = update[_cpu.NORM]
        for reduced, values in ((weights, after), (update, delta)):
            assert_moments(moments(reduced), values)
            counted = values if positions is None else values[positions]
            np.testing.assert_array_equal(counts(reduced), histogram_of(counted, *grid(reduced)))
        np.testing.assert_allclose(
            norm, np.sqrt(np.sum(before.astype(np.float64) ** 2)), rtol=1e-12
        )
    weights, update = _cpu.reduce_update(after, before, index, delta_histogram=True)
    assert_no_histogram(weights)  # only what was asked for
    assert update[_cpu.SAMPLE] == len(index)
    assert counts(update).sum() == len(index)


@pytest.mark.parametrize("where", ["after", "before", "overflow"])
def test_nan_or_inf_in_weights_or_update_leaves_the_fast_path(where: str) -> None:
    """Each of the two leaves the fast path on its own: an Inf weight makes an Inf update, but
    an Inf before, or a finite difference that overflows, spoils the update only."""
    before = np.zeros(5000, dtype=np.float32)
    after = before.copy()
    if where == "after":
        after[4321] = math.inf
    elif where == "before":
        before[4321] = math.inf
    else:
        after[4321], before[4321] = 3e38, -3e38  # the difference overflows float32
    weights, update = _cpu.reduce_update(after, before)
    assert moments(update) is None
    assert (moments(weights) is None) == (where == "after")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("lo", "width"), [(-8.0, 0.25), (992.0, 2.0**-4), (-(2.0**-120), 2.0**-126)]
)
def test_binning_matches_numpy(dtype: type[np.floating], lo: float, width: float) -> None:
    rng = np.random.default_rng(3)
    edges = lo + width * np.arange(HIST_BINS + 1)
    x = rng.uniform(edges[0], edges[-1], 30_001).astype(dtype)
    x = x[(x >= edges[0]) & (x < edges[-1])]  # rounding to the dtype may step outside
    x = np.concatenate([x, edges[:-1].astype(dtype)])  # every bin's lower edge: exact bins
    want = np.floor(x.astype(np.float64) / width) - math.floor(lo / width)
    np.testing.assert_array_equal(
        _cpu._count(x, x[:0], lo, width), np.bincount(want.astype(int), minlength=HIST_BINS)
    )


def test_a_pass_split_between_threads_gives_what_one_thread_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large tensors are reduced on torch's threads, in runs of whole blocks: the same extremes,
    zeros and counts as one thread, sums within rounding, and NaN or Inf found in any run."""
    if torch.get_num_threads() < 2:
        pytest.skip("torch runs on one thread here")
    rng = np.random.default_rng(11)
    n = 3 * _cpu._SPLIT + 4097
    before = rng.standard_normal(n).astype(np.float32)
    after = (before - rng.standard_normal(n).astype(np.float32) * 1e-3).astype(np.float32)
    after[::5] = 0.0
    split = n // 4096 // 2 * 4096  # where two threads part
    index = np.sort(np.concatenate([rng.integers(0, n, 20_000), [0, split - 1, split, n - 1]]))

    def both() -> list[NDArray[np.float64]]:
        one = _cpu.reduce_update(after, before, index, histogram=True, delta_histogram=True)
        monkeypatch.setattr(_cpu, "_SPLIT", n + 1)
        alone = _cpu.reduce_update(after, before, index, histogram=True, delta_histogram=True)
        monkeypatch.undo()
        return [one, alone]

    (weights, update), (weights_1, update_1) = both()
    assert _cpu._layer  # a parallel pass ran
    for split_, single, values in ((weights, weights_1, after), (update, update_1, after - before)):
        assert_moments(moments(split_), values)
        exact = [_cpu.NUMEL, _cpu.MIN, _cpu.MIN + 1, _cpu.MIN + 5]  # numel, min, max, zeros
        np.testing.assert_array_equal(split_[exact], single[exact])
        np.testing.assert_allclose(split_[_cpu.MOMENTS], single[_cpu.MOMENTS], rtol=1e-12)
        assert grid(split_) == grid(single)
        np.testing.assert_array_equal(counts(split_), counts(single))
    assert update[_cpu.NORM] == pytest.approx(update_1[_cpu.NORM], rel=1e-12)
    after[split + 3] = math.nan  # in the second run only
    weights, update = _cpu.reduce_update(after, before)
    assert moments(weights) is None
    assert moments(update) is None


def test_a_parallel_pass_leaves_torch_its_thread_count() -> None:
    """numba sets torch's OpenMP thread count to its own when it starts its threads: it is put
    back. In a fresh process, with numba told of more threads than torch uses, and torch of
    more threads than the tensor has blocks: each thread still gets a run of its own."""
    script = (
        "import numpy as np, torch\n"
        "torch.set_num_threads(20)\n"
        "from nbviz import _cpu\n"
        "x = np.linspace(-1.0, 1.0, 1 << 16, dtype=np.float32)\n"
        "row = _cpu.reduce(x)\n"
        "print(torch.get_num_threads(), row[_cpu.MIN], row[_cpu.MIN + 1], int(row[_cpu.MIN + 5]),"
        " _cpu._layer)\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "24"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    threads, low, high, zeros, layer = done.stdout.split(maxsplit=4)
    assert threads == "20"
    assert (float(low), float(high), int(zeros)) == (-1.0, 1.0, 0)  # no run was left empty
    assert layer.strip() != "[]"  # numba's threads started
