"""Property-based checks of the statistics against numpy: random shapes, dtypes, NaN/Inf
patterns, constant tensors, huge and tiny magnitudes."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stats import check_grid, check_stats, numpy_counts

from nbviz._protocol import HIST_BINS
from nbviz.stats import histogram, merge_histograms, summarize, tensor_stats

FLOATS = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16}


@st.composite
def float_tensors(draw: st.DrawFn) -> torch.Tensor:
    shape = draw(st.lists(st.integers(1, 7), min_size=0, max_size=3))
    dtype = FLOATS[draw(st.sampled_from(sorted(FLOATS)))]
    numel = int(np.prod(shape)) if shape else 1
    scale = draw(st.sampled_from([1e-30, 1e-6, 1.0, 1e6, 1e30]))
    if dtype == torch.float16:
        scale = min(max(scale, 1e-3), 1e3)  # keep inside half precision's normal range
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).normal(size=numel) * scale
    if draw(st.booleans()):
        values += draw(st.sampled_from([0.0, 3.0, -1000.0])) * scale  # offset, or constant
        if draw(st.booleans()):
            values[:] = values[0]
    specials = draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, 0.0]), max_size=numel))
    values[: len(specials)] = specials
    return torch.tensor(values, dtype=dtype).reshape(shape)


@settings(max_examples=150, deadline=None)
@given(float_tensors())
def test_float_statistics_match_numpy(tensor: torch.Tensor) -> None:
    values = tensor.double().numpy()  # what the tensor holds, after rounding to its dtype
    check_stats(tensor_stats(tensor), values, rtol=1e-5)
    exact = histogram(tensor, exact=True)
    np.testing.assert_array_equal(exact.counts, numpy_counts(values, exact))
    if np.isfinite(values).any():
        check_grid(exact, values)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=200),
    st.sampled_from([torch.int64, torch.int32, torch.bool]),
)
def test_integers_and_bools_bin_by_value(values: list[int], dtype: torch.dtype) -> None:
    if dtype == torch.int32:
        values = [v % (2**31) for v in values]
    tensor = torch.tensor(values).to(dtype)
    reference = tensor.double().numpy()
    check_stats(tensor_stats(tensor), reference)
    counted = histogram(tensor, exact=True)
    np.testing.assert_array_equal(counted.counts, numpy_counts(reference, counted))
    check_grid(counted, reference, integral=True)


@settings(max_examples=30, deadline=None)
@given(st.lists(float_tensors(), min_size=1, max_size=6))
def test_summarize_agrees_with_one_at_a_time(tensors: list[torch.Tensor]) -> None:
    together = summarize(tensors)
    for row, tensor in zip(together.stats, tensors, strict=True):
        np.testing.assert_allclose(row, tensor_stats(tensor), rtol=1e-6, equal_nan=True)


@settings(max_examples=200, deadline=None)
@given(float_tensors(), float_tensors())
def test_merged_histograms_equal_the_histogram_of_the_union(
    a: torch.Tensor, b: torch.Tensor
) -> None:
    both = torch.cat([a.double().reshape(-1), b.double().reshape(-1)])
    ha, hb = histogram(a.double(), exact=True), histogram(b.double(), exact=True)
    merged = merge_histograms(ha, hb)
    assert merged.sample == ha.sample + hb.sample
    whole = histogram(both, exact=True)
    if whole.sample == 0:
        assert merged.sample == 0
        return
    # Never finer than the union needs (it can be coarser: a constant's grid spans [0, value]).
    assert merged.width >= whole.width
    np.testing.assert_array_equal(merged.counts, numpy_counts(both.numpy(), merged))
    finite = both.numpy()[np.isfinite(both.numpy())]
    assert finite.min() >= merged.lo
    assert finite.max() < merged.lo + HIST_BINS * merged.width
