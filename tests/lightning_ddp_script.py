"""A Lightning fit with strategy="ddp" on 2 CPU processes, recorded by NbvizCallback.

Run as a script (Lightning starts the second rank by running it again): argv is the run path.
"""

from __future__ import annotations

import os
import sys

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from nbviz.lightning import NbvizCallback

BATCH = 4


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        return nn.functional.mse_loss(self(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(32, 3, generator=g), torch.randn(32, 1, generator=g))


if __name__ == "__main__":
    torch.set_num_threads(1)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=sys.argv[2],
        callbacks=[NbvizCallback(sys.argv[1], every=1, activations_every=1)],
        use_distributed_sampler=False,  # the shards below, known to the test
    )
    # Rank r trains on samples r, r + 2, r + 4, ... (Lightning sets LOCAL_RANK for rank 1).
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    loader = DataLoader(Subset(data(), range(rank, 32, 2)), batch_size=BATCH, shuffle=False)
    trainer.fit(Module(), loader)
