"""NbvizCallback with a real Lightning Trainer on the CPU, against a plain-torch replay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nbviz

pytest.importorskip("lightning")
import lightning.pytorch as pl

from nbviz.lightning import NbvizCallback

BATCH = 4
LR = 0.05


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def _data(n: int, seed: int, scale: float = 1.0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, generator=g) * scale, torch.randn(n, 1, generator=g))


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = _model()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        return nn.functional.mse_loss(self(batch[0]), batch[1])

    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=LR)


def _fit(tmp_path: Path, callback: NbvizCallback, ckpt: str | None = None, **kw: Any) -> Any:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
        "num_sanity_val_steps": 0,
        **kw,
    }
    trainer = pl.Trainer(callbacks=[callback], **options)
    train = DataLoader(_data(64, 1), batch_size=BATCH)
    val = DataLoader(_data(8, 2, scale=100.0), batch_size=8)  # far from the training data
    trainer.fit(Module(), train, val, ckpt_path=ckpt)
    return trainer


EVERY = {"every": 1, "histograms_every": 1, "activations_every": 1, "updates_every": 1}


def _replay(steps: int, accumulate: int, clip: float | None) -> list[dict[str, Any]]:
    """What Lightning does, in plain torch: per step, the accumulated gradient of the first
    weight before clipping, and the first batch's output of the first layer."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = _data(64, 1).tensors
    out = []
    for step in range(steps):
        opt.zero_grad()
        first: NDArray[np.float64] | None = None
        for micro in range(accumulate):
            i = (step * accumulate + micro) * BATCH
            hidden = model[0](x[i : i + BATCH])
            if first is None:
                first = hidden.detach().double().numpy()
            loss = nn.functional.mse_loss(model[2](model[1](hidden)), y[i : i + BATCH])
            (loss / accumulate).backward()  # type: ignore[no-untyped-call]
        layer = model[0]
        assert isinstance(layer, nn.Linear)
        grad = layer.weight.grad
        assert grad is not None
        out.append({"grad": grad.double().numpy().copy(), "act": first})
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return out


def _at(series: Any, step: int, field: str) -> float:
    return float(series.values[field][list(series.step_lo).index(step)])


def test_gradients_are_accumulated_and_taken_before_clipping(tmp_path: Path) -> None:
    callback = NbvizCallback(tmp_path / "acc.nbviz", **EVERY)
    trainer = _fit(
        tmp_path, callback, max_steps=3, accumulate_grad_batches=2, gradient_clip_val=0.01
    )
    assert trainer.global_step == 3
    run = nbviz.open(tmp_path / "acc.nbviz")
    assert run.steps.tolist() == [0, 1, 2]  # one step per optimizer step, as the Trainer counts
    grads, acts = run.stats("net.0", "grad", "weight"), run.stats("net.0", "activation")
    for step, ref in enumerate(_replay(3, 2, clip=0.01)):
        g = ref["grad"]
        assert _at(grads, step, "l2") == pytest.approx(np.sqrt((g**2).sum()), rel=1e-5)
        assert _at(grads, step, "mean") == pytest.approx(g.mean(), rel=1e-5, abs=1e-9)
        assert _at(grads, step, "max") == pytest.approx(g.max(), rel=1e-5)
        assert np.sqrt((g**2).sum()) > 0.01 * 1.5  # so a clipped gradient would not pass
        a = ref["act"]
        assert _at(acts, step, "numel") == a.size  # the first micro-batch only
        assert _at(acts, step, "mean") == pytest.approx(a.mean(), rel=1e-5, abs=1e-9)


def test_validation_is_recorded_apart_from_training(tmp_path: Path) -> None:
    callback = NbvizCallback(None, **EVERY)
    _fit(tmp_path, callback, max_epochs=1, limit_train_batches=2)
    run = callback.run
    train = run.stats("net.0", "activation")
    evals = run.stats("net.0", "activation", mode="eval")
    assert train.step_lo.tolist() == [0, 1]
    assert evals.values["numel"].tolist() == [8 * 8]  # one validation batch of 8
    assert np.abs(evals.values["max"]).max() > 20  # the validation data, scaled by 100
    assert np.abs(train.values["max"]).max() < 10  # untouched by it
    assert not run.series(kind="grad", mode="eval")


def test_fast_dev_run_records_one_step(tmp_path: Path) -> None:
    callback = NbvizCallback(tmp_path / "dev.nbviz", **EVERY)
    _fit(tmp_path, callback, fast_dev_run=True)
    run = nbviz.open(tmp_path / "dev.nbviz")
    assert run.steps.tolist() == [0]
    assert run.complete
    assert run.stats("net.2", "grad", "bias").step_lo.tolist() == [0]
    assert run.series(mode="eval")


def test_resume_from_a_checkpoint_continues_steps_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "resume.nbviz"
    first = _fit(tmp_path, NbvizCallback(path, **EVERY), max_steps=4)
    ckpt = tmp_path / "at2.ckpt"
    # A checkpoint older than the run's last step, as after a crash: steps 2 and 3 are redone.
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Module(), DataLoader(_data(64, 1), batch_size=BATCH))
    trainer.save_checkpoint(ckpt)
    assert first.global_step == 4
    before = nbviz.open(path).stats("net.0", "weight", "weight")
    with pytest.warns(RuntimeWarning, match="already holds steps 2-3"):
        resumed = _fit(tmp_path, NbvizCallback(path, **EVERY), ckpt=str(ckpt), max_steps=6)
    assert resumed.global_step == 6
    run = nbviz.open(path)
    assert run.steps.tolist() == list(range(6))
    for key in run.series():
        series = run.stats(key.layer, key.kind, key.tensor, call=key.call)
        steps = series.step_lo.tolist()
        assert steps == sorted(set(steps)), key  # each step once
    after = run.stats("net.0", "weight", "weight")
    assert after.step_lo.tolist() == list(range(6))
    np.testing.assert_array_equal(after.values["mean"][:4], before.values["mean"])  # kept


def test_ddp_on_two_processes_writes_one_merged_run(tmp_path: Path) -> None:
    """strategy="ddp", devices=2: Lightning starts rank 1 by running the script again."""
    root = Path(__file__).resolve().parents[1]
    script = root / "tests" / "lightning_ddp_script.py"
    path = tmp_path / "ddp.nbviz"
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(script), str(path), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = nbviz.open(path)
    assert run.steps.tolist() == [0, 1, 2]
    assert run.meta["world_size"] == "2"
    # Step 0: rank r's first batch holds samples r, r + 2, ..., so the two ranks together saw
    # the first 8 samples, through the initial first layer.
    sys.path.insert(0, str(root / "tests"))
    import lightning_ddp_script as s

    x = s.data().tensors[0][: 2 * s.BATCH]
    hidden = s.Module().net[0](x).detach().double().numpy()
    merged = run.stats("net.0", "activation")
    assert merged.values["numel"][0] == hidden.size
    for name, value in {"min": hidden.min(), "max": hidden.max(), "mean": hidden.mean()}.items():
        assert merged.values[name][0] == pytest.approx(value, rel=1e-6), name
    assert merged.values["std"][0] == pytest.approx(hidden.std(), rel=1e-6)
    assert (
        run.stats("net.0", "activation", mode="train@rank1").values["numel"][0] == hidden.size / 2
    )


def test_bf16_mixed_precision_records_bf16_activations(tmp_path: Path) -> None:
    callback = NbvizCallback(None, **EVERY)
    _fit(tmp_path, callback, max_steps=2, precision="bf16-mixed")
    run = callback.run
    assert run.steps.tolist() == [0, 1]
    assert run.stats("net.0", "activation").dtype == "bfloat16"  # autocast inside the Trainer
    assert run.stats("net.0", "grad", "weight").dtype == "float32"
    assert run.stats("net.0", "weight", "weight").dtype == "float32"
