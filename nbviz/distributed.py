"""Recording under torch.distributed: every rank captures, rank 0 writes the merged run.

`DistributedSink` sits between capture and the run store on every rank. It keeps what its
rank's capture hands it until the training step ends, then exchanges it through
torch.distributed itself (two or three `all_gather`s of tensors, no pickling, no side channel)
and rank 0 writes, per series and step, the merged record (exactly what one process would have
recorded of the ranks' tensors concatenated, see `nbviz._merge`) and, for data that differs
between ranks, each rank's own record as the series of mode ``"train@rank1"`` and so on.
Why rank 0 writes rather than one shard per rank: see docs/distributed.md.

What differs between ranks: activations and their gradients (each rank sees its own batch), and
parameters when they are sharded (FSDP2: `sharded_params=True`, detected by `nbviz.watch` from
DTensor parameters; each rank summarises its local shards). DDP's parameters, gradients (after
its all-reduce) and updates are the same on every rank: rank 0's are written.

Eval forwards (validation, often run on rank 0 alone) never start a collective: they are kept
until the next training step ends, which every rank reaches, and merged over the ranks that
ran them. A step cut short by `close()` is not written: merging it would need every rank.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import torch
import torch.distributed as dist
from numpy.typing import NDArray
from torch import nn

from ._merge import ROW, merge_rows, replicated, row_histogram, to_row
from .records import (
    PHASE_OF_KIND,
    RECORD_FIELDS,
    Anomaly,
    RecordSink,
    SeriesKey,
    StatRecord,
    StepRecord,
)

__all__ = ["DistributedSink", "active_world", "rank_mode"]

_REPLICATED_KINDS: Final = frozenset({"weight", "grad", "update"})
_NONFINITE: Final = [RECORD_FIELDS.index(n) for n in ("nan", "posinf", "neginf")]


def active_world(group: Any = None) -> tuple[int, int] | None:
    """(rank, world size) when a process group of two or more processes is running, else None."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    size = dist.get_world_size(group)
    return None if size < 2 else (dist.get_rank(group), size)


def rank_mode(mode: str, rank: int) -> str:
    """The mode of one rank's own series: ``"train@rank1"``."""
    return f"{mode}@rank{rank}"


@dataclass
class _Keys:
    """This rank's keys in the order of its rows, their encoding and its hash."""

    keys: list[tuple[SeriesKey, str]] = field(default_factory=list)
    encoded: bytes = b"[]"
    digest: int = 0


def has_sharded_params(model: nn.Module) -> bool:
    """Whether a parameter is a `DTensor` sharded across ranks (FSDP2's `fully_shard`): each rank
    then summarises its own shard, and the shards' records are merged. A replicated DTensor does
    not count (its local part is the whole tensor). Nothing is imported to tell: no DTensor exists
    before torch.distributed.tensor is."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is None:
        return False
    return any(
        isinstance(p, dtensor.DTensor) and any(pl.is_shard() for pl in p.placements)
        for p in model.parameters()
    )


class DistributedSink:
    """A `RecordSink` for one rank: merges through torch.distributed, rank 0 writes to `sink`.

    Args:
        sink: where rank 0 writes (a `RunWriter`); None on the other ranks.
        group: the process group (default: the world).
        sharded_params: parameters are sharded across ranks (FSDP) rather than replicated (DDP):
            their records are merged like activations.
        per_rank: also write each rank's own records of the data that differs between ranks.
    """

    def __init__(
        self,
        sink: RecordSink | None,
        *,
        group: Any = None,
        sharded_params: bool = False,
        per_rank: bool = True,
    ) -> None:
        world = active_world(group)
        if world is None:
            raise RuntimeError("DistributedSink needs a torch.distributed group of 2+ processes")
        self.rank, self.world_size = world
        if (self.rank == 0) != (sink is not None):
            raise ValueError("rank 0, and only rank 0, is given the sink it writes to")
        self.sink = sink
        self.group = group
        self.per_rank = per_rank
        self._replicated = frozenset() if sharded_params else _REPLICATED_KINDS
        self._records: list[StatRecord] = []
        self._eval_step = -1  # the step of an eval pass kept for the next exchange
        self._reported: set[SeriesKey] = set()  # series with an anomaly already written
        self._keys = _Keys()
        self.closed = False
        # NCCL moves only CUDA tensors; gloo (and others) host ones. The rows are small: the
        # copies cost less than the collective.
        nccl = "nccl" in str(dist.get_backend(group)).lower()
        self._device = torch.device("cuda", torch.cuda.current_device()) if nccl else None

    # RecordSink

    def add(self, records: list[StatRecord]) -> None:
        self._records += records

    def add_anomaly(self, anomaly: Anomaly) -> None:
        """Dropped: rank 0 finds anomalies again in the merged records, with their ranks."""

    def end_step(self, step: StepRecord) -> None:
        if self.closed:
            return
        if step.mode != "train":
            self._eval_step = step.step  # no collective here: eval may run on one rank alone
            return
        records, self._records = self._records, []
        eval_step, self._eval_step = self._eval_step, -1
        try:
            merged = self._exchange(records, eval_step)
        except BaseException:
            self.close()  # what earlier steps committed stays whole: each step is one commit
            raise
        if self.sink is None or merged is None:
            return
        rows, ranks_eval = merged
        if rows:
            self.sink.add(rows)
        for record in rows:
            self._check_finite(record)
        if ranks_eval >= 0:
            self.sink.end_step(StepRecord(ranks_eval, "eval", wall_time=step.wall_time))
        self.sink.end_step(step)

    def close(self) -> None:
        """Drops a step not yet exchanged; never starts a collective (a peer may be gone)."""
        self.closed = True
        self._records = []

    # The exchange.

    def _exchange(
        self, records: list[StatRecord], eval_step: int
    ) -> tuple[list[StatRecord], int] | None:
        keys = self._key_table(records)
        header = torch.tensor(
            [len(records), keys.digest, eval_step, len(keys.encoded)], dtype=torch.int64
        )
        headers = self._gather(header).numpy()
        same = bool((headers[:, 1] == headers[0, 1]).all())
        if not headers[:, 0].any():  # a step between captured ones: nothing more to exchange
            return None if self.sink is None else ([], int(headers[:, 2].max()))
        tables = [keys.keys] * self.world_size if same else self._gather_keys(keys, headers)
        rows = np.zeros((int(headers[:, 0].max()), ROW + 1))  # a row, then the step
        for i, record in enumerate(records):
            rows[i, :ROW] = to_row(record)
            rows[i, ROW] = record.step
        gathered = self._gather(torch.from_numpy(rows)).numpy()
        if self.sink is None:
            return None
        eval_steps = headers[:, 2]
        return self._merge(tables, gathered), int(eval_steps.max())

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's `tensor`, stacked, on the host."""
        if self._device is not None:
            tensor = tensor.to(self._device)
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(out, tensor.contiguous(), group=self.group)
        return torch.stack(out).cpu()

    def _key_table(self, records: list[StatRecord]) -> _Keys:
        keys = [(r.key, r.dtype) for r in records]
        if keys != self._keys.keys:  # the same keys step after step: encoded once
            encoded = json.dumps([[*_fields(k), d] for k, d in keys]).encode()
            digest = int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "little")
            self._keys = _Keys(keys, encoded, digest >> 1)  # a non-negative int64
        return self._keys

    def _gather_keys(
        self, keys: _Keys, headers: NDArray[np.int64]
    ) -> list[list[tuple[SeriesKey, str]]]:
        """Every rank's keys, when they differ: their JSON as byte tensors of one length."""
        size = int(headers[:, 3].max())
        mine = torch.zeros(size, dtype=torch.uint8)
        mine[: len(keys.encoded)] = torch.frombuffer(bytearray(keys.encoded), dtype=torch.uint8)
        gathered = self._gather(mine).numpy()
        return [
            [
                (SeriesKey(*fields[:5]), str(fields[5]))
                for fields in json.loads(gathered[r, : headers[r, 3]].tobytes())
            ]
            for r in range(self.world_size)
        ]

    # Merging, on rank 0.

    def _merge(
        self, tables: Sequence[list[tuple[SeriesKey, str]]], gathered: NDArray[np.float64]
    ) -> list[StatRecord]:
        where: dict[SeriesKey, list[tuple[int, int]]] = {}
        dtypes: dict[SeriesKey, str] = {}
        for rank, table in enumerate(tables):
            for i, (key, dtype) in enumerate(table):
                where.setdefault(key, []).append((rank, i))
                dtypes.setdefault(key, dtype)
        out: list[StatRecord] = []
        for key, places in where.items():
            rows = np.stack([gathered[r, i, :ROW] for r, i in places])
            step = int(gathered[places[0][0], places[0][1], ROW])
            ranks = [r for r, _ in places]
            if key.kind in self._replicated:
                merged = replicated(rows)
            else:
                present = rows[:, 0] > 0  # ranks with no values (an empty shard) add nothing
                merged = merge_rows(rows[present] if present.any() else rows[:1], dtypes[key])
            out.append(self._record(key, merged, dtypes[key], step))
            if self.per_rank and key.kind not in self._replicated:
                for rank, row in zip(ranks, rows, strict=True):
                    mode = rank_mode(key.mode, rank)
                    own = SeriesKey(key.layer, key.kind, key.tensor, key.call, mode)
                    out.append(self._record(own, row, dtypes[key], step))
        return out

    def _record(
        self, key: SeriesKey, row: NDArray[np.float64], dtype: str, step: int
    ) -> StatRecord:
        return StatRecord(
            step=step,
            key=key,
            stats=row[: len(RECORD_FIELDS)].copy(),
            histogram=row_histogram(row),
            dtype=dtype,
        )

    def _check_finite(self, record: StatRecord) -> None:
        counts = np.nan_to_num(record.stats[_NONFINITE])
        if not counts.any() or record.key in self._reported or "@rank" in record.key.mode:
            return
        self._reported.add(record.key)
        nan, posinf, neginf = (int(c) for c in counts)
        assert self.sink is not None
        self.sink.add_anomaly(
            Anomaly(
                step=record.step,
                phase=PHASE_OF_KIND[record.key.kind],
                key=record.key,
                nan=nan,
                posinf=posinf,
                neginf=neginf,
                detail=f"{nan} NaN, {posinf} +Inf, {neginf} −Inf in {record.key.kind} of "
                f"{record.key.layer or 'the model'}{record.key.tensor} ({record.key.mode}), "
                f"over {self.world_size} ranks",
            )
        )


def _fields(key: SeriesKey) -> list[Any]:
    return [key.layer, key.kind, key.tensor, key.call, key.mode]
