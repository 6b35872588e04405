"""Statistics and histograms of tensors, computed on the tensor's device.

Large tensors take the fast path: only cheap full-tensor passes (`aminmax`, `sum`,
`count_nonzero` and a chunked, shifted sum of squares), and a histogram of a fixed sample. NaN
propagates through `aminmax`, so a finite minimum and maximum prove that there is no NaN or Inf;
only otherwise does the slow exact counting run. Tiny tensors (up to 4,096 elements) are
concatenated in float64 and reduced by segment, a fixed number of kernels for all of them. Results
stay on the device until one copy to the host per call and device (a tensor with NaN or Inf costs
a few more).

Histograms use a stable grid: `HIST_BINS` bins of a power-of-two width, aligned to a multiple of
that width, so histograms of a tensor at different steps or ranks can be compared and merged. The
grid always comes from the exact minimum and maximum, even when the counts come from a sample.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from ._protocol import HIST_BINS, STAT_FIELDS

MAX_SAMPLE = 65536
"""Histograms of tensors larger than this are counted from a fixed sample of this many elements."""

_BIN_BITS = HIST_BINS.bit_length() - 1
if 1 << _BIN_BITS != HIST_BINS:
    raise ImportError(f"HIST_BINS must be a power of two, not {HIST_BINS}")

# On the CPU a chunk of this many elements stays in cache between the passes of the shifted sum
# of squares; elsewhere launches cost more than memory traffic and chunks only bound scratch space.
_CPU_CHUNK = 1 << 20
_DEVICE_CHUNK = 1 << 24

# Normal float64 powers of two; a grid of subnormal width would only serve subnormal spans.
_MIN_EXPONENT, _MAX_EXPONENT = -1022, 1023

_SEED = 0x6E62_7669  # the same sample at every step, so that histograms stay comparable

# Device rows are built in this order; the protocol must agree.
_DEVICE_ORDER = ("min", "max", "mean", "std", "l2", "zeros", "nan", "posinf", "neginf")
if STAT_FIELDS[0] != "numel" or STAT_FIELDS[1:] != _DEVICE_ORDER:
    raise ImportError(f"nbviz.stats builds rows as {_DEVICE_ORDER}, not {STAT_FIELDS[1:]}")

_NSTATS = len(STAT_FIELDS)
# A host row: STAT_FIELDS, lo, width, sample, counts.
_LO, _WIDTH, _SAMPLE = _NSTATS, _NSTATS + 1, _NSTATS + 2
_COUNTS = _NSTATS + 3
_ROW = _COUNTS + HIST_BINS
# A device row is a host row without numel and sample, which the host knows.
_DEVICE_STATS = _NSTATS - 1
_DEVICE_ROW = _DEVICE_STATS + 2 + HIST_BINS
_MIN, _NAN = STAT_FIELDS.index("min"), STAT_FIELDS.index("nan")
_MEAN, _STD = STAT_FIELDS.index("mean"), STAT_FIELDS.index("std")


@dataclass(frozen=True)
class Histogram:
    """Bin i counts the values in [lo + i*width, lo + (i+1)*width); NaN and Inf are not counted."""

    lo: float
    width: float
    counts: NDArray[np.float64]
    sample: int
    """How many elements the counts were taken from: numel when exact, else the sample size."""


@dataclass(frozen=True)
class Summaries:
    """Statistics and histograms of many tensors, one row each, all float64."""

    stats: NDArray[np.float64]
    """[n, len(STAT_FIELDS)]"""
    counts: NDArray[np.float64]
    """[n, HIST_BINS]"""
    lo: NDArray[np.float64]
    width: NDArray[np.float64]
    sample: NDArray[np.float64]


def tensor_stats(t: torch.Tensor) -> NDArray[np.float64]:
    """STAT_FIELDS of `t`: min/max/mean/std/l2 of its finite values; zeros, NaN, ±Inf counted.

    std is the population std (ddof=0); complex tensors are summarised by their magnitude.
    """
    stats: NDArray[np.float64] = summarize([t]).stats[0]
    return stats


def histogram(t: torch.Tensor, *, max_sample: int = MAX_SAMPLE, exact: bool = False) -> Histogram:
    """Histogram of the finite values of `t` on its stable grid.

    Counted from a fixed sample of `max_sample` elements when `t` is larger, unless `exact`.
    """
    one = summarize([t], max_sample=sys.maxsize if exact else max_sample)
    return Histogram(
        lo=float(one.lo[0]),
        width=float(one.width[0]),
        counts=one.counts[0],
        sample=int(one.sample[0]),
    )


def summarize(tensors: Sequence[torch.Tensor | None], *, max_sample: int = MAX_SAMPLE) -> Summaries:
    """Statistics and (sampled) histograms of many tensors.

    None, an uninitialized (lazy) parameter or a meta tensor has no values: numel 0, NaN
    statistics and grid, no counts. No reference to any tensor is kept.
    """
    return summarize_batch(tensors, max_sample=max_sample)[0]


def _summaries(rows: NDArray[np.float64]) -> Summaries:
    """Host rows split into `Summaries`, constants made exact.

    The shifted sums leave a std of a few ulps on a constant tensor (and a mean off by one);
    min == max proves the values are all equal, so std is exactly 0 and the mean is min.
    """
    stats = rows[:, :_NSTATS].copy()
    constant = stats[:, _MIN] == stats[:, _MIN + 1]
    stats[constant, _MEAN] = stats[constant, _MIN]
    stats[constant, _STD] = 0.0
    return Summaries(
        stats=stats,
        counts=rows[:, _COUNTS:].copy(),
        lo=rows[:, _LO].copy(),
        width=rows[:, _WIDTH].copy(),
        sample=rows[:, _SAMPLE].copy(),
    )


@dataclass
class _Prepared:
    """A tensor ready to reduce: flat, real, float32 or float64."""

    flat: torch.Tensor
    integral: bool
    """Integer or bool values: the grid width never drops below 1."""


def _fill(row: NDArray[np.float64], device_row: NDArray[np.float64]) -> None:
    """Copies a device row into a host row, leaving numel and sample as they are."""
    row[_MIN:_NSTATS] = device_row[:_DEVICE_STATS]
    row[_LO:_SAMPLE] = device_row[_DEVICE_STATS : _DEVICE_STATS + 2]
    row[_COUNTS:] = device_row[_DEVICE_STATS + 2 :]


def _has_no_values(t: torch.Tensor) -> bool:
    return torch.nn.parameter.is_lazy(t) or t.is_meta


def _absent_row() -> NDArray[np.float64]:
    row = np.zeros(_ROW)
    row[1:_NSTATS] = row[_LO] = row[_WIDTH] = np.nan
    return row


def _empty_row() -> NDArray[np.float64]:
    row = np.zeros(_ROW)
    row[_MIN : STAT_FIELDS.index("zeros")] = np.nan
    row[_WIDTH] = 1.0
    return row


def _prepare(t: torch.Tensor) -> _Prepared:
    x = t.detach()
    if x.is_complex():
        x = x.abs()
    integral = not x.is_floating_point()
    if integral:
        x = x.to(torch.float64)  # exact below 2**53; bool and ints share one path
    elif x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)  # half precision loses too much in reductions
    return _Prepared(x.reshape(-1), integral)


@functools.lru_cache(maxsize=64)
def _sample_indices(numel: int, size: int, device: torch.device) -> torch.Tensor:
    """A fixed sample (with replacement) of positions, the same at every call."""
    generator = torch.Generator().manual_seed(_SEED)  # private: the global RNG is left alone
    indices = torch.randint(numel, (size,), generator=generator)
    return indices.sort().values.to(device)  # sorted, so that the gather reads memory in order


def _large_row(p: _Prepared, values: torch.Tensor) -> torch.Tensor:
    """The device row of one large tensor on the fast path: no NaN or Inf assumed, none counted.

    `values` are what the histogram counts: a sample, or all of `p.flat` when exact.
    """
    moments = _moments(p.flat)
    integral = torch.full((), p.integral, device=moments.device)  # a fill, not a copy
    lo, width = _grid(moments[0], moments[1], integral)
    counts = _bin(values, lo, width)
    return torch.cat([moments, moments.new_zeros(3), torch.stack([lo, width]), counts])


def _nonfinite_row(p: _Prepared, sample: float, max_sample: int) -> NDArray[np.float64]:
    """Exact NaN/Inf counts and statistics of the finite values: several passes, rarely needed."""
    flat = p.flat
    n = flat.numel()
    masks = (flat.isnan(), flat.isposinf(), flat.isneginf())
    specials = torch.stack([torch.count_nonzero(mask) for mask in masks]).double()
    finite = flat[flat.isfinite()]
    row = _empty_row()
    row[0] = n
    if finite.numel():
        # The histogram counts the same positions as the fast path would: the sample is fixed.
        values = flat if sample == n else flat[_sample_indices(n, max_sample, flat.device)]
        device_row = _large_row(_Prepared(finite, p.integral), values)
        host = torch.cat([device_row, specials]).cpu().numpy()  # one copy
        _fill(row, host[:_DEVICE_ROW])
        row[_SAMPLE] = sample
        row[_NAN:_NSTATS] = host[_DEVICE_ROW:]
    else:
        row[_NAN:_NSTATS] = specials.cpu().numpy()
    return row


def _moments(flat: torch.Tensor) -> torch.Tensor:
    """min, max, mean, population std, l2 norm and zero count of `flat`: float64 [6].

    Each chunk is shifted by its own mean before squaring, so that a large mean does not cancel
    the variance away, and the chunks are combined with Chan's formula in float64. Squares are
    summed with `sum` (pairwise, accurate) rather than `dot` (~1e-4 relative error at 1e7
    elements on the CPU).
    """
    n = flat.numel()
    chunk = _CPU_CHUNK if flat.device.type == "cpu" else _DEVICE_CHUNK
    scratch = torch.empty(min(n, chunk), dtype=flat.dtype, device=flat.device)
    parts = torch.stack([_chunk_moments(part, scratch) for part in torch.split(flat, chunk)])
    low, high, sums, squares, nonzero = parts.unbind(1)
    sizes = torch.full_like(sums, float(chunk))
    sizes[-1] = float(n - chunk * (len(sizes) - 1))
    means = sums / sizes
    mean = sums.sum() / n
    spread = squares.sum() + (sizes * (means - mean).square()).sum()
    l2 = (squares + sizes * means.square()).sum().sqrt()
    std = (spread.clamp(min=0) / n).sqrt()
    return torch.stack([low.min(), high.max(), mean, std, l2, n - nonzero.sum()])


def _chunk_moments(part: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """min, max, sum, sum of squared deviations from the mean, nonzeros: float64 [5]."""
    n = part.numel()
    low, high = torch.aminmax(part)
    shift = part.sum() / n
    deviation = torch.sub(part, shift, out=scratch[:n])
    residual = deviation.sum()  # what the rounded shift missed
    squares = deviation.square_().sum()
    low, high, shift, residual, squares = (
        torch.stack([low, high, shift, residual, squares]).double().unbind()
    )
    # Through a bool view: on ReLU outputs, whose zeros are scattered, count_nonzero of the
    # floats is ~10x slower (22 ms against 2 ms for 10M elements here).
    nonzero = torch.count_nonzero(part.bool()).double()
    return torch.stack([low, high, shift * n + residual, squares - residual.square() / n, nonzero])


def _host_vector(
    values: list[int] | list[bool], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    # Non-blocking: a host-to-device copy from pageable memory is staged and never waits on the
    # device, where a blocking one would synchronise the stream.
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


def _grid(
    low: torch.Tensor, high: torch.Tensor, integral: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """lo and width of the stable grid, elementwise: the smallest power-of-two width whose
    aligned bins hold [low, high] in HIST_BINS bins, never below 1 for integers.

    When all values are equal every width fits; the grid is then that of [0, value] ([0, 1] for
    zero), so that the width follows the value's magnitude.
    """
    half_span = high * 0.5 - low * 0.5  # halves: the span itself may overflow
    magnitude = torch.where(low == 0, 0.5, low.abs() * 0.5)
    half = torch.where(half_span > 0, half_span, magnitude)
    # span < HIST_BINS * 2**k is necessary, and frexp gives the smallest such k exactly.
    k = (torch.frexp(half).exponent + (1 - _BIN_BITS)).double().clamp(min=_MIN_EXPONENT)
    k = torch.where(integral, k.clamp(min=0), k)
    k = torch.where(_fits(low, high, k), k, k + 1)  # k + 1 always fits
    smaller = k - 1  # fits only where the span was rounded up
    shrink = _fits(low, high, smaller) & (half_span > 0) & (~integral | (smaller >= 0))
    k = torch.where(shrink, smaller, k)
    width = _power_of_two(k)
    return torch.floor(low / width) * width, width


def _power_of_two(k: torch.Tensor) -> torch.Tensor:
    """2**k for integral float64 k, built from the exponent bits: exact on every device."""
    exponent = k.clamp(_MIN_EXPONENT, _MAX_EXPONENT).long()
    return ((exponent + _MAX_EXPONENT) << 52).view(torch.float64)


def _fits(low: torch.Tensor, high: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    width = _power_of_two(k)
    return torch.floor(high / width) - torch.floor(low / width) < HIST_BINS


def _bin(values: torch.Tensor, lo: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Counts of the 1-D `values` on one grid, float64 [HIST_BINS]; non-finite values dropped."""
    chunk = _CPU_CHUNK if values.device.type == "cpu" else _DEVICE_CHUNK
    counts = values.new_zeros(HIST_BINS, dtype=torch.float64)
    for part in torch.split(values, chunk):
        counts += _bin_rows(part[None].double(), lo[None], width[None])[0]
    return counts


def _bin_rows(x: torch.Tensor, lo: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Counts of each float64 row of `x` on its own grid: [rows, HIST_BINS]."""
    rows = x.shape[0]
    # Dividing by a power of two is exact, so the bins are exact and x - lo cannot overflow.
    position = torch.div(x, width[:, None]).floor_().sub_(torch.floor(lo / width)[:, None])
    # Non-finite values (NaN padding included) go to a discard bin past the end of their row;
    # the clamp only keeps a garbage grid (of a tensor bound for the slow path) in bounds.
    discard = float(HIST_BINS)
    position.nan_to_num_(nan=discard, posinf=discard, neginf=discard).clamp_(0, discard)
    if rows > 1:
        position += torch.arange(rows, device=x.device, dtype=x.dtype)[:, None] * (HIST_BINS + 1)
    counts = _bincount(position.long().reshape(-1), rows * (HIST_BINS + 1))
    return counts.view(rows, HIST_BINS + 1)[:, :HIST_BINS]


def _bincount(index: torch.Tensor, size: int) -> torch.Tensor:
    if index.device.type == "cpu":
        return torch.bincount(index, minlength=size).double()
    # Off the CPU bincount copies its min and max to the host; scatter_add never waits.
    ones = torch.ones_like(index, dtype=torch.float64)
    return ones.new_zeros(size).scatter_add_(0, index, ones)


# ---------------------------------------------------------------------------------------------
# Capture's batched variant: optional histograms, extra device scalars in the same host copy, and
# tiny tensors reduced together by segment (one set of kernels for all of them, where `summarize`
# runs one set per padded-length bucket: ~1 ms each on the CPU).

_TINY = 1 << 12
"""Tensors up to this size are concatenated and reduced by segment; larger ones one at a time."""


def summarize_batch(
    tensors: Sequence[torch.Tensor | None],
    *,
    histograms: bool = True,
    extras: Sequence[torch.Tensor] = (),
    max_sample: int = MAX_SAMPLE,
) -> tuple[Summaries, NDArray[np.float64]]:
    """`summarize`, tuned for capture hooks; also returns the values of `extras`.

    The statistics are those of `summarize` (up to float64 rounding). With `histograms=False` no
    histogram is counted: counts are zero, lo and width NaN and sample 0. `extras` are one-element
    tensors (diagnostics computed on the device by the caller) copied to the host with the
    statistics: one copy per device in all, more only for tensors holding NaN or Inf.
    """
    if max_sample < 1:
        raise ValueError(f"max_sample must be at least 1, not {max_sample}")
    rows = np.zeros((len(tensors), _ROW))
    with torch.no_grad():
        pending, checked = _device_blocks(tensors, rows, histograms, max_sample)
        values = _copy_to_host(rows, pending, extras, histograms)
        for i in checked:
            t = tensors[i]
            if t is not None and not np.isfinite(rows[i, _MIN : _MIN + 2]).all():
                rows[i] = _nonfinite_row(_prepare(t), min(t.numel(), max_sample), max_sample)
                if not histograms:
                    _drop_histogram(rows[i])
    return _summaries(rows), values


_Blocks = dict[torch.device, list[tuple[list[int], torch.Tensor]]]


def _device_blocks(
    tensors: Sequence[torch.Tensor | None],
    rows: NDArray[np.float64],
    histograms: bool,
    max_sample: int,
) -> tuple[_Blocks, list[int]]:
    """Queues the reductions: device blocks of rows per device, and the rows to check for NaN/Inf.

    Fills what the host knows (numel, sample, rows of absent and empty tensors) into `rows`.
    """
    groups: dict[tuple[torch.device, bool], list[tuple[int, _Prepared]]] = {}
    for i, t in enumerate(tensors):
        if t is None or _has_no_values(t):
            rows[i] = _absent_row()
        elif t.numel() == 0:
            rows[i] = _empty_row()
            if not histograms:
                _drop_histogram(rows[i])
        else:
            rows[i, 0] = t.numel()
            rows[i, _SAMPLE] = min(t.numel(), max_sample) if histograms else 0
            p = _prepare(t)
            groups.setdefault((p.flat.device, t.numel() <= _TINY), []).append((i, p))
    pending: _Blocks = {}
    checked: list[int] = []  # rows on the fast path, which assumes no NaN or Inf
    for (device, tiny), items in groups.items():
        indices = [i for i, _ in items]
        prepared = [p for _, p in items]
        if tiny:
            block = _segment_rows(prepared, histograms)
        else:
            block = _large_rows(prepared, histograms, max_sample)
            checked += indices
        pending.setdefault(device, []).append((indices, block))
    return pending, checked


def _large_rows(prepared: list[_Prepared], histograms: bool, max_sample: int) -> torch.Tensor:
    """Device rows [m, width] of tensors on one device on the fast path (no NaN or Inf assumed).

    Moments per tensor; the grids of all of them at once, and one binning of their samples.
    """
    moments = _batch_moments([p.flat for p in prepared])
    stats = torch.cat([moments, moments.new_zeros(len(prepared), 3)], 1)
    if not histograms:
        return stats
    device = moments.device
    integral = _host_vector([p.integral for p in prepared], torch.bool, device)
    lo, width = _grid(moments[:, 0], moments[:, 1], integral)
    buckets = _sample_buckets(prepared, max_sample)
    if len(buckets) == 1:  # rows in order: no gathers and scatters
        counts = _bin_rows(_padded(next(iter(buckets.values()))), lo, width)
    else:
        counts = torch.empty(len(prepared), HIST_BINS, dtype=torch.float64, device=device)
        for rows, samples in buckets.items():
            index = _host_vector(list(rows), torch.int64, device)
            counts[index] = _bin_rows(_padded(samples), lo[index], width[index])
    return torch.cat([stats, lo[:, None], width[:, None], counts], 1)


def _padded(samples: list[torch.Tensor]) -> torch.Tensor:
    """[rows, longest] float64, NaN past each row's end: the padding drops out of the counts."""
    if len(samples) == 1:
        return samples[0][None].to(torch.float64)
    matrix = torch.nn.utils.rnn.pad_sequence(samples, batch_first=True, padding_value=math.nan)
    return matrix.to(torch.float64)


def _sample_buckets(
    prepared: list[_Prepared], max_sample: int
) -> dict[tuple[int, ...], list[torch.Tensor]]:
    """The values each histogram counts, grouped by padded length (a power of two): rows, values.

    NaN pads a row to its bucket's length and drops out of the counts.
    """
    buckets: dict[int, tuple[list[int], list[torch.Tensor]]] = {}
    for row, p in enumerate(prepared):
        n = p.flat.numel()
        values = (
            p.flat if n <= max_sample else p.flat[_sample_indices(n, max_sample, p.flat.device)]
        )
        rows, samples = buckets.setdefault(1 << (values.numel() - 1).bit_length(), ([], []))
        rows.append(row)
        samples.append(values)
    return {tuple(rows): samples for rows, samples in buckets.values()}


def _batch_moments(flats: list[torch.Tensor]) -> torch.Tensor:
    """min, max, mean, population std, l2 and zero count of each tensor: float64 [m, 6].

    As `_moments` (each chunk shifted by its mean before squaring), with the arithmetic after the
    reductions done once for all tensors of one chunk, and nonzeros counted in `x.bool()`:
    `count_nonzero(x)` branches per element on the CPU, ~10x slower on ReLU outputs and their
    gradients, whose zeros are scattered.
    """
    device = flats[0].device
    chunk = _CPU_CHUNK if device.type == "cpu" else _DEVICE_CHUNK
    single = [i for i, f in enumerate(flats) if f.numel() <= chunk]
    rows: list[torch.Tensor | None] = [None] * len(flats)
    if single:
        sizes: dict[torch.dtype, int] = {}
        for i in single:
            sizes[flats[i].dtype] = max(sizes.get(flats[i].dtype, 0), flats[i].numel())
        # One scratch buffer per dtype, shared by the tensors in turn.
        scratch = {
            dtype: torch.empty(size, dtype=dtype, device=device) for dtype, size in sizes.items()
        }
        raw = torch.stack([_chunk_sums(flats[i], scratch[flats[i].dtype]) for i in single]).double()
        n = _host_vector([flats[i].numel() for i in single], torch.float64, device)
        low, high, shift, residual, squares, zeros = raw.unbind(1)
        total = shift * n + residual
        spread = squares - residual.square() / n
        finished = _finish_moments(low, high, total, spread, zeros, n)
        for k, i in enumerate(single):
            rows[i] = finished[k]
    for i, f in enumerate(flats):
        if rows[i] is None:
            rows[i] = _chunked_moments(f, chunk)
    return torch.stack([r for r in rows if r is not None])


def _chunk_sums(part: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """min, max, shift, sum of (x - shift), sum of (x - shift)**2, zeros: [6], in part's dtype.

    The shift is the rounded mean; the zero count is exact in float32 up to 2**24 elements.
    """
    n = part.numel()
    low, high = torch.aminmax(part)
    shift = part.sum() / n
    deviation = torch.sub(part, shift, out=scratch[:n])
    residual = deviation.sum()  # what the rounded shift missed
    squares = deviation.square_().sum()
    # x.bool() then a count of a bool tensor: 3x faster than x == 0 (eq is slow on the CPU).
    zeros = (n - torch.count_nonzero(part.bool())).to(part.dtype)
    return torch.stack([low, high, shift, residual, squares, zeros])


def _finish_moments(
    low: torch.Tensor,
    high: torch.Tensor,
    total: torch.Tensor,
    spread: torch.Tensor,
    zeros: torch.Tensor,
    n: torch.Tensor,
) -> torch.Tensor:
    """[m, 6] moments from the float64 sums: spread is the sum of squared deviations."""
    spread = spread.clamp(min=0)
    mean = total / n
    l2 = (spread + total * mean).clamp(min=0).sqrt()
    return torch.stack([low, high, mean, (spread / n).sqrt(), l2, zeros], -1)


def _chunked_moments(flat: torch.Tensor, chunk: int) -> torch.Tensor:
    """Moments [6] of a tensor of several chunks, combined with Chan's formula in float64."""
    n = flat.numel()
    scratch = torch.empty(chunk, dtype=flat.dtype, device=flat.device)
    parts = torch.stack([_chunk_sums(part, scratch) for part in torch.split(flat, chunk)]).double()
    low, high, shift, residual, squares, zeros = parts.unbind(1)
    sizes = torch.full_like(shift, float(chunk))
    sizes[-1] = float(n - chunk * (len(sizes) - 1))
    sums = shift * sizes + residual
    spreads = squares - residual.square() / sizes
    means = sums / sizes
    mean = sums.sum() / n
    spread = spreads.sum() + (sizes * (means - mean).square()).sum()
    count = sums.new_tensor(float(n))
    return _finish_moments(low.min(), high.max(), sums.sum(), spread, zeros.sum(), count)


def _copy_to_host(
    rows: NDArray[np.float64],
    pending: _Blocks,
    extras: Sequence[torch.Tensor],
    histograms: bool,
) -> NDArray[np.float64]:
    """Fills `rows` from the device blocks and returns `extras`, one host copy per device."""
    values = np.full(len(extras), np.nan)
    extra_at: dict[torch.device, list[int]] = {}
    for k, extra in enumerate(extras):
        extra_at.setdefault(extra.device, []).append(k)
    width = _DEVICE_STATS + (2 + HIST_BINS if histograms else 0)
    for device in {*pending, *extra_at}:
        blocks = pending.get(device, [])
        parts = [block.reshape(-1) for _, block in blocks]
        parts += [extras[k].detach().reshape(1).double() for k in extra_at.get(device, [])]
        host = torch.cat(parts).cpu().numpy()  # the one copy of this device
        start = 0
        for indices, block in blocks:
            for index, device_row in zip(
                indices, host[start : start + block.numel()].reshape(-1, width), strict=True
            ):
                _fill_batch_row(rows[index], device_row, histograms)
            start += block.numel()
        values[extra_at.get(device, [])] = host[start:]
    return values


def _fill_batch_row(
    row: NDArray[np.float64], device_row: NDArray[np.float64], histograms: bool
) -> None:
    if histograms:
        _fill(row, device_row)
    else:
        row[_MIN:_NSTATS] = device_row
        _drop_histogram(row)
    if np.isnan(device_row[0]):
        row[_SAMPLE] = 0  # nothing finite to count


def _drop_histogram(row: NDArray[np.float64]) -> None:
    row[_LO] = row[_WIDTH] = np.nan
    row[_SAMPLE] = 0
    row[_COUNTS:] = 0


def _segment_rows(prepared: list[_Prepared], histograms: bool) -> torch.Tensor:
    """Device rows [m, width] of tiny tensors, exact, with a fixed number of kernels in all.

    The tensors are concatenated in float64 and reduced by segment (`index_add_`,
    `scatter_reduce_`): NaN and Inf are counted and left out of the other statistics.
    """
    flats = [p.flat for p in prepared]
    device = flats[0].device
    m = len(flats)
    sizes = _host_vector([f.numel() for f in flats], torch.int64, device)
    total = sum(f.numel() for f in flats)
    # output_size: otherwise repeat_interleave copies the sizes back to the host.
    segment = torch.repeat_interleave(torch.arange(m, device=device), sizes, output_size=total)
    x = torch.cat(flats).to(torch.float64)
    finite = x.isfinite()
    masks = torch.stack([finite, x == 0, x.isnan(), x.isposinf(), x.isneginf()], 1)
    count, zeros, nan, posinf, neginf = _segment_sum(masks.double(), segment, m).unbind(1)
    some = count > 0
    kept = torch.where(finite, x, 0.0)
    mean = _segment_sum(kept, segment, m) / count
    deviation = torch.where(finite, x - mean[segment], 0.0)
    std = (_segment_sum(deviation.square(), segment, m) / count).sqrt()
    l2 = torch.where(some, _segment_sum(kept.square(), segment, m).sqrt(), math.nan)
    low = _segment_extreme(torch.where(finite, x, math.inf), segment, m, "amin")
    high = _segment_extreme(torch.where(finite, x, -math.inf), segment, m, "amax")
    low, high = torch.where(some, low, math.nan), torch.where(some, high, math.nan)
    stats = torch.stack([low, high, mean, std, l2, zeros, nan, posinf, neginf], 1)
    if not histograms:
        return stats
    integral = _host_vector([p.integral for p in prepared], torch.bool, device)
    lo, width = _grid(low, high, integral)
    lo = torch.where(some, lo, 0.0)
    width = torch.where(some, width, 1.0)
    counts = _bin_segments(x, segment, lo, width)
    return torch.cat([stats, lo[:, None], width[:, None], counts], 1)


def _segment_sum(values: torch.Tensor, segment: torch.Tensor, m: int) -> torch.Tensor:
    return values.new_zeros((m, *values.shape[1:])).index_add_(0, segment, values)


def _segment_extreme(values: torch.Tensor, segment: torch.Tensor, m: int, how: str) -> torch.Tensor:
    start = math.inf if how == "amin" else -math.inf
    return values.new_full((m,), start).scatter_reduce_(0, segment, values, how)


def _bin_segments(
    x: torch.Tensor, segment: torch.Tensor, lo: torch.Tensor, width: torch.Tensor
) -> torch.Tensor:
    """Counts of each segment of the float64 `x` on its own grid: [m, HIST_BINS]."""
    m = lo.shape[0]
    step = width[segment]
    position = torch.div(x, step).floor_().sub_(torch.floor(lo / width)[segment])
    discard = float(HIST_BINS)  # non-finite values land past the end of their row
    position.nan_to_num_(nan=discard, posinf=discard, neginf=discard).clamp_(0, discard)
    position += segment.to(position.dtype) * (HIST_BINS + 1)
    counts = _bincount(position.long(), m * (HIST_BINS + 1))
    return counts.view(m, HIST_BINS + 1)[:, :HIST_BINS]


def merge_histograms(a: Histogram, b: Histogram) -> Histogram:
    """The histogram of both histograms' values together, exactly, on the stable grid.

    Widths are powers of two and bins are aligned to them, so every bin of the finer grid lies
    inside one bin of a coarser one: coarsening adds bins, and merging adds counts. The width is
    the smallest power of two, from the wider of the two up, that holds both in HIST_BINS bins.
    """
    # A histogram with nothing finite has no grid: only its sample size carries over.
    if not (math.isfinite(a.width) and a.counts.any()):
        return dataclasses.replace(b, sample=a.sample + b.sample)
    if not (math.isfinite(b.width) and b.counts.any()):
        return dataclasses.replace(a, sample=a.sample + b.sample)
    width = max(a.width, b.width)
    while True:
        starts = [_bin_starts(h, width) for h in (a, b)]
        first = min(s[0] for s in starts)
        if max(s[-1] for s in starts) - first < HIST_BINS:
            break
        width *= 2
    counts = np.zeros(HIST_BINS, dtype=np.float64)
    for h, s in zip((a, b), starts, strict=True):
        np.add.at(counts, np.array([i - first for i in s]), h.counts)
    return Histogram(lo=first * width, width=width, counts=counts, sample=a.sample + b.sample)


def _bin_starts(h: Histogram, width: float) -> list[int]:
    """Index, on the grid of `width`, of the bin holding each bin of `h` (width >= h.width).

    Python integers and shifts: grids of 2**-100 and 2**20 can meet, far past int64.
    """
    shift = round(math.log2(width / h.width))  # the ratio is a power of two
    first = math.floor(h.lo / h.width)
    return [(first + i) >> shift for i in range(HIST_BINS)]
