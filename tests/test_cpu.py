"""The fused host pass (`nbviz._cpu`) against numpy: statistics, the sample it copies, updates
that are never materialised, and binning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from nbviz import _cpu
from nbviz._protocol import HIST_BINS

FLOATS = [np.float32, np.float64]


def reference(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """min, max, mean, std, l2, zeros of finite values, in float64 by numpy."""
    v = x.astype(np.float64)
    return np.array([v.min(), v.max(), v.mean(), v.std(), np.sqrt(np.sum(v * v)), np.sum(v == 0)])


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
    assert_moments(_cpu.reduce(x).moments, x)


@pytest.mark.parametrize("scale", [1e-40, 1e-30, 1e-20, 1.0, 1e20, 1e30, 3e38])
def test_float32_at_any_magnitude(scale: float) -> None:
    """float64 accumulators: no overflow of the squares near float32's largest values, no
    underflow for subnormal ones (the old float32 sums failed outside [2^-30, 2^50])."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(-1, 1, 50_000) * scale).astype(np.float32)
    assert_moments(_cpu.reduce(x).moments, x)


def test_first_value_far_from_the_mean() -> None:
    """The shift is the first value; an outlier there costs at most a factor n of precision."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1_000_000).astype(np.float32) * 1e-3 + 5.0
    x[0] = 1e6
    assert_moments(_cpu.reduce(x).moments, x)


def test_constant_values() -> None:
    x = np.full(10_000, 0.1, dtype=np.float32)
    got = _cpu.reduce(x).moments
    assert got is not None
    assert got[0] == got[1] == np.float32(0.1)
    assert got[3] == 0.0


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bad", [math.nan, -math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [0, 4096, -1])
def test_nan_and_inf_leave_the_fast_path(dtype: type[np.floating], bad: float, where: int) -> None:
    x = np.linspace(-1, 1, 9000).astype(dtype)
    x[where] = bad
    assert _cpu.reduce(x).moments is None


@pytest.mark.parametrize("n", [70_000, 1_000_000])
def test_the_sample_is_the_values_at_the_positions(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    index = np.sort(rng.integers(0, n, 65_536))  # with repeats, as the fixed sample has
    reduced = _cpu.reduce(x, index)
    assert reduced.sample is not None
    np.testing.assert_array_equal(reduced.sample, x[index])
    assert_moments(reduced.moments, x)


def test_whole_copies_every_value_and_keeps_no_view() -> None:
    x = np.arange(9000, dtype=np.float32)
    reduced = _cpu.reduce(x, whole=True)
    x[:] = 0
    assert reduced.sample is not None
    np.testing.assert_array_equal(reduced.sample, np.arange(9000, dtype=np.float32))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 4096, 100_001])
def test_an_update_is_reduced_without_materialising_it(dtype: type[np.floating], n: int) -> None:
    """after - before in their dtype (what torch.sub gives), and ‖before‖₂ from the same pass."""
    rng = np.random.default_rng(n)
    before = rng.standard_normal(n).astype(dtype)
    after = (before - rng.standard_normal(n).astype(dtype) * 1e-3).astype(dtype)
    after[::7] = before[::7]  # zero updates, frozen entries
    index = np.sort(rng.integers(0, n, min(n, 5000)))
    reduced = _cpu.reduce(after, index, before=before)
    delta = after - before
    assert_moments(reduced.moments, delta)
    assert reduced.sample is not None
    np.testing.assert_array_equal(reduced.sample, delta[index])
    np.testing.assert_allclose(
        reduced.before_l2, np.sqrt(np.sum(before.astype(np.float64) ** 2)), rtol=1e-12
    )


def test_an_update_with_nan_leaves_the_fast_path() -> None:
    before = np.zeros(5000, dtype=np.float32)
    after = before.copy()
    after[4321] = math.inf
    assert _cpu.reduce(after, before=before).moments is None


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
        _cpu.bin_values(x, lo, width), np.bincount(want.astype(int), minlength=HIST_BINS)
    )
