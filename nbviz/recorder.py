"""`nbviz.watch` and `nbviz.open`: capture wired to the run store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from . import capture
from .hierarchy import module_hierarchy
from .records import LayerMeta
from .run import Run
from .store import Retention, RunWriter


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
    """

    def __init__(
        self,
        model: nn.Module,
        path: str | os.PathLike[str] | None = None,
        *,
        retention: Retention | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"nbviz.watch expects a torch.nn.Module, not {type(model).__name__}")
        self.writer = RunWriter(path, layers=layer_metas(model), retention=retention or Retention())
        try:
            super().__init__(model, self.writer, **options)
        except BaseException:
            self.writer.close()
            raise
        self._run: Run | None = None

    @property
    def path(self) -> Path | None:
        return self.writer.path

    @property
    def run(self) -> Run:
        """The recorded run, refreshed to what has been written so far."""
        if not self.writer.closed:
            self.writer.flush()
        if self._run is None:
            self._run = self.writer.open_run()
        else:
            self._run.refresh()
        return self._run

    def flush(self) -> None:
        """Waits until everything recorded so far is in the run."""
        self.writer.flush()

    def close(self) -> None:
        """Removes the hooks and writes what is left; idempotent."""
        try:
            super().close()
        finally:
            self.writer.close()

    def __enter__(self) -> Recorder:  # the base's __exit__ calls this class's close()
        return self


def watch(model: nn.Module, path: str | os.PathLike[str] | None = None, **options: Any) -> Recorder:
    """Starts recording `model`'s training (see `Recorder` for the options)."""
    return Recorder(model, path, **options)


def open(path: str | os.PathLike[str]) -> Run:  # shadows the builtin here only: nbviz.open
    """Opens a run file, also while another process is still writing it."""
    return Run.open(path)
