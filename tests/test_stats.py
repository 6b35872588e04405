"""nbviz.stats against numpy float64 references."""

from __future__ import annotations

import gc
import math
import weakref
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import ArrayLike, NDArray

from nbviz import _reduce, stats
from nbviz._protocol import HIST_BINS, STAT_FIELDS
from nbviz.stats import Histogram, histogram, summarize, tensor_stats

F = {name: i for i, name in enumerate(STAT_FIELDS)}
LARGE = 200_000  # above MAX_SAMPLE: the chunked fast path and a sampled histogram
SMALL = 1_000  # the batched, exact path


def reference(values: ArrayLike) -> dict[str, float]:
    """STAT_FIELDS by numpy in float64, over the finite values."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = a[np.isfinite(a)]
    some = finite.size > 0
    return {
        "numel": a.size,
        "min": finite.min() if some else math.nan,
        "max": finite.max() if some else math.nan,
        "mean": finite.mean() if some else math.nan,
        # numpy leaves a few ulps of std on some constant arrays; all-equal values have none.
        "std": (0.0 if finite.min() == finite.max() else finite.std()) if some else math.nan,
        "l2": float(np.linalg.norm(finite)) if some else math.nan,
        "zeros": int(np.sum(a == 0)),
        "nan": int(np.isnan(a).sum()),
        "posinf": int(np.sum(a == np.inf)),
        "neginf": int(np.sum(a == -np.inf)),
    }


def check_stats(got: NDArray[np.float64], values: ArrayLike, rtol: float = 1e-6) -> None:
    want = reference(values)
    assert got.shape == (len(STAT_FIELDS),)
    for name in ("numel", "min", "max", "zeros", "nan", "posinf", "neginf"):
        np.testing.assert_equal(got[F[name]], want[name], err_msg=name)
    # The mean's error is relative to the data's scale: a mean near zero has no relative digits.
    scale = max(abs(want["mean"]), want["std"])
    np.testing.assert_allclose(got[F["mean"]], want["mean"], rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(got[F["std"]], want["std"], rtol=rtol, atol=0)
    np.testing.assert_allclose(got[F["l2"]], want["l2"], rtol=rtol, atol=0)


def edges(h: Histogram) -> NDArray[np.float64]:
    return h.lo + h.width * np.arange(HIST_BINS + 1, dtype=np.float64)


def numpy_counts(values: ArrayLike, h: Histogram) -> NDArray[np.float64]:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    counts, _ = np.histogram(a[np.isfinite(a)], bins=edges(h))
    return np.asarray(counts, dtype=np.float64)


def check_grid(h: Histogram, values: ArrayLike, integral: bool = False) -> None:
    """Power-of-two width, lo a multiple of it, every finite value inside, and no smaller width."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    assert h.width > 0
    assert math.isfinite(h.width)
    assert math.frexp(h.width)[0] == 0.5
    assert h.lo / h.width == math.floor(h.lo / h.width)
    assert np.all(a >= h.lo)
    assert np.all(a < h.lo + HIST_BINS * h.width)
    low, high = a.min(), a.max()
    if integral:
        assert h.width >= 1
    half = h.width / 2
    if high > low and not (integral and h.width == 1):
        # The next smaller power of two would not hold the values in HIST_BINS aligned bins.
        assert math.floor(high / half) - math.floor(low / half) + 1 > HIST_BINS


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.mark.parametrize("n", [SMALL, LARGE, 1_000_000])
def test_normal(rng: np.random.Generator, n: int) -> None:
    a = rng.standard_normal(n).astype(np.float32)
    check_stats(tensor_stats(torch.from_numpy(a)), a)


@pytest.mark.parametrize("n", [SMALL, 1_000_000, 3_000_000])
def test_large_mean_does_not_cancel(rng: np.random.Generator, n: int) -> None:
    a = (1000 + rng.standard_normal(n)).astype(np.float32)
    check_stats(tensor_stats(torch.from_numpy(a)), a)


def test_float64_and_tiny_spread(rng: np.random.Generator) -> None:
    a = 1e6 + 1e-3 * rng.standard_normal(LARGE)
    check_stats(tensor_stats(torch.from_numpy(a)), a)


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_nan_and_inf_are_counted_not_propagated(rng: np.random.Generator, n: int) -> None:
    a = rng.standard_normal(n).astype(np.float32)
    a[rng.choice(n, 17, replace=False)] = 0
    a[rng.choice(n, 13, replace=False)] = np.nan
    a[rng.choice(n, 5, replace=False)] = np.inf
    a[rng.choice(n, 3, replace=False)] = -np.inf
    got = tensor_stats(torch.from_numpy(a))
    check_stats(got, a)
    assert got[F["nan"]] + got[F["posinf"]] + got[F["neginf"]] == np.sum(~np.isfinite(a))
    h = histogram(torch.from_numpy(a), exact=True)
    check_grid(h, a)
    np.testing.assert_array_equal(h.counts, numpy_counts(a, h))
    assert h.sample == n


@pytest.mark.parametrize("n", [1, SMALL, LARGE])
def test_all_nan(n: int) -> None:
    t = torch.full((n,), math.nan)
    t[0] = math.inf
    got = tensor_stats(t)
    assert got[F["numel"]] == n
    assert got[F["nan"]] == n - 1
    assert got[F["posinf"]] == 1
    assert got[F["zeros"]] == 0
    assert got[F["neginf"]] == 0
    assert np.isnan(got[[F[k] for k in ("min", "max", "mean", "std", "l2")]]).all()
    h = histogram(t)
    assert (h.lo, h.width, h.sample) == (0.0, 1.0, 0)
    assert not h.counts.any()


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 5, 2)])
def test_empty(shape: tuple[int, ...]) -> None:
    got = tensor_stats(torch.empty(shape))
    counts = [F[k] for k in ("numel", "zeros", "nan", "posinf", "neginf")]
    assert (got[counts] == 0).all()
    assert np.isnan(got[[F[k] for k in ("min", "max", "mean", "std", "l2")]]).all()
    h = histogram(torch.empty(shape, dtype=torch.int64))
    assert (h.lo, h.width, h.sample) == (0.0, 1.0, 0)
    assert h.counts.shape == (HIST_BINS,)
    assert not h.counts.any()


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_int64_bins_by_value(rng: np.random.Generator, n: int) -> None:
    a = rng.integers(-5, 21, n)  # 26 distinct values
    t = torch.from_numpy(a)
    check_stats(tensor_stats(t), a)
    h = histogram(t, exact=True)
    assert (h.lo, h.width) == (-5.0, 1.0)
    np.testing.assert_array_equal(h.counts[:26], np.bincount(a + 5, minlength=26))
    assert not h.counts[26:].any()


def test_wide_int_range_never_drops_below_one(rng: np.random.Generator) -> None:
    a = rng.integers(0, 10_001, SMALL)
    a[:2] = (0, 10_000)
    h = histogram(torch.from_numpy(a))
    assert h.width == 256  # 10000/128 + 1 = 79 bins are too many, 10000/256 + 1 = 40 fit
    check_grid(h, a, integral=True)


def test_bool_bins_by_value(rng: np.random.Generator) -> None:
    a = rng.random(LARGE) < 0.3
    t = torch.from_numpy(a)
    check_stats(tensor_stats(t), a.astype(np.float64))
    h = histogram(t, exact=True)
    assert (h.lo, h.width) == (0.0, 1.0)
    assert list(h.counts[:2]) == [np.sum(~a), np.sum(a)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_half_precision(rng: np.random.Generator, dtype: torch.dtype, n: int) -> None:
    t = torch.from_numpy(3 + rng.standard_normal(n).astype(np.float32)).to(dtype)
    a = t.float().numpy()  # the exact values the half tensor holds
    check_stats(tensor_stats(t), a)
    h = histogram(t, exact=True)
    np.testing.assert_array_equal(h.counts, numpy_counts(a, h))


def test_complex_is_summarised_by_magnitude() -> None:
    t = torch.tensor([3 + 4j, 0j, -1 + 0j, 1j], dtype=torch.complex64)
    got = tensor_stats(t)
    magnitude = np.array([5.0, 0.0, 1.0, 1.0])
    check_stats(got, magnitude)
    assert got[F["l2"]] == pytest.approx(math.sqrt(25 + 1 + 1))
    big = torch.polar(torch.full((LARGE,), 2.0), torch.linspace(0, 6, LARGE))
    got = tensor_stats(big)
    assert got[F["min"]] == pytest.approx(2.0)
    assert got[F["std"]] == pytest.approx(0, abs=1e-6)


def test_scalar() -> None:
    got = tensor_stats(torch.tensor(2.5))
    check_stats(got, np.array([2.5]))
    assert got[F["std"]] == 0
    h = histogram(torch.tensor(2.5))
    # All equal: the grid of [0, 2.5]; 2.5 / 2**-4 = 40 bins fit, 2.5 / 2**-5 = 80 do not.
    assert (h.lo, h.width, h.sample) == (2.5, 2.0**-4, 1)
    assert h.counts[0] == 1
    assert h.counts.sum() == 1


@pytest.mark.parametrize(
    ("value", "width"), [(0.0, 2.0**-5), (1.0, 2.0**-5), (-3.0, 2.0**-4), (1e6, 2.0**14)]
)
def test_all_equal_values(value: float, width: float) -> None:
    h = histogram(torch.full((LARGE,), value))
    assert h.width == width
    assert h.lo <= value < h.lo + h.width
    assert h.counts[0] == stats.MAX_SAMPLE
    assert histogram(torch.full((5,), 7, dtype=torch.int32)).width == 1


@pytest.mark.parametrize("rows", [40, 1000])
def test_non_contiguous_views(rng: np.random.Generator, rows: int) -> None:
    base = torch.from_numpy(rng.standard_normal((rows, 600)).astype(np.float32))
    for view in (base.T, base[::3, 1::2], base.T[5:, ::7]):
        assert not view.is_contiguous()
        a = view.numpy()
        check_stats(tensor_stats(view), a)
        h = histogram(view, exact=True)
        np.testing.assert_array_equal(h.counts, numpy_counts(a, h))


def test_exact_histogram_equals_numpy(rng: np.random.Generator) -> None:
    a = rng.standard_normal(1_000_000).astype(np.float32)
    h = histogram(torch.from_numpy(a), exact=True)
    assert h.sample == a.size
    check_grid(h, a)
    np.testing.assert_array_equal(h.counts, numpy_counts(a, h))


def test_sampled_histogram(rng: np.random.Generator) -> None:
    a = rng.standard_normal(1_000_000).astype(np.float32)
    t = torch.from_numpy(a)
    sampled, exact = histogram(t), histogram(t, exact=True)
    assert sampled.sample == stats.MAX_SAMPLE
    assert sampled.counts.sum() == stats.MAX_SAMPLE
    assert (sampled.lo, sampled.width) == (exact.lo, exact.width)  # the grid is exact
    tv = 0.5 * np.abs(sampled.counts / sampled.sample - exact.counts / exact.sample).sum()
    assert tv < 0.05
    np.testing.assert_array_equal(histogram(t).counts, sampled.counts)  # a fixed sample
    small = histogram(t, max_sample=1000)
    assert small.sample == 1000
    assert small.counts.sum() == 1000


def test_sample_skips_nonfinite_values(rng: np.random.Generator) -> None:
    a = rng.standard_normal(LARGE).astype(np.float32)
    a[::10] = np.nan
    h = histogram(torch.from_numpy(a))
    positions = _reduce.sample_indices(a.size, stats.MAX_SAMPLE, torch.device("cpu")).numpy()
    assert h.sample == stats.MAX_SAMPLE
    np.testing.assert_array_equal(h.counts, numpy_counts(a[positions], h))
    assert h.counts.sum() == np.isfinite(a[positions]).sum()


def test_global_rng_is_untouched(rng: np.random.Generator) -> None:
    _reduce.sample_indices.cache_clear()
    before = torch.get_rng_state()
    histogram(torch.from_numpy(rng.standard_normal(LARGE + 7).astype(np.float32)))
    summarize([torch.ones(LARGE + 11)])
    assert torch.equal(before, torch.get_rng_state())


def test_grid_property_sweep(rng: np.random.Generator) -> None:
    """Random scales, offsets and sizes, from tiny to huge magnitudes, floats and ints."""
    for _ in range(300):
        n = int(rng.choice([1, 2, 3, 50, 5000, 70_000]))
        scale = 10.0 ** rng.uniform(-30, 30)
        offset = rng.choice([0.0, 1.0, -1.0]) * scale * 10.0 ** rng.uniform(-3, 3)
        dtype = np.float32 if rng.random() < 0.5 else np.float64
        a = (offset + scale * rng.standard_normal(n)).astype(dtype)
        h = histogram(torch.from_numpy(a), exact=True)
        check_grid(h, a)
        np.testing.assert_array_equal(h.counts, numpy_counts(a, h))
        ints = rng.integers(-(10 ** rng.integers(0, 12)), 10 ** rng.integers(0, 12), n)
        h = histogram(torch.from_numpy(ints), exact=True)
        check_grid(h, ints, integral=True)
        np.testing.assert_array_equal(h.counts, numpy_counts(ints, h))


def test_extreme_float64_range() -> None:
    a = np.array([-1.7e308, 0.0, 1.7e308])
    h = histogram(torch.from_numpy(a))
    check_grid(h, a)
    assert h.counts.sum() == 3
    check_stats(
        tensor_stats(torch.from_numpy(np.array([5e-324, 0.0, 1e-320]))), [5e-324, 0, 1e-320]
    )


def test_summarize_mixed() -> None:
    lazy = torch.nn.LazyLinear(3).weight
    tensors: list[torch.Tensor | None] = [
        torch.arange(6.0).reshape(2, 3),
        None,
        torch.empty(0),
        torch.randn(LARGE),
        lazy,
        torch.tensor([1, 2, 2, 9]),
        torch.tensor([1.0, math.nan, -math.inf]),
        torch.randn(300, dtype=torch.float64) * 1e-3,
        torch.ones(5, device="meta"),
    ]
    s = summarize(tensors)
    n = len(tensors)
    assert s.stats.shape == (n, len(STAT_FIELDS))
    assert s.counts.shape == (n, HIST_BINS)
    assert s.lo.shape == s.width.shape == s.sample.shape == (n,)
    for array in (s.stats, s.counts, s.lo, s.width, s.sample):
        assert array.dtype == np.float64
    for i in (1, 4, 8):  # no values: None, lazy, meta
        assert s.stats[i, 0] == 0
        assert np.isnan(s.stats[i, 1:]).all()
        assert np.isnan(s.lo[i])
        assert np.isnan(s.width[i])
        assert s.sample[i] == 0
        assert not s.counts[i].any()
    for i in (0, 2, 3, 5, 6, 7):
        t = tensors[i]
        assert t is not None
        np.testing.assert_array_equal(s.stats[i], tensor_stats(t))
        h = histogram(t)
        assert (s.lo[i], s.width[i], s.sample[i]) == (h.lo, h.width, h.sample)
        np.testing.assert_array_equal(s.counts[i], h.counts)
    assert s.sample[3] == stats.MAX_SAMPLE
    assert s.sample[0] == 6
    assert list(s.stats[6, [F["nan"], F["neginf"], F["min"]]]) == [1, 1, 1.0]


def test_summarize_many_small_tensors_matches_one_at_a_time(rng: np.random.Generator) -> None:
    tensors = [
        torch.from_numpy(rng.standard_normal(int(rng.integers(1, 3000))).astype(np.float32))
        for _ in range(300)
    ]
    s = summarize(tensors)
    for i, t in enumerate(tensors):
        check_stats(s.stats[i], t.numpy())
        h = Histogram(float(s.lo[i]), float(s.width[i]), s.counts[i], int(s.sample[i]))
        check_grid(h, t.numpy())
        np.testing.assert_array_equal(h.counts, numpy_counts(t.numpy(), h))


def test_parameters_with_grad_and_no_reference_kept() -> None:
    layer = torch.nn.Linear(300, 300)
    ref = weakref.ref(layer.weight)
    s = summarize([layer.weight, layer.bias])
    assert s.stats[0, 0] == 300 * 300
    del layer
    gc.collect()
    assert ref() is None


def test_no_autograd_graph() -> None:
    t = torch.randn(LARGE, requires_grad=True)
    check_stats(tensor_stats(t), t.detach().numpy())
    assert t.grad is None


def test_a_batch_measures_tensors_when_added() -> None:
    """An activation changed in place after its hook (ReLU(inplace=True)) keeps its numbers."""
    generator = torch.Generator().manual_seed(1)
    tensors = [torch.randn(n, generator=generator) for n in (100, 70_000, 2_000_000)]
    copies = [t.clone() for t in tensors]
    batch = stats.StatsBatch()
    batch.add(tensors)
    for t in tensors:
        t.relu_()
    got, _ = batch.finish()
    for row, copy in zip(got.stats, copies, strict=True):
        check_stats(row, copy.numpy())
    assert len(batch) == 0


@pytest.mark.parametrize("masked", [False, True])
def test_the_masked_and_fast_paths_agree_with_numpy(masked: bool) -> None:
    """The masked path (the default on accelerators) run here on the CPU."""
    generator = torch.Generator().manual_seed(2)
    clean = torch.randn(LARGE, generator=generator) * 5 + 40
    dirty = clean.clone()
    dirty[[3, 50, 900]] = torch.tensor([math.nan, math.inf, -math.inf])
    nothing_finite = torch.full((LARGE,), math.nan)
    tensors = [clean, dirty, nothing_finite, torch.randint(-3, 9, (LARGE,))]
    batch = stats.StatsBatch(masked=masked)
    batch.add(tensors)
    got, _ = batch.finish()
    for row, t in zip(got.stats, tensors, strict=True):
        check_stats(row, t.numpy())
    want = stats.summarize(tensors)
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.sample, want.sample)
    np.testing.assert_array_equal(got.lo, want.lo)


@pytest.mark.parametrize("stage_rows", [3, 1 << 10])
def test_the_staged_masked_path_agrees_with_numpy(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, stage_rows: int
) -> None:
    """Accelerators copy float32 tensors into NaN-padded rows of one matrix and reduce them
    together. Run here on the CPU, added one at a time as activations are; with 3 rows the
    matrix fills and flushes mid-batch, and larger tensors take the one-by-one masked path."""
    monkeypatch.setattr(stats, "_STAGE_ROWS", stage_rows)
    tensors = []
    for n, scale, offset in (
        (4097, 1.0, 0.0),
        (16384, 1e-20, 3.0),
        (16385, 1e20, -7.0),
        (40000, 2.0, 1000.0),
        (70000, 1.0, 0.0),
        (5000, 1.0, 0.0),
    ):
        tensors.append(torch.from_numpy((offset + rng.standard_normal(n)) * scale).float())
    dirty = tensors[5]
    dirty[[0, 17, 4999]] = torch.tensor([math.nan, math.inf, -math.inf])
    dirty[100:300] = 0
    tensors += [torch.full((9000,), math.nan), torch.full((20000,), 2.5)]
    tensors.append(torch.from_numpy(rng.standard_normal(30000)).half())
    batch = stats.StatsBatch(masked=True)
    for t in tensors:
        batch.add([t])
    got, _ = batch.finish()
    for row, t in zip(got.stats, tensors, strict=True):
        check_stats(row, t.double().numpy())
    want = stats.summarize(tensors)  # the CPU's fast path
    for row, t in zip(want.stats, tensors, strict=True):
        check_stats(row, t.double().numpy())
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.lo, want.lo)
    np.testing.assert_array_equal(got.width, want.width)
    np.testing.assert_array_equal(got.sample, want.sample)


@pytest.mark.parametrize("scale", [1e-41, 1e-20, 1.0, 3e30])
def test_float32_histograms_bin_exactly_at_any_magnitude(scale: float) -> None:
    """Large float32 tensors are binned in float32 where that is exact, in float64 elsewhere
    (subnormal widths): both agree with numpy's float64 binning on the same grid."""
    generator = torch.Generator().manual_seed(3)
    values = (torch.randn(SMALL * 20, generator=generator).double() * scale).float()
    h = histogram(values, exact=True)
    assert h.sample == values.numel()
    np.testing.assert_array_equal(h.counts, numpy_counts(values.numpy(), h))


@pytest.mark.parametrize("masked", [False, True])
def test_a_tensor_added_again_unchanged_is_measured_once(
    masked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's output is its last child's tensor: measured once, recorded for both. Once
    changed in place (ReLU(inplace=True) after a BatchNorm), it is measured again."""
    measured: list[int] = []
    original = stats.StatsBatch._entry

    def counting(batch: stats.StatsBatch, t: torch.Tensor | None, histograms: bool) -> Any:
        measured.append(0 if t is None else t.numel())
        return original(batch, t, histograms)

    monkeypatch.setattr(stats.StatsBatch, "_entry", counting)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(70_000, generator=generator)
    other = torch.randn(5000, generator=generator)
    before = x.clone()
    batch = stats.StatsBatch(masked=masked)
    batch.add([x, other])
    batch.add([x])  # unchanged: the same row
    x.relu_()
    batch.add([x])  # changed in place: measured again
    batch.add([x], histograms=False)  # another question: measured again
    got, _ = batch.finish()
    assert measured == [70_000, 5000, 70_000, 70_000]
    check_stats(got.stats[0], before.numpy())
    np.testing.assert_array_equal(got.stats[2], got.stats[0])
    np.testing.assert_array_equal(got.counts[2], got.counts[0])
    check_stats(got.stats[3], x.numpy())
    check_stats(got.stats[4], x.numpy())
    assert got.sample[4] == 0
    measured.clear()
    batch.add([x])  # a new batch remembers nothing
    assert measured == [70_000]


@pytest.mark.parametrize("masked", [False, True])
def test_weights_and_updates_added_together(masked: bool) -> None:
    """add_updates with weights: the rows of the weights, then of the updates, each as if added
    alone; an Inf weight (and so its update) and a half-precision weight included."""
    generator = torch.Generator().manual_seed(5)
    after = [
        torch.randn(70_000, generator=generator),
        torch.randn(300, generator=generator).to(torch.bfloat16),
        torch.randn(5000, generator=generator),
        torch.zeros(0),
    ]
    after[2][17] = math.inf
    before = [(a.float() + 1e-3 * torch.randn(a.shape, generator=generator)) for a in after]
    deltas = [(a.float() - b).numpy() for a, b in zip(after, before, strict=True)]
    norms = [float(np.linalg.norm(b.double().numpy())) for b in before]
    batch = stats.StatsBatch(masked=masked)
    assert batch.add_updates(after, [b.clone() for b in before], histograms=True, weights=True) == (
        0,
        0,
    )
    got, extras = batch.finish()
    alone, _ = stats.summarize_batch(
        [a.float() for a in after] + [torch.from_numpy(d) for d in deltas]
    )
    for row, values in zip(got.stats, [a.float().numpy() for a in after] + deltas, strict=True):
        check_stats(row, values)
    for field in ("counts", "lo", "width", "sample"):
        np.testing.assert_array_equal(getattr(got, field), getattr(alone, field), err_msg=field)
    np.testing.assert_allclose(extras, norms, rtol=1e-6)
