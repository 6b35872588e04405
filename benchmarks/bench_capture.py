"""Per-step overhead of recording, side by side with a plain step and with TensorBoard.

ResNet-18-like CNN, batch 16, 3×64×64, SGD, CPU. The configurations run interleaved, one step
each per round, so drift of the machine hits all of them alike; medians are printed.

Run: `.venv/bin/python benchmarks/bench_capture.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from resnet import resnet18_like
from torch import nn

import nbviz

Step = Callable[[], None]
EVERYTHING = {"every": 1, "histograms_every": 1, "activations_every": 1, "updates_every": 1}


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, after: Step | None) -> Step:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 64, 64, generator=generator)
    labels = torch.randint(0, 10, (16,), generator=generator)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if after is not None:
            after()

    return step


def tensorboard_after(model: nn.Module, logdir: str) -> tuple[Step, Callable[[], None]]:
    """What users write today: add_histogram of every parameter and gradient, every step."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(logdir)
    counter = iter(range(1 << 62))

    def after() -> None:
        step = next(counter)
        for name, param in model.named_parameters():
            writer.add_histogram(name, param, step)
            if param.grad is not None:
                writer.add_histogram(f"{name}.grad", param.grad, step)

    return after, writer.close


@contextlib.contextmanager
def configurations(folder: pathlib.Path) -> Iterator[dict[str, Step]]:
    """Each configuration trains its own copy of the same model with its own optimizer."""
    closers: list[Callable[[], None]] = []
    steps: dict[str, Step] = {}

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = resnet18_like()
        return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    model, optimizer = fresh()
    steps["plain step"] = make_step(model, optimizer, None)
    for name, options in (("nbviz, defaults", {}), ("nbviz, everything every step", EVERYTHING)):
        model, optimizer = fresh()
        recorder: Any = nbviz.watch(
            model, folder / f"{len(steps)}.nbviz", optimizer=optimizer, **options
        )
        closers.append(recorder.close)
        steps[name] = make_step(model, optimizer, None)
    model, optimizer = fresh()
    after, close = tensorboard_after(model, str(folder / "tb"))
    closers.append(close)
    steps["TensorBoard add_histogram, every step"] = make_step(model, optimizer, after)
    try:
        yield steps
    finally:
        for close in closers:
            close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder, configurations(pathlib.Path(folder)) as steps:
        times: dict[str, list[float]] = {name: [] for name in steps}
        for round_ in range(args.rounds + 3):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                if round_ >= 3:  # warm-up rounds: allocator, thread pools, first histograms
                    times[name].append(time.perf_counter() - start)
    print(f"ResNet-18-like, batch 16, 3x64x64, SGD, CPU; {args.rounds} steps each, interleaved")
    # Periodic work (histograms every 10 steps) hides from a median: print the mean beside it.
    for label, summary in (("median", statistics.median), ("mean", statistics.fmean)):
        values = {name: summary(ts) for name, ts in times.items()}
        plain, board = values["plain step"], values["TensorBoard add_histogram, every step"]
        print(f"{label} per step:")
        for name, value in values.items():
            print(
                f"  {name:40s} {1e3 * value:8.1f} ms  {value / plain:5.2f}x plain"
                f"  {value / board:5.2f}x TensorBoard"
            )


if __name__ == "__main__":
    main()
