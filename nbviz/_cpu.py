"""Fused reductions of tensors in host memory, compiled with numba.

PyTorch's CPU kernels need about eight passes over a tensor for its statistics (`aminmax`, `sum`,
a shifted copy, its sum, its squares, a zero count), each accumulating in the tensor's own dtype.
Here one pass gives them all, with float64 accumulators, near the speed of reading the memory once;
the histogram's sample is copied right after it, while the tensor is still in cache.

- min and max come from the float's bits read as a sign-magnitude integer: integer min and max
  vectorize where float ones do not, and NaN and ±Inf land outside the finite keys, so the same
  numbers tell whether the fast path holds.
- The sum of squares is shifted by the first value, summed in float64. Any value lies within
  sqrt(n) standard deviations of the mean (Samuelson's inequality), so the cancellation costs at
  most a factor n of float64's precision: ~1e-9 relative for 10M elements.
- A parameter's weights and its update (the weights less their snapshot from before the
  optimizer step) are measured in the same loop: each array is read once, the update never
  materialised.

Tensors from 64K elements are split into runs of whole blocks, one per thread of torch's own
OpenMP team: after each op its threads spin a while waiting for work, so a thread of our own would
take turns with them, while a region on their team runs on them at once.

The kernels compile at their first call and are cached on disk (numba's `cache=True`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import torch
from numba.extending import overload
from numpy.typing import NDArray

from ._protocol import HIST_BINS

_BIN_BITS = HIST_BINS.bit_length() - 1
_MIN_EXPONENT, _MAX_EXPONENT = -1022, 1023  # normal float64 powers of two, as in _reduce

_F = TypeVar("_F", bound=Callable[..., Any])


def _compiled(fastmath: set[str] | bool = False) -> Callable[[_F], _F]:
    def compile_(kernel: _F) -> _F:
        return cast(_F, numba.njit(cache=True, nogil=True, fastmath=fastmath)(kernel))

    return compile_


_BLOCK = 4096
"""Elements per block of a pass: 16 KiB of float32, summed in float64 and float32 lanes (a block's
zero count in float32 is exact)."""


def _bits(value: Any) -> Any:
    """A float's bits as the integer of its width (compiled only: see `_bits_of`)."""
    raise NotImplementedError


@overload(_bits)
def _bits_of(value: Any) -> Any:
    # The implementations' signatures must match `_bits`'s, annotations included.
    def single(value: Any) -> Any:
        return np.float32(value).view(np.int32)

    def double(value: Any) -> Any:
        return np.float64(value).view(np.int64)

    return {numba.float32: single, numba.float64: double}.get(value)


def _layout(x: Any) -> Any:
    """x's bits as integers and the mask of their magnitude (compiled only: see `_layout_of`)."""
    raise NotImplementedError


@overload(_layout)
def _layout_of(x: Any) -> Any:
    def single(x: Any) -> Any:
        return x.view(np.int32), np.int32(0x7FFF_FFFF)

    def double(x: Any) -> Any:
        return x.view(np.int64), np.int64(0x7FFF_FFFF_FFFF_FFFF)

    return {numba.float32: single, numba.float64: double}.get(x.dtype)


def _narrow(value: Any, like: Any) -> Any:
    """An integer as the type of `like`, int32 or int64 (compiled only: see `_narrow_to`)."""
    raise NotImplementedError


@overload(_narrow)
def _narrow_to(value: Any, like: Any) -> Any:
    def single(value: Any, like: Any) -> Any:
        return np.int32(value)

    def double(value: Any, like: Any) -> Any:
        return np.int64(value)

    return {numba.int32: single, numba.int64: double}.get(like)


@_compiled()
def _key(b: Any, magnitude: Any) -> Any:
    """The bits b of a float as an integer in float order: negative ones reversed. The map is
    its own inverse. Kept at b's width (numba widens integer arithmetic to 64 bits), a float32
    block's keys take 16 vector lanes, not 8: a quarter less time for the whole pass."""
    zero = magnitude ^ magnitude
    return _narrow(b ^ (magnitude if b < zero else zero), b)


# Zero counts of a block in float32: as vector lanes as wide as the float32 keys' (an int64 count
# takes 8 lanes, and a narrowed one does not vectorize): 9% less time for the pass.
_ZERO, _ONE = np.float32(0.0), np.float32(1.0)


# Reassociation lets the float64 sums vectorize; nothing assumes finite values.
@_compiled(fastmath={"reassoc", "contract"})
def _block(x: Any, bits: Any, magnitude: Any, c: float) -> tuple[Any, ...]:
    """Σ(x - c), Σ(x - c)², the zero count, and the smallest and largest ordered keys."""
    s1 = 0.0
    s2 = 0.0
    zeros = _ZERO  # float32 lanes count exactly to 2**24, far past a block's _BLOCK
    low = magnitude  # past every key's extremes: NaN lies beyond ±Inf
    high = _narrow(-magnitude - 1, magnitude)
    for i in range(x.shape[0]):
        d = np.float64(x[i]) - c
        s1 += d
        s2 += d * d
        b = bits[i]
        zeros += _ONE if (b & magnitude) == 0 else _ZERO  # +0 and -0
        key = _key(b, magnitude)
        low = min(low, key)
        high = max(high, key)
    return s1, s2, int(zeros), low, high


# The weights and their update in one loop, so that each is read from memory once.
@_compiled(fastmath={"reassoc", "contract"})
def _block_pair(
    x: Any, bits: Any, before: Any, magnitude: Any, c: float, c_delta: float
) -> tuple[Any, ...]:
    """`_block` of x and of d = x - before (in x's dtype), then Σbefore²."""
    s1 = s2 = d1 = d2 = squares = 0.0
    zeros = delta_zeros = _ZERO
    low = delta_low = magnitude
    high = delta_high = _narrow(-magnitude - 1, magnitude)
    for i in range(x.shape[0]):
        v = x[i]
        w = before[i]
        d = v - w
        e = np.float64(v) - c
        s1 += e
        s2 += e * e
        b = bits[i]
        zeros += _ONE if (b & magnitude) == 0 else _ZERO
        key = _key(b, magnitude)
        low = min(low, key)
        high = max(high, key)
        f = np.float64(d) - c_delta
        d1 += f
        d2 += f * f
        b = _bits(d)
        delta_zeros += _ONE if (b & magnitude) == 0 else _ZERO
        key = _key(b, magnitude)
        delta_low = min(delta_low, key)
        delta_high = max(delta_high, key)
        squares += np.float64(w) * np.float64(w)
    return (
        s1, s2, int(zeros), low, high, d1, d2, int(delta_zeros), delta_low, delta_high, squares
    )  # fmt: skip


_NO_INDEX = np.zeros(0, dtype=np.int64)


@_compiled()
def _fits(low: float, high: float, k: float) -> bool:
    width = math.ldexp(1.0, int(k))
    return math.floor(high / width) - math.floor(low / width) < HIST_BINS


@_compiled()
def _grid(low: float, high: float, integral: bool) -> tuple[float, float]:
    """`_reduce.grid` of one tensor, line for line (tests hold the two equal): lo and width."""
    half_span = high * 0.5 - low * 0.5  # halves: the span itself may overflow
    magnitude = 0.5 if low == 0 else abs(low) * 0.5
    half = half_span if half_span > 0 else magnitude
    k = max(float(math.frexp(half)[1] + 1 - _BIN_BITS), float(_MIN_EXPONENT))
    if integral:
        k = max(k, 0.0)
    if not _fits(low, high, k):
        k += 1.0  # k + 1 always fits
    smaller = k - 1.0  # fits only where the span was rounded up
    if _fits(low, high, smaller) and half_span > 0 and (not integral or smaller >= 0):
        k = smaller
    width = math.ldexp(1.0, int(min(max(k, _MIN_EXPONENT), _MAX_EXPONENT)))
    return math.floor(low / width) * width, width


@_compiled()
def _positions(x: Any, scale: float, base: float, out: Any) -> None:
    top = float(HIST_BINS)
    for k in range(x.shape[0]):
        # Scaling by a power of two is exact, so is the floor; subtracting after it keeps the
        # bins exact wherever the grid lies. The clamp only keeps memory safe.
        p = np.floor(np.float64(x[k]) * scale) - base
        out[k] = np.int32(min(max(p, 0.0), top)) + (k & 1) * (HIST_BINS + 1)


@_compiled()
def _count(x: Any, before: Any, lo: float, width: float) -> Any:
    """Counts [HIST_BINS] of v = x (before empty), or x - before, on the grid: per block,
    positions computed in one vectorized pass, then counted in two lanes that take turns, so
    that a run of one bin does not wait on its own stores."""
    scale = 1.0 / width
    base = math.floor(lo / width)
    counts = np.zeros(2 * (HIST_BINS + 1), dtype=np.int64)
    position = np.empty(_BLOCK, dtype=np.int32)
    values = np.empty(_BLOCK, dtype=x.dtype)
    n = x.shape[0]
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        if before.shape[0] == 0:
            _positions(x[start:stop], scale, base, position)
        else:
            np.subtract(x[start:stop], before[start:stop], values[: stop - start])
            _positions(values[: stop - start], scale, base, position)
        for k in range(stop - start):
            counts[position[k]] += 1
    return counts[:HIST_BINS] + counts[HIST_BINS + 1 : 2 * HIST_BINS + 1]


@_compiled()
def _gather(x: Any, before: Any, index: Any, out: Any) -> None:
    """x[index], or with a non-empty `before` x[index] - before[index] in x's dtype."""
    update = before.shape[0] > 0
    for q in range(index.shape[0]):
        i = np.uint64(index[q])  # unsigned: no check for negative indices
        out[q] = x[i] - before[i] if update else x[i]


@_compiled()
def _extremes(low: Any, high: Any, magnitude: Any, x: Any) -> tuple[float, float]:
    """The smallest and largest keys back to values (the map is its own inverse), or NaN for
    both when either lies past the finite keys (NaN or ±Inf)."""
    keys = np.full(2, magnitude)  # of the integer type of the keys
    keys[0] = _key(low, magnitude)
    keys[1] = _key(high, magnitude)
    values = keys.view(x.dtype)
    lowest, highest = np.float64(values[0]), np.float64(values[1])
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        return np.nan, np.nan
    return lowest, highest


NUMEL, MIN = 0, 1
MOMENTS = slice(MIN, MIN + 6)
"""Columns of a row of `reduce`, as `nbviz.stats` lays out a host row: numel, then min, max,
mean, std, l2 and zeros; min is NaN when there is NaN or ±Inf (the rest is then meaningless),
and the NaN, +Inf and -Inf counts after them are 0."""
LO, WIDTH, SAMPLE, COUNTS = MIN + 9, MIN + 10, MIN + 11, MIN + 12
"""The grid, how many values the counts count, and the first of the counts: NaN, NaN, 0 and
zeros without a histogram."""
NORM = COUNTS + HIST_BINS
"""‖before‖₂, in an update's row."""
ROW = NORM + 1


@_compiled()
def _pass(x: Any, before: Any, start: int, stop: int, index: Any, samples: Any, raw: Any) -> None:
    """Of x[start:stop] into raw[0], and with a non-empty `before` of d = x - before in x's
    dtype (an update) into raw[1]: Σ(v - v[0]), Σ(v - v[0])², the zero count, min and max (NaN
    if any value is NaN or ±Inf); Σbefore² into raw[1, 5]. Then x[index] and d[index] into
    `samples` (sorted positions, all in [start, stop)), in a loop of their own: its loads do not
    wait on each other, and a run of up to 1 MiB is still in cache (copied block by block, as
    each block's pass ends, took twice as long)."""
    bits, magnitude = _layout(x)
    update = before.shape[0] > 0
    c = np.float64(x[0])
    c_delta = np.float64(x[0] - before[0]) if update else 0.0
    s1 = s2 = d1 = d2 = squares = 0.0
    zeros = delta_zeros = 0
    low = delta_low = magnitude  # past every key's extremes: NaN lies beyond ±Inf
    high = delta_high = -magnitude - 1
    for first in range(start, stop, _BLOCK):
        last = min(first + _BLOCK, stop)
        if update:
            a1, a2, z, lo, hi, e1, e2, ez, elo, ehi, sq = _block_pair(
                x[first:last], bits[first:last], before[first:last], magnitude, c, c_delta
            )
            d1 += e1
            d2 += e2
            delta_zeros += ez
            delta_low = min(delta_low, elo)
            delta_high = max(delta_high, ehi)
            squares += sq
        else:
            a1, a2, z, lo, hi = _block(x[first:last], bits[first:last], magnitude, c)
        s1 += a1
        s2 += a2
        zeros += z
        low = min(low, lo)
        high = max(high, hi)
    _gather(x, before[:0], index, samples[0])
    if update:
        _gather(x, before, index, samples[1])
    lowest, highest = _extremes(low, high, magnitude, x)
    raw[0, 0], raw[0, 1], raw[0, 2], raw[0, 3], raw[0, 4] = s1, s2, zeros, lowest, highest
    if update:
        lowest, highest = _extremes(delta_low, delta_high, magnitude, x)
        raw[1, 0], raw[1, 1], raw[1, 2], raw[1, 3], raw[1, 4] = d1, d2, delta_zeros, lowest, highest
        raw[1, 5] = squares


@numba.njit(cache=True, nogil=True, parallel=True)
def _parts(x: Any, before: Any, index: Any, samples: Any, parts: int, raw: Any) -> None:
    """`_pass` of x split into `parts` runs of whole blocks, one per thread, then combined."""
    n = x.shape[0]
    blocks = -(-n // _BLOCK)
    results = np.empty((parts, 2, 6))
    for p in numba.prange(parts):
        start = blocks * p // parts * _BLOCK
        stop = min(blocks * (p + 1) // parts * _BLOCK, n)
        i = np.searchsorted(index, start)
        j = np.searchsorted(index, stop)
        _pass(x, before, start, stop, index[i:j], samples[:, i:j], results[p])
    for row in range(2 if before.shape[0] > 0 else 1):
        part = results[:, row]
        for column in (0, 1, 2, 5):
            raw[row, column] = part[:, column].sum()
        finite = not np.isnan(part[:, 3]).any()
        raw[row, 3] = part[:, 3].min() if finite else np.nan
        raw[row, 4] = part[:, 4].max() if finite else np.nan


@_compiled()
def _stats_row(raw: Any, first: float, n: int, row: Any) -> None:
    """A row without its histogram from `_pass`'s sums, shifted by `first`: numel, min, max,
    mean, std, l2 and zeros."""
    s1, s2 = raw[0], raw[1]
    mean = first + s1 / n
    spread = max(s2 - s1 * s1 / n, 0.0)
    row[NUMEL] = n
    row[MIN], row[MIN + 1], row[MIN + 5] = raw[3], raw[4], raw[2]
    row[MIN + 2], row[MIN + 3] = mean, math.sqrt(spread / n)
    row[MIN + 4] = math.sqrt(max(spread + mean * mean * n, 0.0))
    row[MIN + 6 : LO] = 0.0  # NaN and ±Inf: none, or min is NaN
    row[LO], row[WIDTH], row[SAMPLE] = np.nan, np.nan, 0.0
    row[COUNTS:NORM] = 0.0
    row[NORM] = np.nan


@_compiled()
def _histogram(x: Any, before: Any, sample: Any, sampled: bool, integral: bool, row: Any) -> None:
    """The grid of the row's min and max and the counts of `sample`, or if not `sampled` of all
    of x (or of x - before), into the row; nothing when the row has NaN or ±Inf."""
    low, high = row[MIN], row[MIN + 1]
    if np.isnan(low):
        return
    lo, width = _grid(low, high, integral)
    row[LO], row[WIDTH] = lo, width
    row[SAMPLE] = sample.shape[0] if sampled else x.shape[0]
    # The sample holds the values already; otherwise they are read again, while in cache.
    row[COUNTS:NORM] = (
        _count(sample, before[:0], lo, width) if sampled else _count(x, before, lo, width)
    )


@_compiled()
def _complete(
    x: Any,
    before: Any,
    samples: Any,
    sampled: bool,
    histogram: bool,
    delta_histogram: bool,
    integral: bool,
    raw: Any,
    out: Any,
) -> None:
    """After `_pass`: the moments, ‖before‖₂ and the histograms asked for, of x into out[0] and
    of the update into out[1]."""
    n = x.shape[0]
    _stats_row(raw[0], np.float64(x[0]), n, out[0])
    if histogram:
        _histogram(x, before[:0], samples[0], sampled, integral, out[0])
    if before.shape[0] > 0:
        _stats_row(raw[1], np.float64(x[0] - before[0]), n, out[1])
        out[1, NORM] = math.sqrt(raw[1, 5])
        if delta_histogram:
            _histogram(x, before, samples[1], sampled, False, out[1])


@_compiled()
def _summary(
    x: Any,
    before: Any,
    index: Any,
    histogram: bool,
    delta_histogram: bool,
    integral: bool,
    out: Any,
) -> None:
    """`_pass`, then `_complete`, into out [2, ROW]. One call per tensor: each call from Python
    costs microseconds."""
    samples = np.empty((2, index.shape[0]), dtype=x.dtype)
    raw = np.empty((2, 6))
    _pass(x, before, 0, x.shape[0], index, samples, raw)
    sampled = index.shape[0] > 0
    _complete(x, before, samples, sampled, histogram, delta_histogram, integral, raw, out)


@_compiled()
def _dead(x: Any, outer: int, channels: int, inner: int) -> int:
    """Channels of x ([outer, channels, inner], contiguous) with no value above 0 (NaN is not):
    a channel is done at its first positive value, so live ones cost a few reads."""
    alive = np.zeros(channels, dtype=np.bool_)
    for o in range(outer):
        base = o * channels * inner
        for c in range(channels):
            if not alive[c]:
                start = base + c * inner
                for i in range(start, start + inner):
                    if x[i] > 0:
                        alive[c] = True
                        break
    return channels - int(alive.sum())


def dead_channels(flat: NDArray[Any], outer: int, channels: int, inner: int) -> int:
    """How many of the channels of `flat` ([outer, channels, inner], contiguous float32 or
    float64, non-empty) hold no positive value."""
    return int(_dead(flat, outer, channels, inner))


def reduce(
    flat: NDArray[Any],
    index: NDArray[np.int64] | None = None,
    *,
    histogram: bool = False,
    integral: bool = False,
) -> NDArray[np.float64]:
    """Statistics of a non-empty contiguous float32 or float64 array, exact, and with
    `histogram` its histogram on the stable grid: of all its values, or of those at the sorted
    positions `index`. `integral`: the values are integers (the width stays at least 1).

    A row of ROW (see NUMEL to NORM): numel and MOMENTS, then with `histogram` LO, WIDTH,
    SAMPLE and the HIST_BINS counts from COUNTS."""
    # Not an update: an empty `before`, so that both compile to one specialization per dtype.
    row: NDArray[np.float64] = _run(flat, flat[:0], index, histogram, False, integral)[0]
    return row


def reduce_update(
    after: NDArray[Any],
    before: NDArray[Any],
    index: NDArray[np.int64] | None = None,
    *,
    histogram: bool = False,
    delta_histogram: bool = False,
) -> NDArray[np.float64]:
    """`reduce` of `after` (row 0) and of the update after - before (row 1; in their dtype, as
    torch.sub gives it, never materialised), with ‖before‖₂ at [1, NORM], from one pass over
    both: each is read once. `histogram` asks for after's histogram, `delta_histogram` for the
    update's."""
    return _run(after, before, index, histogram, delta_histogram, False)


def _run(
    flat: NDArray[Any],
    before: NDArray[Any],
    index: NDArray[np.int64] | None,
    histogram: bool,
    delta_histogram: bool,
    integral: bool,
) -> NDArray[np.float64]:
    positions = _NO_INDEX if index is None or not (histogram or delta_histogram) else index
    out = np.empty((2, ROW))  # `reduce` leaves out[1] as it is
    wanted = (histogram, delta_histogram, integral)
    parts = _threads(flat.shape[0]) if flat.shape[0] >= _SPLIT else 1
    if parts == 1:
        _summary(flat, before, positions, *wanted, out)
        return out
    # Compiled apart from `_summary`, at the first large tensor: it takes as long again.
    samples = np.empty((2, positions.shape[0]), dtype=flat.dtype)
    raw = np.empty((2, 6))
    _parts(flat, before, positions, samples, parts, raw)
    _complete(flat, before, samples, positions.shape[0] > 0, *wanted, raw, out)
    return out


_SPLIT = 1 << 16
"""Elements from which a pass is split between threads: below, a second one costs more."""
_layer: list[str] = []  # numba's threading layer, once started


def _threads(n: int) -> int:
    """Threads for the pass over n values: up to torch's own count, on its OpenMP team, which
    numba's 'omp' layer shares (its GOMP calls bind to the libgomp torch loaded), each taking
    at least half `_SPLIT` values. 1 where numba's layer is another (its threads would take
    turns with torch's spinning ones) or has fewer threads than torch."""
    torch_threads = torch.get_num_threads()
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if _layer not in ([], ["omp"]) or not 2 <= torch_threads <= most:
        return 1
    parts = min(torch_threads, n // (_SPLIT // 2))
    numba.set_num_threads(parts)  # the team's size in this region, not torch's count
    if not _layer:
        # That started numba's layer, which sets torch's thread count to numba's: put it back.
        _layer.append(numba.threading_layer())  # type: ignore[attr-defined]
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
        return parts if _layer == ["omp"] else 1
    return parts
