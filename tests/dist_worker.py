"""One rank of a DDP training recorded with nbviz.watch; launched as torchrun would.

Run as a script with MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE set, and argv: the run path,
the number of steps, the step at which a rank dies (-1: never) and which rank. Shared with
tests/test_distributed.py, which builds the same model and data for its reference.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

import nbviz

BATCH = 6  # rows per rank
LR = 0.1


def make_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def make_data(world_size: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [steps, world_size * BATCH, 8] and targets; rank r takes its BATCH rows."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(steps, world_size * BATCH, 8, generator=g)
    x[:, :, 0] = 0.0  # exact zeros, counted
    if steps > 2:
        x[2, BATCH + 1, 3] = float("nan")  # rank 1, step 2: a NaN row, for the anomaly report
    y = torch.randn(steps, world_size * BATCH, 4, generator=g)
    return x, y


def shard(t: torch.Tensor, rank: int) -> torch.Tensor:
    return t[:, rank * BATCH : (rank + 1) * BATCH]


def main(path: str, steps: int, die_at: int, dying: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=30))
    rank, world = dist.get_rank(), dist.get_world_size()
    model = make_model()
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=LR)
    x, y = make_data(world, steps)
    xs, ys = shard(x, rank), shard(y, rank)
    # Every other step: step 1 records nothing, and its exchange is the header alone.
    options = dict(every=2, histograms_every=2, activations_every=2, updates_every=2)
    with nbviz.watch(ddp, path, histogram_sample=None, **options):
        for step in range(steps):
            if step == die_at and rank == dying:
                os._exit(3)  # a rank that dies mid-training, without cleaning up
            if step == 2 and rank == 0:  # validation on rank 0 alone: no collective may wait
                ddp.eval()
                with torch.no_grad():
                    model(xs[step])
                ddp.train()  # type: ignore[no-untyped-call]
            opt.zero_grad()
            loss = nn.functional.mse_loss(ddp(xs[step]), ys[step])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    # Every rank done (rank 0 writes the run file, and takes longer) before any tears down:
    # a rank whose peer closed its gloo connections first may abort at exit.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
