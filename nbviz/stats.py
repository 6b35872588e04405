"""Statistics and histograms of tensors, computed on the tensor's device.

Tensors in host memory take one fused pass each (`_cpu.reduce`, compiled with numba) for min,
max, mean, std, l2 and zeros, and a histogram of a fixed sample. NaN and Inf show in its exact
minimum and maximum, and only then do the slower masked passes count them. On accelerators, where
reading that answer would synchronise, the exact masked passes always run (they are cheap there);
float32 tensors are copied into the NaN-padded rows of one staging matrix and reduced together
when it fills or the batch finishes, since launching the passes tensor by tensor costs more than
they do. Tiny tensors (up to 4,096 elements) are concatenated in float64 and reduced by segment,
a fixed number of kernels for all of them.

`StatsBatch` splits the work in two: `add` reduces each tensor at once and keeps only small
results (a host tensor's whole row; a device tensor's statistics and a copy of its histogram's
sample), `finish` computes the device grids and histograms left and copies everything to the host
in one go per device. Capture adds all the tensors of a training step and finishes once per step.

Histograms use a stable grid: `HIST_BINS` bins of a power-of-two width, aligned to a multiple of
that width, so histograms of a tensor at different steps or ranks can be compared and merged. The
grid always comes from the exact minimum and maximum, even when the counts come from a sample.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from . import _reduce as r
from ._protocol import HIST_BINS, STAT_FIELDS

MAX_SAMPLE = 16384
"""Histograms of tensors larger than this are counted from a fixed sample of this many elements.

A bin's share of such a sample is within 1/(2·sqrt(16384)) = 0.4% of the counts (one standard
error) of the tensor's; the same positions are sampled at every step, so steps differ only where
the values did. A larger sample costs the CPU more than every other statistic together."""

_TINY = 1 << 12
"""Tensors up to this size are copied and reduced together by segment at `finish`."""

# Device rows are built in this order; the protocol must agree.
_DEVICE_ORDER = ("min", "max", "mean", "std", "l2", "zeros", "nan", "posinf", "neginf")
if STAT_FIELDS[0] != "numel" or STAT_FIELDS[1:] != _DEVICE_ORDER:
    raise ImportError(f"nbviz.stats builds rows as {_DEVICE_ORDER}, not {STAT_FIELDS[1:]}")

_CPU = torch.device("cpu")
_HOST_FLOATS = (torch.float32, torch.float64)

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
# Sample values binned by segment in one go on an accelerator: bounds its float64 copy (32 MiB).
_BIN_ELEMENTS = 1 << 22
# Accelerators: float32 tensors are staged in rows of this length of one matrix (64 MiB).
_STAGE_ROW = 1 << 14
_STAGE_ROWS = 1 << 10


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


def summarize_batch(
    tensors: Sequence[torch.Tensor | None],
    *,
    histograms: bool = True,
    extras: Sequence[torch.Tensor] = (),
    max_sample: int = MAX_SAMPLE,
) -> tuple[Summaries, NDArray[np.float64]]:
    """`summarize`, optionally without histograms, also returning the values of `extras`.

    With `histograms=False` no histogram is counted: counts are zero, lo and width NaN and sample
    0. `extras` are one-element tensors (diagnostics computed on the device by the caller) copied
    to the host with the statistics.
    """
    batch = StatsBatch(max_sample=max_sample)
    batch.add(tensors, histograms=histograms, extras=extras)
    return batch.finish()


@dataclass(slots=True)
class _Entry:
    """One added tensor: what `finish` still needs of it. Never the tensor itself."""

    row: NDArray[np.float64]
    """Its host row: numel and sample known at `add`; all of it when `device` is None."""
    device: torch.device | None = None
    integral: bool = False
    histogram: bool = False
    tiny: torch.Tensor | None = None
    """A float64 copy of a tiny tensor, reduced by segment at `finish`."""
    stats: torch.Tensor | None = None
    """Device statistics [9] (STAT_FIELDS without numel)."""
    values: torch.Tensor | None = None
    """A copy of what its histogram counts (at most `MAX_SAMPLE` elements), binned at `finish`."""
    binned: torch.Tensor | None = None
    """lo, width and counts [2 + HIST_BINS] of a histogram too large to keep its values."""
    same_as: int | None = None
    """An earlier entry of the same tensor, unchanged since: its row is this one's."""


@dataclass(slots=True)
class _Measured:
    """A tensor already added to the batch, held weakly."""

    tensor: weakref.ref[torch.Tensor]
    version: int
    histograms: bool
    entry: int


class StatsBatch:
    """Summaries of many tensors in two phases, with one host copy per device in all.

    `add` runs each tensor's full-size reductions at once and keeps no reference to it (a later
    in-place op cannot change what was measured); `finish` does what remains for everything added:
    the grids, the histograms of the kept samples, and the host copy.

    Args:
        max_sample: histograms of larger tensors count a fixed sample of this many elements.
        masked: the exact masked passes (NaN/Inf counted with no host read) on the CPU too,
            instead of the fused host pass; accelerators always take them.
    """

    def __init__(self, *, max_sample: int = MAX_SAMPLE, masked: bool = False) -> None:
        if max_sample < 1:
            raise ValueError(f"max_sample must be at least 1, not {max_sample}")
        self.max_sample = max_sample
        self._masked = masked
        self._entries: list[_Entry] = []
        self._measured: dict[int, _Measured] = {}  # by id()
        self._extras: list[torch.Tensor] = []
        self._staging: dict[torch.device, _Staging] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(
        self,
        tensors: Sequence[torch.Tensor | None],
        *,
        histograms: bool = True,
        extras: Sequence[torch.Tensor] = (),
    ) -> tuple[int, int]:
        """Reduces `tensors` now; returns where their rows and `extras` start in `finish`."""
        first = (len(self._entries), len(self._extras))
        # Every path reads a detached tensor: no autograd to switch off (it costs 1.5 µs a call).
        for t in tensors:  # a DTensor: its local shard (numel included)
            if t is None:
                self._entries.append(self._entry(None, histograms))
            else:
                self._entries.append(self._entry_once(r.local(t), histograms))
        self._extras += [r.local(e).detach().reshape(1).double() for e in extras]
        return first

    def _entry_once(self, t: torch.Tensor, histograms: bool) -> _Entry:
        """`_entry`, or a reference to the entry of the same tensor added earlier and not
        changed since (its version counter tells): a container's output is its last child's,
        and their gradient hooks see one gradient."""
        seen = self._measured.get(id(t))
        if (
            seen is not None
            and seen.tensor() is t
            and seen.version == t._version
            and seen.histograms == histograms
        ):
            # Its row is filled from the earlier one's at `finish`.
            return _Entry(self._entries[seen.entry].row, same_as=seen.entry)
        entry = self._entry(t, histograms)
        self._measured[id(t)] = _Measured(
            weakref.ref(t), t._version, histograms, len(self._entries)
        )
        return entry

    def add_updates(
        self,
        after: Sequence[torch.Tensor],
        before: Sequence[torch.Tensor],
        *,
        histograms: bool,
        weights: bool = False,
    ) -> tuple[int, int]:
        """Rows of the updates after[i] - before[i], and extras ‖before[i]‖₂ (after any extras
        already added); returns where both start. With `weights`, the rows of after[i]
        themselves come first (then the updates'), from the same pass on the host: each tensor
        is read once. `before` holds copies, which may be overwritten: on the host the
        difference is never materialised, elsewhere it is computed in place. Half-precision
        `after` is widened to `before`'s float32."""
        first = (len(self._entries), len(self._extras))
        measured: list[_Entry] = []
        updates: list[_Entry] = []
        with torch.no_grad():
            for a, b in zip(after, before, strict=True):
                a = r.local(a).detach().to(b.dtype)
                if self._on_host(b) and b.dtype in _HOST_FLOATS:
                    weight, update, norm = self._host_update(a, b, histograms, weights)
                    measured += [weight] if weight is not None else []
                    updates.append(update)
                    self._extras.append(torch.tensor([norm], dtype=torch.float64))
                else:
                    measured += [self._entry(a, histograms)] if weights else []
                    self._extras.append(torch.linalg.vector_norm(b).double().reshape(1))
                    updates.append(self._entry(torch.sub(a, b, out=b), histograms))
        self._entries += measured + updates
        return first

    def finish(self) -> tuple[Summaries, NDArray[np.float64]]:
        """Summaries of every tensor added, in order, and the extras' values; then starts over."""
        entries, extras = self._entries, self._extras
        self._entries, self._extras, self._measured = [], [], {}
        with torch.no_grad():
            for staging in self._staging.values():
                staging.flush()
        rows = np.stack([e.row for e in entries]) if entries else np.zeros((0, _ROW))
        values = np.full(len(extras), np.nan)
        pending: dict[torch.device, list[int]] = {}
        for i, entry in enumerate(entries):
            if entry.device is not None:
                pending.setdefault(entry.device, []).append(i)
        extra_at: dict[torch.device, list[int]] = {}
        for k, extra in enumerate(extras):
            extra_at.setdefault(extra.device, []).append(k)
        with torch.no_grad():
            for device in {*pending, *extra_at}:
                order, blocks = _device_rows([entries[i] for i in pending.get(device, [])])
                indices = [pending[device][k] for k in order]
                parts = [b.reshape(-1) for b in blocks] + [
                    extras[k] for k in extra_at.get(device, [])
                ]
                host = torch.cat(parts).cpu().numpy()  # the one copy of this device
                device_rows = host[: len(indices) * _DEVICE_ROW].reshape(-1, _DEVICE_ROW)
                for i, device_row in zip(indices, device_rows, strict=True):
                    _fill_row(rows[i], device_row, entries[i].histogram)
                values[extra_at.get(device, [])] = host[len(indices) * _DEVICE_ROW :]
        for i, entry in enumerate(entries):
            if entry.same_as is not None:  # in order: an earlier repeat is already filled
                rows[i] = rows[entry.same_as]
        return _summaries(rows), values

    def _entry(self, t: torch.Tensor | None, histograms: bool) -> _Entry:
        if t is None or _has_no_values(t):
            return _Entry(_absent_row())
        n = t.numel()
        if n == 0:
            return _Entry(self._new_row(n, histograms))
        if t.dtype in _HOST_FLOATS and self._on_host(t):  # the common case, without `prepare`
            return self._host_entry(t.detach().numpy().reshape(-1), False, histograms)
        p = r.prepare(t)
        if self._on_host(p.flat):
            return self._host_entry(p.flat.numpy(), p.integral, histograms)
        entry = _Entry(self._new_row(n, histograms), p.flat.device, p.integral, histograms)
        if n <= _TINY:
            entry.tiny = p.flat.to(torch.float64, copy=True)
            return entry
        staged = p.flat.dtype == torch.float32 and n <= _STAGE_ROW * _STAGE_ROWS
        if staged and (not histograms or min(n, self.max_sample) <= MAX_SAMPLE):
            if histograms:
                entry.values = (
                    p.flat.clone() if n <= self.max_sample else _sampled(p.flat, self.max_sample)
                )
            self._staging_for(p.flat.device).add(entry, p.flat)  # its stats come at a flush
            return entry
        entry.stats = r.masked_moments(p.flat)
        if histograms:
            sample = p.flat if n <= self.max_sample else _sampled(p.flat, self.max_sample)
            if sample.numel() <= MAX_SAMPLE:
                entry.values = sample.clone() if sample is p.flat else sample
            else:  # an exact histogram of a large tensor: binned now rather than copied
                integral = torch.full((), p.integral, device=p.flat.device)
                lo, width = r.grid(entry.stats[0], entry.stats[1], integral)
                counts = r.bin_values(sample, lo, width)
                entry.binned = torch.cat([torch.stack([lo, width]), counts])
        return entry

    def _new_row(self, n: int, histograms: bool) -> NDArray[np.float64]:
        """The host row of a tensor of n values before its reduction: all of it when n is 0."""
        if n == 0:
            row = _empty_row()
            if not histograms:
                _drop_histogram(row)
            return row
        row = np.zeros(_ROW)
        row[0] = n
        row[_SAMPLE] = min(n, self.max_sample) if histograms else 0
        return row

    def _on_host(self, t: torch.Tensor) -> bool:
        """Whether `t` takes the fused host pass: a plain tensor in host memory, unless masked."""
        return t.is_cpu and not self._masked and type(t) is torch.Tensor

    def _host_update(
        self, after: torch.Tensor, before: torch.Tensor, histograms: bool, weights: bool
    ) -> tuple[_Entry | None, _Entry, float]:
        """With `weights` the entry of after, then that of after - before, and ‖before‖₂: one
        fused host pass over both."""
        n = before.numel()
        if n == 0:
            row = self._new_row(0, histograms)
            return (_Entry(row.copy()) if weights else None), _Entry(row), 0.0
        from . import _cpu  # numba: imported at the first host tensor, not with nbviz

        x = after.numpy().reshape(-1)
        y = before.numpy().reshape(-1)
        out = _cpu.reduce_update(
            x,
            y,
            self._sample(n, histograms),
            histogram=histograms and weights,
            delta_histogram=histograms,
        )
        measured = None
        if weights and math.isnan(out[0, _MIN]):  # NaN or Inf: the masked passes count them
            measured = self._entry(after, histograms)
        elif weights:
            measured = _Entry(out[0, :_ROW])
        norm = float(out[1, _cpu.NORM])
        if math.isnan(out[1, _MIN]):
            return measured, self._entry(torch.sub(after, before, out=before), histograms), norm
        return measured, _Entry(out[1, :_ROW]), norm

    def _sample(self, n: int, histograms: bool) -> NDArray[np.int64] | None:
        """The sorted positions a histogram of n values counts, or None for all of them."""
        if not histograms or n <= self.max_sample:
            return None
        return _host_sample(n, self.max_sample)

    def _host_entry(self, flat: NDArray[Any], integral: bool, histograms: bool) -> _Entry:
        """A tensor's values in host memory (flat, contiguous): one fused pass (`_cpu.reduce`)
        for its statistics and its histogram's values, straight into its row; the masked passes
        only where NaN or Inf turns up."""
        from . import _cpu

        n = flat.shape[0]
        sample = self._sample(n, histograms)
        row = _cpu.reduce(flat, sample, histogram=histograms, integral=integral)
        if math.isnan(row[_MIN]):  # the masked passes count the NaN and Inf
            values = r.Prepared(torch.from_numpy(flat), integral)
            full = _exact_row(values, min(n, self.max_sample), self.max_sample)
            if not histograms:
                _drop_histogram(full)
            return _Entry(full)
        return _Entry(row[:_ROW])

    def _staging_for(self, device: torch.device) -> _Staging:
        staging = self._staging.get(device)
        if staging is None:
            staging = self._staging[device] = _Staging(device)
        return staging


class _Staging:
    """Float32 tensors of one accelerator copied into consecutive NaN-padded rows of one matrix,
    and reduced together when it fills or the batch finishes.

    One by one, the masked passes cost a few dozen kernel launches per tensor, which on an
    accelerator take longer than the device's work; staged, a fixed number for all of them.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.matrix: torch.Tensor | None = None
        self.used = 0
        self.waiting: list[tuple[_Entry, int, int]] = []  # entry, rows, numel

    def add(self, entry: _Entry, flat: torch.Tensor) -> None:
        n = flat.numel()
        rows = -(-n // _STAGE_ROW)
        if self.used + rows > _STAGE_ROWS:
            self.flush()
        if self.matrix is None:
            self.matrix = torch.empty(
                _STAGE_ROWS, _STAGE_ROW, dtype=torch.float32, device=self.device
            )
        block = self.matrix[self.used : self.used + rows].view(-1)
        block[:n].copy_(flat)
        if n < block.numel():
            block[n:].fill_(math.nan)
        self.used += rows
        self.waiting.append((entry, rows, n))

    def flush(self) -> None:
        if self.matrix is None or not self.waiting:
            return
        rows = [k for _, k, _ in self.waiting]
        sizes = [n for _, _, n in self.waiting]
        stats = r.staged_moments(self.matrix[: self.used], rows, sizes)
        for (entry, _, _), row in zip(self.waiting, stats, strict=True):
            entry.stats = row
        self.used, self.waiting = 0, []


@functools.lru_cache(maxsize=64)
def _host_sample(numel: int, size: int) -> NDArray[np.int64]:
    """`r.sample_indices` in host memory, as the host pass takes them."""
    positions: NDArray[np.int64] = r.sample_indices(numel, size, _CPU).numpy()
    return positions


def _sampled(flat: torch.Tensor, size: int) -> torch.Tensor:
    """The fixed sample's values (a copy); index_select, not x[idx]: advanced indexing costs
    several times more here."""
    return flat.index_select(0, r.sample_indices(flat.numel(), size, flat.device))


def _device_rows(entries: list[_Entry]) -> tuple[list[int], list[torch.Tensor]]:
    """Device rows [k, _DEVICE_ROW] of entries on one device, in blocks; `order[j]` is the entry
    of the j-th row over all blocks."""
    tiny = [k for k, e in enumerate(entries) if e.tiny is not None]
    done = [k for k, e in enumerate(entries) if e.stats is not None]
    blocks = []
    if tiny:
        flats = [f for k in tiny if (f := entries[k].tiny) is not None]
        blocks.append(r.segment_rows(flats, [entries[k].integral for k in tiny]))
    if done:
        block = torch.stack([t for k in done if (t := entries[k].stats) is not None])
        blocks.append(torch.cat([block, _histograms([entries[k] for k in done], block)], 1))
    return tiny + done, blocks


def _histograms(entries: list[_Entry], stats: torch.Tensor) -> torch.Tensor:
    """lo, width and counts [k, 2 + HIST_BINS] of large entries; NaN where none is wanted."""
    out = stats.new_full((len(entries), 2 + HIST_BINS), math.nan)
    device = stats.device
    kept = [k for k, e in enumerate(entries) if e.values is not None]
    if kept:
        index = r.host_vector(kept, torch.int64, device)
        integral = r.host_vector([entries[k].integral for k in kept], torch.bool, device)
        lo, width = r.grid(stats[index, 0], stats[index, 1], integral)
        counts = _bin_samples([entries[k].values for k in kept], lo, width)
        out[index] = torch.cat([lo[:, None], width[:, None], counts], 1)
    binned = [k for k, e in enumerate(entries) if e.binned is not None]
    if binned:
        index = r.host_vector(binned, torch.int64, device)
        out[index] = torch.stack([t for k in binned if (t := entries[k].binned) is not None])
    return out


def _bin_samples(
    samples: list[torch.Tensor | None], lo: torch.Tensor, width: torch.Tensor
) -> torch.Tensor:
    """Counts [k, HIST_BINS] of device samples, concatenated and binned by segment (no padding
    copies) in float64 groups of up to `_BIN_ELEMENTS`."""
    out = lo.new_zeros(len(samples), HIST_BINS)
    groups: list[list[tuple[int, torch.Tensor]]] = [[]]
    size = 0
    for k, sample in enumerate(samples):
        if sample is None:
            continue
        if groups[-1] and size + sample.numel() > _BIN_ELEMENTS:
            groups.append([])
            size = 0
        groups[-1].append((k, sample))
        size += sample.numel()
    device = lo.device
    for group in filter(None, groups):
        index = r.host_vector([k for k, _ in group], torch.int64, device)
        segment = r.segment_ids([s.numel() for _, s in group], device)
        values = torch.cat([s for _, s in group]).to(torch.float64)
        out[index] = r.bin_segments(values, segment, lo[index], width[index])
    return out


def _fill_row(row: NDArray[np.float64], device_row: NDArray[np.float64], histogram: bool) -> None:
    """Copies a device row into a host row, leaving numel and sample as they are."""
    row[_MIN:_NSTATS] = device_row[:_DEVICE_STATS]
    if not histogram:
        _drop_histogram(row)
    elif np.isnan(device_row[0]):  # nothing finite to count
        row[_LO], row[_WIDTH], row[_SAMPLE] = 0.0, 1.0, 0
        row[_COUNTS:] = 0
    else:
        row[_LO:_SAMPLE] = device_row[_DEVICE_STATS : _DEVICE_STATS + 2]
        row[_COUNTS:] = device_row[_DEVICE_STATS + 2 :]


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


def _drop_histogram(row: NDArray[np.float64]) -> None:
    row[_LO] = row[_WIDTH] = np.nan
    row[_SAMPLE] = 0
    row[_COUNTS:] = 0


def _exact_row(p: r.Prepared, sample: int, max_sample: int) -> NDArray[np.float64]:
    """Exact NaN/Inf counts and statistics of the finite values, squares summed in float64:
    several passes, for the rare tensor the fast path cannot take."""
    flat = p.flat
    n = flat.numel()
    row = np.zeros(_ROW)
    row[0] = n
    stats = r.masked_moments(flat)
    if not torch.isnan(stats[0]):
        # The histogram counts the same positions as the fast path would: the sample is fixed.
        values = flat if sample == n else _sampled(flat, max_sample)
        integral = torch.full((), p.integral, device=flat.device)
        lo, width = r.grid(stats[0], stats[1], integral)
        counts = r.bin_values(values, lo, width)
        host = torch.cat([stats, lo[None], width[None], counts]).cpu().numpy()  # one copy
        row[_MIN:_NSTATS] = host[:_DEVICE_STATS]
        row[_LO:_SAMPLE] = host[_DEVICE_STATS : _DEVICE_STATS + 2]
        row[_SAMPLE] = sample
        row[_COUNTS:] = host[_DEVICE_STATS + 2 :]
    else:
        row[_MIN:_NSTATS] = stats.cpu().numpy()
        row[_WIDTH] = 1.0
    return row


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
