"""Per-step overhead of recording, side by side with a plain step and with TensorBoard.

ResNet-18-like CNN, batch 16, 3×64×64, SGD, CPU. The configurations run interleaved, one step
each per round, so drift of the machine hits all of them alike; medians are printed.

Run: `.venv/bin/python benchmarks/bench_capture.py [--rounds N] [--device cuda]`. On an
accelerator each step ends with a synchronisation, so that its time is the device's too.
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
TENSORBOARD = "TensorBoard add_histogram, every step"
EVERYTHING = {"every": 1, "histograms_every": 1, "activations_every": 1, "updates_every": 1}


DEVICE = torch.device("cpu")
BATCH, IMAGE = 16, 64


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, after: Step | None) -> Step:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=generator).to(DEVICE)
    labels = torch.randint(0, 10, (BATCH,), generator=generator).to(DEVICE)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if after is not None:
            after()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)

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
        # Its event file is written by a background thread: flush so that its cost lands in its
        # own step, not in whichever configuration runs next.
        writer.flush()

    return after, writer.close


def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
    """The same model and optimizer for every configuration."""
    torch.manual_seed(0)
    model = resnet18_like().to(DEVICE)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


@contextlib.contextmanager
def nbviz_configurations(folder: pathlib.Path) -> Iterator[dict[str, Step]]:
    closers: list[Callable[[], None]] = []
    steps = {"plain step": make_step(*fresh(), None)}
    for name, options in (("nbviz, defaults", {}), ("nbviz, everything every step", EVERYTHING)):
        model, optimizer = fresh()
        recorder: Any = nbviz.watch(
            model, folder / f"{len(steps)}.nbviz", optimizer=optimizer, **options
        )
        closers.append(recorder.close)
        steps[name] = make_step(model, optimizer, None)
    try:
        yield steps
    finally:
        for close in closers:
            close()


@contextlib.contextmanager
def tensorboard_configurations(folder: pathlib.Path) -> Iterator[dict[str, Step]]:
    model, optimizer = fresh()
    after, close = tensorboard_after(model, str(folder / "tb"))
    try:
        yield {
            "plain step": make_step(*fresh(), None),
            TENSORBOARD: make_step(model, optimizer, after),
        }
    finally:
        close()


def measure(steps: dict[str, Step], rounds: int) -> dict[str, list[float]]:
    """Seconds per step of each configuration, interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for round_ in range(rounds + 3):
        # Rotate the order so that what one configuration leaves behind (threads, cold
        # caches) falls on each of the others equally often.
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            steps[name]()
            if round_ >= 3:  # warm-up rounds: allocator, thread pools, first histograms
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--tensorboard-rounds", type=int, default=12)
    parser.add_argument("--device", default="cpu", help="cpu (the issue's figures) or cuda")
    parser.add_argument("--batch", type=int, default=16, help="images per step")
    parser.add_argument("--image", type=int, default=64, help="image side in pixels")
    args = parser.parse_args()
    global DEVICE, BATCH, IMAGE
    DEVICE, BATCH, IMAGE = torch.device(args.device), args.batch, args.image
    torch.set_num_threads(2)
    # TensorBoard runs in its own block, against its own plain step: beside it, every other
    # configuration slows down (its numpy work and writer thread crowd two cores).
    with tempfile.TemporaryDirectory() as folder:
        with nbviz_configurations(pathlib.Path(folder)) as steps:
            ours = measure(steps, args.rounds)
        with tensorboard_configurations(pathlib.Path(folder)) as steps:
            theirs = measure(steps, args.tensorboard_rounds)
    where = "CPU (2 threads)" if DEVICE.type == "cpu" else torch.cuda.get_device_name(DEVICE)
    print(f"ResNet-18-like, batch {BATCH}, 3x{IMAGE}x{IMAGE}, SGD with momentum, {where}")
    # Periodic captures hide from a median: print the mean beside it.
    for label, summary in (("median", statistics.median), ("mean", statistics.fmean)):
        plain = summary(ours["plain step"])
        board = summary(theirs[TENSORBOARD]) / summary(theirs["plain step"])
        print(f"{label} per step ({args.rounds} and {args.tensorboard_rounds} rounds):")
        for name, times in ours.items():
            ratio = summary(times) / plain
            print(
                f"  {name:40s} {1e3 * summary(times):8.1f} ms  {ratio:5.2f}x plain"
                f"  {ratio / board:5.2f}x TensorBoard"
            )
        print(
            f"  {TENSORBOARD:40s} {1e3 * summary(theirs[TENSORBOARD]):8.1f} ms  {board:5.2f}x plain"
        )


if __name__ == "__main__":
    main()
