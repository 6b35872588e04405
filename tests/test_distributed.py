"""nbviz.watch under torch.distributed: two gloo processes, launched as torchrun would.

The merged run is compared with numpy over the ranks' data concatenated, computed here in one
process from the same model and data (tests/dist_worker.py builds both).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from torch import nn

import nbviz
from nbviz._merge import merge_rows, to_row
from nbviz.distributed import rank_mode
from nbviz.records import SeriesKey, StatRecord
from nbviz.stats import histogram, tensor_stats

sys.path.insert(0, str(Path(__file__).parent))
import dist_worker as w

WORLD = 2
STEPS = 3
FSDP_STEPS = 2  # before dist_worker's NaN input (step 2)
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _launch(
    path: Path, die_at: int = -1, dying: int = 1, *, fsdp_ref: Path | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """WORLD ranks as torchrun starts them: one process each, rendezvous through env vars.
    With `fsdp_ref`, tests/fsdp_worker.py runs instead, saving its reference there.

    A run where no rank was meant to die is tried once more if one failed to rendezvous: the
    free port can be taken between `_free_port` and rank 0's bind."""
    done = _launch_once(path, die_at, dying, fsdp_ref)
    rendezvous = ("address already in use", "EADDRINUSE", "Connection refused", "timed out")
    failed = [p for p in done if p.returncode != 0]
    if die_at < 0 and any(any(m in (p.stdout or "") for m in rendezvous) for p in failed):
        path.unlink(missing_ok=True)
        done = _launch_once(path, die_at, dying, fsdp_ref)
    return done


def _launch_once(
    path: Path, die_at: int, dying: int, fsdp_ref: Path | None
) -> list[subprocess.CompletedProcess[str]]:
    port = _free_port()
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "PYTHONPATH": str(ROOT),
        }
        args = [sys.executable, str(Path(w.__file__)), str(path), str(STEPS)]
        if fsdp_ref is None:
            args += [str(die_at), str(dying)]
        else:
            args = [sys.executable, str(ROOT / "tests" / "fsdp_worker.py"), str(path)]
            args += [str(FSDP_STEPS), str(fsdp_ref)]
        procs.append(
            subprocess.Popen(
                args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    done = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, None))
    return done


def _reference() -> list[dict[str, list[NDArray[np.float64]]]]:
    """Per step, per rank: the first layer's output, the model's output, the gradient of the
    first weight; DDP replayed in one process (mean of the ranks' gradients, then SGD)."""
    torch.set_num_threads(1)
    model = w.make_model()
    opt = torch.optim.SGD(model.parameters(), lr=w.LR)
    x, y = w.make_data(WORLD, STEPS)
    out: list[dict[str, list[NDArray[np.float64]]]] = []
    for step in range(STEPS):
        seen: dict[str, list[NDArray[np.float64]]] = {"0": [], "": [], "grad": [], "weight": []}
        grads = []
        for rank in range(WORLD):
            model.zero_grad()
            xs, ys = w.shard(x, rank)[step], w.shard(y, rank)[step]
            hidden = model[0](xs)
            pred = model[2](model[1](hidden))
            nn.functional.mse_loss(pred, ys).backward()  # type: ignore[no-untyped-call]
            seen["0"].append(hidden.detach().double().numpy())
            seen[""].append(pred.detach().double().numpy())
            grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        for p, *gs in zip(model.parameters(), *grads, strict=True):
            p.grad = torch.stack(gs).div(WORLD).sum(0)
        first = model[0]
        assert isinstance(first, nn.Linear)
        assert first.weight.grad is not None
        seen["grad"].append(first.weight.grad.double().numpy())
        opt.step()
        seen["weight"].append(first.weight.detach().double().numpy())
        out.append(seen)
    return out


def _numpy_stats(values: NDArray[np.float64]) -> dict[str, float]:
    """As nbviz defines them: NaN counted, the rest over the finite values."""
    a = values[np.isfinite(values)]
    return {
        "numel": values.size,
        "nan": float(np.isnan(values).sum()),
        "min": a.min(),
        "max": a.max(),
        "mean": a.mean(),
        "std": a.std(),
        "l2": float(np.sqrt((a**2).sum())),
        "zeros": float((a == 0).sum()),
    }


def _check(series: nbviz.run.StatSeries, step: int, a: NDArray[np.float64]) -> None:
    i = int(np.flatnonzero(series.step_lo == step)[0])
    for name, expected in _numpy_stats(a).items():
        assert series.values[name][i] == pytest.approx(expected, rel=1e-6, abs=1e-9), name


@pytest.fixture(scope="module")
def merged_run(tmp_path_factory: pytest.TempPathFactory) -> nbviz.Run:
    path = tmp_path_factory.mktemp("ddp") / "ddp.nbviz"
    for result in _launch(path):
        assert result.returncode == 0, result.stdout
    return nbviz.open(path)


def test_merged_statistics_equal_one_process_over_all_ranks_data(merged_run: nbviz.Run) -> None:
    run, ref = merged_run, _reference()
    assert run.steps.tolist() == list(range(STEPS))
    assert run.meta["world_size"] == str(WORLD)
    assert run.stats("0", "activation").step_lo.tolist() == [0, 2]  # every=2
    for step in (0, 2):
        for layer in ("0", ""):
            both = np.concatenate(ref[step][layer])
            _check(run.stats(layer, "activation"), step, both)
            for rank in range(WORLD):  # each rank's own series, for a look at one rank
                own = run.stats(layer, "activation", mode=rank_mode("train", rank))
                _check(own, step, ref[step][layer][rank])
    # DDP's gradients and weights are the same on every rank: written once, not merged. (Step 2's
    # are all NaN: rank 1's NaN input reached every rank through DDP's all-reduce.)
    _check(run.stats("0", "grad", "weight"), 0, ref[0]["grad"][0])
    _check(run.stats("0", "weight", "weight"), 0, ref[0]["weight"][0])
    assert run.stats("0", "grad", "weight").values["nan"][1] == 8 * 16
    assert not run.series(kind="grad", mode="train@rank1")


def test_merged_histograms_count_every_rank_on_the_one_process_grid(merged_run: nbviz.Run) -> None:
    hists, ref = merged_run.histograms("0", "activation"), _reference()
    assert hists.steps.tolist() == [0, 2]
    for i, step in enumerate((0, 2)):
        both = np.concatenate(ref[step]["0"])
        single = histogram(torch.from_numpy(both), exact=True)  # one process, every value
        assert (hists.lo[i], hists.width[i]) == (single.lo, single.width)
        finite = both[np.isfinite(both)]  # NaN is counted apart, never binned
        bins = np.floor((finite - single.lo) / single.width).astype(int)
        expected = np.bincount(bins, minlength=64)  # numpy, on that grid
        np.testing.assert_array_equal(hists.counts[i], expected)
        assert hists.sample[i] == both.size


def test_a_nan_on_one_rank_is_reported_once_merged(merged_run: nbviz.Run) -> None:
    first = merged_run.first_anomaly
    assert first is not None
    assert (first.step, first.phase, first.key) == (2, "forward", SeriesKey("0", "activation", ""))
    assert first.nan == 16  # one sample's row of the first layer's output
    assert "over 2 ranks" in first.detail
    own = merged_run.stats("0", "activation", mode=rank_mode("train", 1))
    assert own.values["nan"].tolist() == [0, 16]
    assert merged_run.stats("0", "activation", mode=rank_mode("train", 0)).values["nan"].sum() == 0


def test_eval_on_one_rank_is_recorded_without_a_collective(merged_run: nbviz.Run) -> None:
    keys = merged_run.series(layer="0", kind="activation", mode=None)
    assert SeriesKey("0", "activation", "", 0, "eval") in keys
    assert SeriesKey("0", "activation", "", 0, "eval@rank0") in keys
    assert SeriesKey("0", "activation", "", 0, "eval@rank1") not in keys
    ev = merged_run.stats("0", "activation", mode="eval")
    assert ev.step_lo.tolist() == [2]
    assert ev.values["numel"][0] == w.BATCH * 16


@pytest.mark.parametrize("dying", [1, 0])
def test_a_rank_that_dies_leaves_a_readable_run_of_whole_steps(tmp_path: Path, dying: int) -> None:
    """Rank 1 (a sender) or rank 0 (the writer) exits at step 2, as after kill -9."""
    path = tmp_path / "died.nbviz"
    results = _launch(path, die_at=2, dying=dying)
    assert results[dying].returncode == 3
    assert results[1 - dying].returncode != 0  # the other learns of it from a failed collective
    run = nbviz.open(path)
    # Rank 0 commits each merged step in one transaction: a prefix of the steps, each whole.
    steps = run.steps.tolist()
    if dying == 1:  # rank 0 wrote everything before the failed exchange, then closed the run
        assert steps == [0, 1]
        assert run.complete
    else:  # the writer died with the process: what it had committed, not marked complete
        assert steps == [0, 1][: len(steps)]
        assert not run.complete
    if 0 in steps:
        ref = _reference()
        _check(run.stats("0", "activation"), 0, np.concatenate(ref[0]["0"]))
        _check(run.stats("", "activation"), 0, np.concatenate(ref[0][""]))
        for key in run.series():
            assert run.stats(key.layer, key.kind, key.tensor, call=key.call).step_lo.tolist() == [0]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[nbviz.Run, Path]:
    folder = tmp_path_factory.mktemp("fsdp")
    for result in _launch(folder / "fsdp.nbviz", fsdp_ref=folder):
        assert result.returncode == 0, result.stdout
    return nbviz.open(folder / "fsdp.nbviz"), folder


def test_fsdp2_records_each_full_parameter_from_its_shards(
    fsdp_run: tuple[nbviz.Run, Path],
) -> None:
    """fully_shard over 2 gloo processes: each rank summarises its shards, and the merged
    weight, gradient and update of every parameter equal numpy on the full tensor (gathered by
    the workers with DTensor.full_tensor()); the histograms count it on the one-process grid.
    Layer 3's parameters shard unevenly: rank 1's shards are empty."""
    run, folder = fsdp_run
    assert run.steps.tolist() == list(range(FSDP_STEPS))
    assert run.meta["world_size"] == str(WORLD)
    for step in range(FSDP_STEPS):
        ref = torch.load(folder / f"ref{step}.pt")
        assert sorted(ref) == ["0.bias", "0.weight", "2.bias", "2.weight", "3.bias", "3.weight"]
        for name, tensors in ref.items():
            layer, tensor = name.split(".")
            for kind in ("weight", "grad", "update"):
                full = tensors[kind].double().numpy()
                series = run.stats(layer, kind, tensor)
                _check(series, step, full)
                hists = run.histograms(layer, kind, tensor)
                i = int(np.flatnonzero(hists.steps == step)[0])
                single = histogram(tensors[kind], exact=True)  # one process, the full tensor
                assert (hists.lo[i], hists.width[i]) == (single.lo, single.width)
                bins = np.floor((full.ravel() - single.lo) / single.width).astype(int)
                np.testing.assert_array_equal(hists.counts[i], np.bincount(bins, minlength=64))
                assert hists.sample[i] == full.size
            # ‖Δw‖ / ‖w before‖ over the whole tensor, from the shards' norms
            update, after = tensors["update"].double(), tensors["weight"].double()
            ratio = run.stats(layer, "update", tensor).values["ratio"][step]
            expected = float(update.norm() / (after - update).norm())
            assert ratio == pytest.approx(expected, rel=1e-5)
    # Each rank's own shard is kept too: half the rows of the first weight.
    own = run.stats("0", "weight", "weight", mode=rank_mode("train", 1))
    assert own.values["numel"].tolist() == [16 * 8 / WORLD] * FSDP_STEPS
    assert run.stats("3", "weight", "weight", mode=rank_mode("train", 1)).values["numel"][0] == 0
    # Activations are plain tensors under FSDP2, merged as under DDP.
    numel = run.stats("0", "activation").values["numel"]
    assert numel.tolist() == [WORLD * w.BATCH * 16] * FSDP_STEPS


def _record(values: NDArray[np.float64], hist: bool = True) -> StatRecord:
    t = torch.from_numpy(values)
    return StatRecord(
        0,
        SeriesKey("x", "activation", ""),
        np.concatenate([tensor_stats(t), np.full(3, np.nan)]),
        histogram(t, exact=True) if hist else None,
        "float64",
    )


@pytest.mark.parametrize(
    "parts",
    [
        [np.array([0.5, 1.5, -2.0]), np.array([300.0, 0.0]), np.array([7.25])],
        [np.array([3.0, 3.0, 3.0]), np.array([2.9, 3.1])],  # a constant part: a coarser grid
        [np.array([1e-9, 2e-9]), np.array([-1e9])],
        [np.array([np.nan, 1.0, np.inf]), np.array([-np.inf, 2.0, 0.0])],
        [np.array([np.nan]), np.array([4.0, 5.0])],  # nothing finite on one part
        [np.array([-4.4e-39, -1e-300]), np.array([0.0, 1.0])],  # just below zero: its own bin
    ],
)
def test_merge_rows_equals_the_concatenation(parts: list[NDArray[np.float64]]) -> None:
    rows = np.stack([to_row(_record(p)) for p in parts])
    merged = merge_rows(rows, "float64")
    whole = _record(np.concatenate(parts))
    expected = to_row(whole)
    np.testing.assert_allclose(merged[:10], expected[:10], rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(merged[13:], expected[13:])  # grid, sample and counts exactly
