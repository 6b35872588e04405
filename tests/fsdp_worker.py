"""One rank of an FSDP2 training (`fully_shard`) recorded with nbviz.watch; launched as torchrun
would, like tests/dist_worker.py (same model and data).

argv: the run path, the number of steps, a folder for the reference. Rank 0 saves there, per
step, each full parameter's weight after the step, gradient and update, gathered with
`DTensor.full_tensor()` (a collective, so every rank gathers): `ref{step}.pt`.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

import nbviz

sys.path.insert(0, str(Path(__file__).parent))
import dist_worker as w


def full(t: torch.Tensor | None) -> torch.Tensor:
    assert isinstance(t, DTensor), type(t)
    return t.full_tensor().detach().clone()


def main(path: str, steps: int, out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    rank, world = dist.get_rank(), dist.get_world_size()
    # dist_worker's model, then a layer of one output: its [1, 4] weight and [1] bias shard
    # unevenly, rank 1 holding nothing of them (an empty local tensor).
    model = nn.Sequential(*w.make_model(), nn.Linear(4, 1))
    for layer in (model[0], model[2], model[3]):
        fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.SGD(model.parameters(), lr=w.LR)
    x, y = w.make_data(world, steps)
    xs, ys = w.shard(x, rank), w.shard(y, rank)
    names = [n for n, _ in model.named_parameters()]
    # sharded_params left to its default: DTensor parameters are detected.
    options = dict(every=1, histograms_every=1, activations_every=1, updates_every=1)
    with nbviz.watch(model, path, histogram_sample=None, **options):
        for step in range(steps):
            before = [full(p) for p in model.parameters()]
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xs[step]), ys[step, :, :1])
            loss.backward()  # type: ignore[no-untyped-call]
            grads = [full(p.grad) for p in model.parameters()]
            opt.step()
            after = [full(p) for p in model.parameters()]
            if rank == 0:
                ref = {
                    name: {"weight": a, "grad": g, "update": a - b}
                    for name, a, g, b in zip(names, after, grads, before, strict=True)
                }
                torch.save(ref, out / f"ref{step}.pt")
    # Every rank done (rank 0 writes the run file, and takes longer) before any tears down:
    # a rank whose peer closed its gloo connections first may abort at exit.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
