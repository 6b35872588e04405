"""`NbvizCallback`: nbviz recording inside a Lightning `Trainer` (``pip install nbviz[lightning]``).

    trainer = Trainer(callbacks=[nbviz.lightning.NbvizCallback("runs/x.nbviz")])

How it meets the Trainer:

- Gradients are taken in ``on_before_optimizer_step``, where Lightning documents them as
  accumulated over ``accumulate_grad_batches`` and unscaled by AMP, and not yet clipped. Capture's
  own point, torch's optimizer step pre-hook, is wrong here: Lightning runs forward and backward
  inside the closure it passes to ``optimizer.step``, so that hook fires before this step's
  backward (seeing no gradients, or a micro-batch's).
- Steps are numbered as the Trainer counts them: one per optimizer step, the number being
  ``trainer.global_step`` before it. Recording starts at ``on_train_start``, after the sanity
  check's validation and after a checkpoint was restored: a resumed fit continues at the restored
  global step, and steps the run file already holds are not written again.
- Validation forwards (eval mode, inference mode) are kept apart as mode ``"eval"``.
- Under a multi-process strategy (DDP) every rank records and rank 0 writes the merged run
  (see `nbviz.distributed`).
"""

from __future__ import annotations

import inspect
import math
import os
from typing import Any

import numpy as np
import torch

from . import capture
from ._protocol import STAT_FIELDS
from ._selection import Param, select_modules, watched_params
from .recorder import Recorder, unwrap
from .records import KINDS, RECORD_FIELDS, Anomaly, SeriesKey, StatRecord
from .run import Run
from .stats import Histogram, summarize_batch

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError as error:  # pragma: no cover - the extra is not installed
    raise ImportError("nbviz.lightning needs Lightning: pip install 'nbviz[lightning]'") from error

__all__ = ["NbvizCallback"]

_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(capture.Recorder.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty
}
_NAN_FIELD = RECORD_FIELDS.index("nan")
_DIAGNOSTICS = len(RECORD_FIELDS) - len(STAT_FIELDS)  # NaN for gradients


class NbvizCallback(Callback):
    """Records the trained module with `nbviz.watch(module, path, **options)` during ``fit``.

    `path=None` keeps the run in memory (`run` reads it). The options are those of
    `nbviz.watch`; ``optimizer`` and ``scaler`` are the Trainer's business and not accepted.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        for taken in ("optimizer", "scaler", "start_step"):
            if taken in options:
                raise TypeError(f"NbvizCallback sets {taken} itself")
        self.path = path
        self.options = options
        self.recorder: Recorder | None = None
        self._params: list[Param] = []
        self._grads = False
        self._reported: set[SeriesKey] = set()

    @property
    def run(self) -> Run:
        """The run recorded so far (an `nbviz.Run`), on rank 0."""
        if self.recorder is None:
            raise RuntimeError("nothing recorded yet: the run starts with trainer.fit")
        return self.recorder.run

    # Lightning hooks.

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()
        chosen = self.options.get("kinds") or KINDS
        kinds = frozenset([chosen] if isinstance(chosen, str) else chosen)
        self._grads = "grad" in kinds
        options = {**self.options, "kinds": sorted(kinds - {"grad"})}
        self.recorder = Recorder(pl_module, self.path, start_step=trainer.global_step, **options)
        model = unwrap(pl_module)
        self._params = watched_params(select_modules(model, self.options.get("modules")))

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.recorder is not None and self._grads and not self.recorder.closed:
            self._record_grads(getattr(optimizer, "optimizer", optimizer))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._close()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._close()

    def _close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    # Gradients, as capture takes them at its own optimizer hook.

    def _record_grads(self, optimizer: torch.optim.Optimizer) -> None:
        assert self.recorder is not None
        step = self.recorder.step_count
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        params = [
            p
            for p in self._params
            if id(p.param) in owned and p.param.grad is not None and not p.param.grad.is_sparse
        ]
        grads = [p.param.grad for p in params if p.param.grad is not None]
        if not grads:
            return
        every, hist_every = (self._option(n) for n in ("every", "histograms_every"))
        due = step % every == 0
        if not due and _all_finite(grads):
            return  # between captured steps only a cheap NaN/Inf check, as capture does
        histograms = due and step % hist_every == 0
        sample = self._option("histogram_sample")
        summaries, _ = summarize_batch(grads, histograms=histograms, max_sample=sample or (1 << 62))
        records = []
        for i, (p, grad) in enumerate(zip(params, grads, strict=True)):
            histogram = None
            if histograms:
                histogram = Histogram(
                    lo=float(summaries.lo[i]),
                    width=float(summaries.width[i]),
                    counts=summaries.counts[i].copy(),
                    sample=int(summaries.sample[i]),
                )
            stats = np.concatenate([summaries.stats[i], np.full(_DIAGNOSTICS, math.nan)])
            dtype = str(grad.dtype).removeprefix("torch.")
            records.append(StatRecord(step, p.key("grad"), stats, histogram, dtype))
        self.recorder.sink.add(records)
        for record in records:
            self._check_finite(record)

    def _option(self, name: str) -> Any:
        return self.options.get(name, _DEFAULTS[name])

    def _check_finite(self, record: StatRecord) -> None:
        assert self.recorder is not None
        nan, posinf, neginf = (int(c) for c in np.nan_to_num(record.stats[_NAN_FIELD:][:3]))
        if (nan or posinf or neginf) and record.key not in self._reported:
            self._reported.add(record.key)
            where = f"{record.key.layer}.{record.key.tensor}".lstrip(".")
            detail = f"{nan} NaN, {posinf} +Inf, {neginf} −Inf in the gradient of {where}"
            anomaly = Anomaly(record.step, "optimizer", record.key, nan, posinf, neginf, detail)
            self.recorder.sink.add_anomaly(anomaly)


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    """One sum each (NaN and Inf propagate through it), one host read."""
    with torch.no_grad():
        sums = torch.stack([t.sum().abs().float() for t in tensors])
        return bool(torch.isfinite(sums).all())
