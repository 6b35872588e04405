"""A small built-in model and synthetic task, so nbviz has something to show out of the box."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def demo_model() -> nn.Module:
    """A small convolutional classifier for 1×16×16 images, 10 classes."""
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
            fc1=nn.Linear(16 * 8 * 8, 128),
            relu=nn.ReLU(),
            fc2=nn.Linear(128, 10),
        )
    )
    return nn.Sequential(OrderedDict(features=features, head=head))


def demo_batch(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is the row holding a bright stripe (rows 0..9), plus noise."""
    labels = torch.randint(0, 10, (batch_size,), generator=generator)
    images = torch.randn(batch_size, 1, 16, 16, generator=generator)
    images[torch.arange(batch_size), 0, labels + 3, :] += 0.8
    return images, labels


def demo_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def train_demo(
    model: nn.Module, steps: int, seed: int = 0, optimizer: torch.optim.Optimizer | None = None
) -> list[float]:
    """Trains `model` on the synthetic task with SGD; returns the loss of each step."""
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
    return losses
