"""Device reductions behind `nbviz.stats`: moments, the stable grid and binning.

Everything here runs on the tensor's device and returns device tensors; nothing copies to the host.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass

import torch

from ._protocol import HIST_BINS

BIN_BITS = HIST_BINS.bit_length() - 1
if 1 << BIN_BITS != HIST_BINS:
    raise ImportError(f"HIST_BINS must be a power of two, not {HIST_BINS}")

# Values binned per pass by `bin_values`: bounds its float64 scratch (128 MiB).
_BIN_CHUNK = 1 << 24

# Normal float64 powers of two; a grid of subnormal width would only serve subnormal spans.
_MIN_EXPONENT, _MAX_EXPONENT = -1022, 1023

_SEED = 0x6E62_7669  # the same sample at every step, so that histograms stay comparable


@dataclass
class Prepared:
    """A tensor ready to reduce: flat, real, float32 or float64."""

    flat: torch.Tensor
    integral: bool
    """Integer or bool values: the grid width never drops below 1."""


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a `DTensor` (an FSDP2 parameter, its gradient): its local shard, a
    plain tensor that the reductions can mix with others; any other tensor unchanged.

    Each rank then summarises its own shard and the distributed merge adds the shards up. No
    DTensor exists unless torch.distributed.tensor was imported, so nothing is imported here.
    """
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is not None and isinstance(t, dtensor.DTensor):
        shard: torch.Tensor = t.to_local()
        return shard
    return t


def prepare(t: torch.Tensor) -> Prepared:
    x = local(t).detach()
    if x.is_complex():
        x = x.abs()
    integral = not x.is_floating_point()
    if integral:
        x = x.to(torch.float64)  # exact below 2**53; bool and ints share one path
    elif x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)  # half precision loses too much in reductions
    return Prepared(x.reshape(-1), integral)


@functools.lru_cache(maxsize=64)
def sample_indices(numel: int, size: int, device: torch.device) -> torch.Tensor:
    """A fixed sample (with replacement) of positions, the same at every call."""
    generator = torch.Generator().manual_seed(_SEED)  # private: the global RNG is left alone
    indices = torch.randint(numel, (size,), generator=generator)
    return indices.sort().values.to(device)  # sorted, so that the gather reads memory in order


def host_vector(
    values: list[int] | list[bool], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    # Non-blocking: a host-to-device copy from pageable memory is staged and never waits on the
    # device, where a blocking one would synchronise the stream.
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


def segment_ids(sizes: list[int], device: torch.device) -> torch.Tensor:
    """[sum(sizes)] int64: i repeated sizes[i] times, on `device`, with no host read."""
    # output_size: otherwise repeat_interleave copies the sizes back to the host.
    return torch.repeat_interleave(
        torch.arange(len(sizes), device=device),
        host_vector(sizes, torch.int64, device),
        output_size=sum(sizes),
    )


def grid(
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
    k = (torch.frexp(half).exponent + (1 - BIN_BITS)).double().clamp(min=_MIN_EXPONENT)
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


def bincount(index: torch.Tensor, size: int) -> torch.Tensor:
    if index.device.type == "cpu":
        return torch.bincount(index, minlength=size).double()
    # Off the CPU bincount copies its min and max to the host; scatter_add never waits (and
    # adds integers: their atomics are cheaper than float64's).
    ones = torch.ones_like(index)
    return ones.new_zeros(size).scatter_add_(0, index, ones).double()


def segment_rows(flats: list[torch.Tensor], integral: list[bool]) -> torch.Tensor:
    """Device rows [m, 9 + 2 + HIST_BINS] of tiny float64 tensors: statistics (STAT_FIELDS
    without numel), lo, width and counts, exact, with a fixed number of kernels in all.

    The tensors are concatenated and reduced by segment (`index_add_`, `scatter_reduce_`): NaN
    and Inf are counted and left out of the other statistics.
    """
    device = flats[0].device
    m = len(flats)
    segment = segment_ids([f.numel() for f in flats], device)
    x = torch.cat(flats)
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
    lo, width = grid(low, high, host_vector(integral, torch.bool, device))
    lo = torch.where(some, lo, 0.0)
    width = torch.where(some, width, 1.0)
    counts = bin_segments(x, segment, lo, width)
    return torch.cat([stats, lo[:, None], width[:, None], counts], 1)


def masked_moments(flat: torch.Tensor) -> torch.Tensor:
    """min, max, mean, std, l2 of the finite values, then zero, NaN, +Inf, −Inf counts: float64
    [9], exact whatever the values, with no host copy: `staged_moments` of one row.

    For accelerators, where these extra passes are cheap and checking for NaN first would
    synchronise; on the CPU they cost 20-40x a read and the fast path checks instead.
    """
    return staged_moments(flat[None], [1], [flat.numel()])[0]


def staged_moments(matrix: torch.Tensor, rows: list[int], sizes: list[int]) -> torch.Tensor:
    """`masked_moments` [m, 9] of m tensors laid out in consecutive rows of `matrix`, all at
    once: tensor i fills `rows[i]` rows, of which its first `sizes[i]` values are real and the
    rest NaN padding. Row sums, then sums of rows by tensor: no atomics on long segments.
    """
    f64 = torch.float64
    m, device = len(rows), matrix.device
    segment = segment_ids(rows, device)

    def by_tensor(per_row: torch.Tensor) -> torch.Tensor:
        return _segment_sum(per_row.to(f64), segment, m)

    finite = matrix.isfinite()
    count = by_tensor(finite.sum(1, dtype=f64))
    total = by_tensor(torch.where(finite, matrix, 0).sum(1, dtype=f64))
    shift = (total / count.clamp(min=1)).to(matrix.dtype)[segment, None]
    deviation = torch.where(finite, matrix - shift, 0)
    residual = by_tensor(deviation.sum(1, dtype=f64))
    squares = by_tensor(torch.linalg.vector_norm(deviation, dim=1, dtype=f64).square())
    spread = (squares - residual.square() / count).clamp(min=0)
    low = _segment_extreme(
        torch.where(finite, matrix, math.inf).amin(1).double(), segment, m, "amin"
    )
    high = _segment_extreme(
        torch.where(finite, matrix, -math.inf).amax(1).double(), segment, m, "amax"
    )
    mean = total / count
    l2 = (spread + total * mean).clamp(min=0).sqrt()
    moments = torch.stack([low, high, mean, (spread / count).sqrt(), l2], 1)
    moments = torch.where((count > 0)[:, None], moments, math.nan)
    masks = (matrix == 0, matrix.isnan(), matrix.isposinf(), matrix.isneginf())
    tallies = torch.stack([by_tensor(mask.sum(1, dtype=f64)) for mask in masks], 1)
    padding = [k * matrix.shape[1] - n for k, n in zip(rows, sizes, strict=True)]
    tallies[:, 1] -= host_vector(padding, torch.int64, device)
    return torch.cat([moments, tallies], 1)


def _segment_sum(values: torch.Tensor, segment: torch.Tensor, m: int) -> torch.Tensor:
    return values.new_zeros((m, *values.shape[1:])).index_add_(0, segment, values)


def _segment_extreme(values: torch.Tensor, segment: torch.Tensor, m: int, how: str) -> torch.Tensor:
    start = math.inf if how == "amin" else -math.inf
    return values.new_full((m,), start).scatter_reduce_(0, segment, values, how)


def bin_values(values: torch.Tensor, lo: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Counts of the 1-D `values` on one grid, float64 [HIST_BINS]; non-finite values dropped."""
    counts = values.new_zeros(HIST_BINS, dtype=torch.float64)
    for part in torch.split(values, _BIN_CHUNK):
        counts += bin_segments(part.double(), None, lo[None], width[None])[0]
    return counts


def bin_segments(
    x: torch.Tensor, segment: torch.Tensor | None, lo: torch.Tensor, width: torch.Tensor
) -> torch.Tensor:
    """Counts of each segment of the float64 `x` on its own grid: [m, HIST_BINS]. Without
    `segment`, all of `x` is one segment."""
    m = lo.shape[0]
    base = torch.floor(lo / width)
    # Dividing by a power of two is exact, so the bins are exact and x - lo cannot overflow.
    if segment is None:
        position = torch.div(x, width).floor_().sub_(base)
    else:
        position = torch.div(x, width[segment]).floor_().sub_(base[segment])
    discard = float(HIST_BINS)  # non-finite values land past the end of their row
    # The clamp only keeps a garbage grid (of a tensor bound for the slow path) in bounds.
    position.nan_to_num_(nan=discard, posinf=discard, neginf=discard).clamp_(0, discard)
    if segment is not None:
        position += segment.to(position.dtype) * (HIST_BINS + 1)
    counts = bincount(position.long(), m * (HIST_BINS + 1))
    return counts.view(m, HIST_BINS + 1)[:, :HIST_BINS]
