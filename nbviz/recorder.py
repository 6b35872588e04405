"""`nbviz.watch` and `nbviz.open`: capture wired to the run store."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from . import capture
from ._steps import Shifted, SkipWritten
from .distributed import DistributedSink, active_world, has_sharded_params
from .hierarchy import module_hierarchy
from .records import LayerMeta, RecordSink
from .run import Run
from .store import Retention, RunWriter


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP and torch.compile wrappers, whose names carry no ``module.`` or
    ``_orig_mod.`` prefix; hooks on it see every forward the wrapper runs."""
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if inner is None and isinstance(model, nn.parallel.DistributedDataParallel):
            inner = model.module
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def layer_metas(model: nn.Module) -> list[LayerMeta]:
    """The module hierarchy as the run store keeps it."""
    hierarchy = module_hierarchy(model)
    rows = hierarchy.layers
    return [
        LayerMeta(
            name=row.name,
            cls=row.cls,
            parent=None if row.parent < 0 else rows[row.parent].name,
            params=tuple(hierarchy.params[i].param for i in row.tensors),
        )
        for row in rows
    ]


class Recorder(capture.Recorder):
    """Records a model's training into a run: a file, or memory when `path` is None.

    The options (optimizer, scaler, modules, kinds, every, histograms_every, activations_every,
    updates_every) are those of `nbviz.capture.Recorder`; `retention` bounds what the run keeps.
    Use as a context manager, or call `close()`; `run` reads what was recorded so far.

    Under torch.distributed (a process group of 2+ processes), call it on every rank with the
    same arguments: statistics are merged across ranks and only rank 0 writes the run (see
    `nbviz.distributed`); `sharded_params` says the parameters are sharded (FSDP), not replicated
    (DDP), by default (None) when a parameter is a sharded DTensor (FSDP2's `fully_shard`);
    `per_rank` also keeps each rank's own series (mode ``"train@rank1"``, ...).
    A DDP or torch.compile wrapper is watched through the model inside it.

    `start_step` numbers the first step recorded (e.g. a trainer's global step when training
    resumes from a checkpoint); steps the run file already holds are then not written again.
    """

    def __init__(
        self,
        model: nn.Module,
        path: str | os.PathLike[str] | None = None,
        *,
        retention: Retention | None = None,
        sharded_params: bool | None = None,
        per_rank: bool = True,
        start_step: int | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"nbviz.watch expects a torch.nn.Module, not {type(model).__name__}")
        model = unwrap(model)
        world = active_world()
        self._path = None if path is None else Path(path)
        # Under torch.distributed only rank 0 opens the file: one writer per run file.
        self.writer: RunWriter | None = None
        if world is None or world[0] == 0:
            meta = {} if world is None else {"world_size": str(world[1])}
            self.writer = RunWriter(
                path, layers=layer_metas(model), meta=meta, retention=retention or Retention()
            )
        # capture -> Shifted -> DistributedSink -> SkipWritten -> RunWriter, each when needed.
        out: RecordSink | None = self.writer
        self._distributed: DistributedSink | None = None
        try:
            if self.writer is not None and start_step is not None:
                out = SkipWritten(self.writer, self.writer.last_step)
                _warn_if_written(self._path, start_step, self.writer.last_step)
            if world is not None:
                if sharded_params is None:
                    sharded_params = has_sharded_params(model)
                out = self._distributed = DistributedSink(
                    out, sharded_params=sharded_params, per_rank=per_rank
                )
            assert out is not None
            if start_step:
                out = Shifted(out, start_step)
            self.sink: RecordSink = out
            """Where the records of this recorder go: more can be added here (same step numbers
            as `step_count`), e.g. gradients taken at a trainer's own hook."""
            super().__init__(model, out, **options)
        except BaseException:
            if self.writer is not None:
                self.writer.close()
            raise
        self._run: Run | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def run(self) -> Run:
        """The recorded run, refreshed to what has been written so far (rank 0 only)."""
        writer = self._writer()
        if not writer.closed:
            writer.flush()
        if self._run is None:
            self._run = writer.open_run()
        else:
            self._run.refresh()
        return self._run

    def flush(self) -> None:
        """Waits until everything recorded so far is in the run (nothing to do off rank 0)."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Removes the hooks and writes what is left; idempotent."""
        try:
            super().close()
        finally:
            if self._distributed is not None:
                self._distributed.close()
            if self.writer is not None:
                self.writer.close()

    def _writer(self) -> RunWriter:
        if self.writer is None:
            raise RuntimeError("under torch.distributed only rank 0 writes and reads the run")
        return self.writer

    def __enter__(self) -> Recorder:  # the base's __exit__ calls this class's close()
        return self


def _warn_if_written(path: Path | None, start: int, last: int | None) -> None:
    if last is not None and start <= last:
        warnings.warn(
            f"nbviz: {path or 'the run'} already holds steps {start}-{last}: "
            f"recording continues from step {last + 1}",
            RuntimeWarning,
            stacklevel=4,
        )


def watch(model: nn.Module, path: str | os.PathLike[str] | None = None, **options: Any) -> Recorder:
    """Starts recording `model`'s training (see `Recorder` for the options)."""
    return Recorder(model, path, **options)


def open(path: str | os.PathLike[str]) -> Run:  # shadows the builtin here only: nbviz.open
    """Opens a run file, also while another process is still writing it."""
    return Run.open(path)
