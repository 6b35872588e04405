"""Fused reductions of tensors in host memory, compiled with numba.

PyTorch's CPU kernels need about eight passes over a tensor for its statistics (`aminmax`, `sum`,
a shifted copy, its sum, its squares, a zero count), each accumulating in the tensor's own dtype.
Here one pass gives them all, with float64 accumulators, near the speed of reading the memory once,
and copies the histogram's sample on the way, while each block is in cache.

- min and max come from the float's bits read as a sign-magnitude integer: integer min and max
  vectorize where float ones do not, and NaN and ±Inf land outside the finite keys, so the same
  numbers tell whether the fast path holds.
- The sum of squares is shifted by the first value, summed in float64. Any value lies within
  sqrt(n) standard deviations of the mean (Samuelson's inequality), so the cancellation costs at
  most a factor n of float64's precision: ~1e-9 relative for 10M elements.

The kernels compile at their first call and are cached on disk (numba's `cache=True`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numba
import numpy as np
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
"""Elements per block of a pass: 16 KiB of float32, in L1 while its sample is copied."""


# Reassociation lets the float64 sums vectorize; nothing assumes finite values.
@_compiled(fastmath={"reassoc", "contract"})
def _block(x: Any, bits: Any, magnitude: Any, sign: int, c: float) -> tuple[Any, ...]:
    """Σ(x - c), Σ(x - c)², the zero count, and the smallest and largest ordered keys."""
    s1 = 0.0
    s2 = 0.0
    zeros = 0
    low = magnitude  # past every key's extremes: NaN lies beyond ±Inf
    high = -magnitude - 1
    for i in range(x.shape[0]):
        d = np.float64(x[i]) - c
        s1 += d
        s2 += d * d
        b = bits[i]
        zeros += (b & magnitude) == 0  # +0 and -0
        key = b ^ ((b >> sign) & magnitude)  # negative floats reversed: integers in float order
        low = min(low, key)
        high = max(high, key)
    return s1, s2, zeros, low, high


@_compiled(fastmath={"reassoc", "contract"})
def _squares(y: Any) -> float:
    total = 0.0
    for i in range(y.shape[0]):
        total += np.float64(y[i]) * np.float64(y[i])
    return total


_LAYOUTS: dict[np.dtype[Any], tuple[Any, int]] = {
    np.dtype(np.float32): (np.int32(0x7FFF_FFFF), 31),
    np.dtype(np.float64): (np.int64(0x7FFF_FFFF_FFFF_FFFF), 63),
}
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
def _gather(v: Any, index: Any, first: int, out: Any) -> None:
    for q in range(index.shape[0]):
        out[q] = v[np.uint64(index[q] - first)]  # unsigned: no check for negative indices


@_compiled()
def _pass(
    x: Any,
    bits: Any,
    before: Any,
    magnitude: Any,
    sign: int,
    index: Any,
    sample: Any,
) -> tuple[float, float, int, float, float, float]:
    """Of v = x (before empty), or x - before in x's dtype (an update): Σ(v - v[0]),
    Σ(v - v[0])², the zero count, min and max (NaN if any value is NaN or ±Inf), and Σbefore²;
    block by block, copying v[index] into `sample` (sorted positions) while it is in cache.

    `bits` is x's view as integers."""
    n = x.shape[0]
    values = np.empty(_BLOCK, dtype=x.dtype)  # a block of an update
    buffer_bits = values.view(bits.dtype)
    update = before.shape[0] > 0
    c = np.float64(x[0] - before[0]) if update else np.float64(x[0])
    s1 = 0.0
    s2 = 0.0
    zeros = 0
    squares = 0.0
    low = magnitude  # past every key's extremes: NaN lies beyond ±Inf
    high = -magnitude - 1
    k = 0
    m = index.shape[0]
    for first in range(0, n, _BLOCK):
        last = min(first + _BLOCK, n)
        if not update:
            v, v_bits = x[first:last], bits[first:last]
        else:
            v, v_bits = values[: last - first], buffer_bits[: last - first]
            np.subtract(x[first:last], before[first:last], v)
            squares += _squares(before[first:last])
        a1, a2, z, lo, hi = _block(v, v_bits, magnitude, sign, c)
        s1 += a1
        s2 += a2
        zeros += z
        low = min(low, lo)
        high = max(high, hi)
        end = k
        while end < m and index[end] < last:
            end += 1
        _gather(v, index[k:end], first, sample[k:end])
        k = end
    # The keys back to values (the map is its own inverse), through a two-element buffer.
    keys = np.empty_like(buffer_bits[:2])
    keys[0] = low ^ ((low >> sign) & magnitude)
    keys[1] = high ^ ((high >> sign) & magnitude)
    extremes = keys.view(x.dtype)
    lowest, highest = np.float64(extremes[0]), np.float64(extremes[1])
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        lowest = highest = np.nan
    return s1, s2, zeros, lowest, highest, squares


_OUT = 8
"""Scalars at the head of `_summary`'s output."""


@_compiled()
def _summary(
    x: Any,
    bits: Any,
    before: Any,
    magnitude: Any,
    sign: int,
    index: Any,
    histogram: bool,
    integral: bool,
    out: Any,
) -> None:
    """`_pass`, then with `histogram` the grid and the counts, into `out` [_OUT + HIST_BINS]:
    Σ(v - v[0]), Σ(v - v[0])², zeros, min, max, Σbefore², lo, width, counts. One call per
    tensor: each call from Python costs microseconds."""
    sample = np.empty(index.shape[0], dtype=x.dtype)
    s1, s2, zeros, low, high, squares = _pass(x, bits, before, magnitude, sign, index, sample)
    out[0], out[1], out[2], out[3], out[4], out[5] = s1, s2, zeros, low, high, squares
    if histogram and not np.isnan(low):
        lo, width = _grid(low, high, integral)
        out[6], out[7] = lo, width
        # The sample holds values of v already; otherwise v is read again, while in cache.
        if index.shape[0] > 0:
            out[_OUT:] = _count(sample, before[:0], lo, width)
        else:
            out[_OUT:] = _count(x, before, lo, width)


@dataclass(frozen=True)
class Reduced:
    moments: NDArray[np.float64] | None
    """min, max, mean, std, l2 and zeros [6]; None when there is NaN or ±Inf."""
    lo: float = math.nan
    width: float = math.nan
    counts: NDArray[np.float64] | None = None
    """The histogram [HIST_BINS] on the grid (lo, width), when one was asked for."""
    before_l2: float = math.nan
    """‖before‖₂ of an update."""


def reduce(
    flat: NDArray[Any],
    index: NDArray[np.int64] | None = None,
    *,
    histogram: bool = False,
    before: NDArray[Any] | None = None,
    integral: bool = False,
) -> Reduced:
    """Statistics of a non-empty contiguous float32 or float64 array (or of its difference from
    `before`, of the same dtype and size, never materialised), exact, and with `histogram` its
    histogram on the stable grid: of all its values, or of those at the sorted positions
    `index`. `integral`: the values are integers (the width stays at least 1)."""
    magnitude, sign = _LAYOUTS[flat.dtype]
    n = flat.shape[0]
    positions = _NO_INDEX if index is None or not histogram else index
    out = np.empty(_OUT + HIST_BINS)
    bits = flat.view(magnitude.dtype)
    # Not an update: an empty `before`, so that both compile to one specialization per dtype.
    minus = flat[:0] if before is None else before
    _summary(flat, bits, minus, magnitude, sign, positions, histogram, integral, out)
    s1, s2, zeros, low, high, squares, lo, width = out[:_OUT].tolist()
    norm = math.nan if before is None else math.sqrt(squares)
    if math.isnan(low):
        return Reduced(None, before_l2=norm)
    first = float(flat[0]) if before is None else float(flat[0] - before[0])
    mean = first + s1 / n
    spread = max(s2 - s1 * s1 / n, 0.0)
    l2 = math.sqrt(max(spread + mean * mean * n, 0.0))
    moments = np.array([low, high, mean, math.sqrt(spread / n), l2, zeros])
    if not histogram:
        return Reduced(moments, before_l2=norm)
    return Reduced(moments, lo, width, out[_OUT:], norm)
