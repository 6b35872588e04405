"""A small built-in model and synthetic task, so nbviz has something to show out of the box."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

# The layer `misbehave=True` breaks, and how: half of its units are switched off for good.
BROKEN_LAYER = "head.fc1"
DEAD_UNITS = 64


def demo_model(misbehave: bool = False) -> nn.Module:
    """A small convolutional classifier for 1×16×16 images, 10 classes.

    With `misbehave`, the first DEAD_UNITS units of head.fc1 get a bias of -10: their ReLU never
    fires, so they get no gradient and stay dead (head.relu's `dead` diagnostic reads 0.5), a
    common failure (too high a learning rate or a bad initialisation) for nbviz to find.
    """
    features = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 8, 3, padding=1),
            bn1=nn.BatchNorm2d(8),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(8, 16, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.MaxPool2d(2),
        )
    )
    head = nn.Sequential(
        OrderedDict(
            flatten=nn.Flatten(),
            fc1=(fc1 := nn.Linear(16 * 8 * 8, 128)),
            relu=nn.ReLU(),
            fc2=nn.Linear(128, 10),
        )
    )
    model = nn.Sequential(OrderedDict(features=features, head=head))
    if misbehave:
        with torch.no_grad():
            fc1.bias[:DEAD_UNITS] = -10.0
    return model


def demo_batch(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is the row holding a bright stripe (rows 0..9), plus noise."""
    labels = torch.randint(0, 10, (batch_size,), generator=generator)
    images = torch.randn(batch_size, 1, 16, 16, generator=generator)
    images[torch.arange(batch_size), 0, labels + 3, :] += 0.8
    return images, labels


def demo_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def train_demo(
    model: nn.Module,
    steps: int,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Trains `model` on the synthetic task with SGD; returns the loss of each step.

    `on_step(step, loss)` is called after each step (the command line's progress bar).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = optimizer or demo_optimizer(model)
    losses = []
    model.train()
    for _ in range(steps):
        images, labels = demo_batch(32, generator)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(len(losses) - 1, losses[-1])
    return losses
