"""A training script that records with nbviz: run it, and follow it from a notebook.

    python notebooks/train_script.py runs/x.nbviz [steps] [pause_s] [hold_file]

Writes a run file that `nbviz.open(path)` reads while this script is still running
(notebooks/script_to_notebook.ipynb). With `hold_file`, it stops after half the steps until that
file exists (the tests use it to look at a run caught mid-way).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

import nbviz


def main(path: str, steps: int = 200, pause: float = 0.05, hold: str | None = None) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(256, 10)
    y = x[:, :1] * 2 - x[:, 1:2]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with nbviz.watch(model, path, every=1, histograms_every=5, activations_every=5):
        for step in range(steps):
            if hold is not None and step == steps // 2:
                while not Path(hold).exists():
                    time.sleep(0.02)
            batch = torch.randint(0, len(x), (32,))
            loss = nn.functional.mse_loss(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(pause)  # a real step takes time; the notebook follows along


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        args[0],
        int(args[1]) if len(args) > 1 else 200,
        float(args[2]) if len(args) > 2 else 0.05,
        args[3] if len(args) > 3 else None,
    )
