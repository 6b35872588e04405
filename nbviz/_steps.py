"""Sink wrappers that renumber steps, for training resumed from a checkpoint.

Capture numbers steps from 0. A resumed training starts at the step it had reached (Lightning's
`trainer.global_step`): `Shifted` adds that offset to every record before anything else sees it,
so that under torch.distributed all ranks exchange the same numbers. `SkipWritten`, in front of
the writer, drops steps the run file already holds: a checkpoint is usually older than the run's
last step, and the steps between would otherwise be written twice. The first recording is kept:
it is what the run showed at the time, and the file is never rewritten.
"""

from __future__ import annotations

import dataclasses

from .records import Anomaly, RecordSink, StatRecord, StepRecord


class Shifted:
    """Adds `offset` to the step of everything passed on to `sink`."""

    def __init__(self, sink: RecordSink, offset: int) -> None:
        self.sink = sink
        self.offset = offset

    def add(self, records: list[StatRecord]) -> None:
        self.sink.add([dataclasses.replace(r, step=r.step + self.offset) for r in records])

    def end_step(self, step: StepRecord) -> None:
        self.sink.end_step(dataclasses.replace(step, step=step.step + self.offset))

    def add_anomaly(self, anomaly: Anomaly) -> None:
        self.sink.add_anomaly(dataclasses.replace(anomaly, step=anomaly.step + self.offset))


class SkipWritten:
    """Passes on to `sink` only what belongs to steps after `last` (None: everything)."""

    def __init__(self, sink: RecordSink, last: int | None) -> None:
        self.sink = sink
        self.last = -1 if last is None else last

    def add(self, records: list[StatRecord]) -> None:
        kept = [r for r in records if r.step > self.last]
        if kept:
            self.sink.add(kept)

    def end_step(self, step: StepRecord) -> None:
        if step.step > self.last:
            self.sink.end_step(step)

    def add_anomaly(self, anomaly: Anomaly) -> None:
        if anomaly.step > self.last:
            self.sink.add_anomaly(anomaly)
