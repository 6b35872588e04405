"""Live updates of a 500-module model: bytes per step, pushes per second, bytes per second.

Trains a 500-module MLP (250 Linear + 250 ReLU) with `nbviz.show`, whose `LiveFeed` pushes to a
counting stand-in for the comm, and checks the stream stays well under Jupyter's iopub limit
(about 1 MB/s). Run: `PYTHONPATH=. .venv/bin/python benchmarks/bench_live.py` (about a minute).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

import torch
from torch import nn

import nbviz

IOPUB_LIMIT = 1_000_000  # bytes per second
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},  # every=20, histograms/activations/updates every 100
    "every step": {"every": 1, "histograms_every": 10, "activations_every": 1, "updates_every": 1},
}


def model_500() -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(250):
        layers += [nn.Linear(16, 16), nn.ReLU()]
    return nn.Sequential(*layers)


def bench(name: str, options: dict[str, Any], steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = model_500()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    viz = nbviz.show(model, **options)
    modules = sum(1 for _ in model.modules())
    sizes: list[tuple[float, int]] = []
    lock = threading.Lock()

    def count(content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        size = len(json.dumps(content)) + sum(len(b) for b in buffers or [])
        with lock:
            sizes.append((time.monotonic(), size))

    viz.state.send = count
    x = torch.randn(8, 16)
    start = time.monotonic()
    for _ in range(steps):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    train_s = time.monotonic() - start
    assert viz.recorder is not None
    viz.recorder.flush()
    time.sleep(1.5)  # the last commit and pushes
    assert viz.feed is not None
    viz.close()
    total = sum(s for _, s in sizes)
    span = max(sizes[-1][0] - start, 1e-9) if sizes else 1.0
    per_second: dict[int, int] = {}
    for t, s in sizes:
        per_second[int(t - start)] = per_second.get(int(t - start), 0) + s
    result = {
        "modules": modules,
        "steps": steps,
        "steps_per_s": steps / train_s,
        "bytes_per_step": total / steps,
        "pushes_per_s": len(sizes) / span,
        "mean_bytes_per_s": total / span,
        "peak_bytes_per_s": max(per_second.values(), default=0),
        "largest_push": max((s for _, s in sizes), default=0),
    }
    print(
        f"{name:>10}: {modules} modules, {steps} steps at {result['steps_per_s']:.1f} steps/s: "
        f"{result['bytes_per_step'] / 1024:.1f} KiB per step, "
        f"{result['pushes_per_s']:.2f} pushes/s, "
        f"mean {result['mean_bytes_per_s'] / 1024:.0f} KiB/s, "
        f"peak {result['peak_bytes_per_s'] / 1024:.0f} KiB/s in one second, "
        f"largest push {result['largest_push'] / 1024:.0f} KiB"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    for name, options in CONFIGS.items():
        result = bench(name, options, args.steps)
        assert result["pushes_per_s"] <= 4.5, "at most 4 pushes per second"
        assert result["peak_bytes_per_s"] < 0.6 * IOPUB_LIMIT, "well under the iopub limit"


if __name__ == "__main__":
    main()
