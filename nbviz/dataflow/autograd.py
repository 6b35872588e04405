"""The autograd graph of an output or loss as SVG, drawn by torchviz, parameter names on leaves."""

from __future__ import annotations

import shutil
import warnings
from typing import Any

import torch
from torch import nn

from .modules import COMPILED_PREFIX

INSTALL_HINT = "apt-get install -y graphviz"


class GraphvizMissingError(RuntimeError):
    """Graphviz's `dot` program is not installed."""


def autograd_svg(output: torch.Tensor | tuple[torch.Tensor, ...], model: nn.Module) -> str:
    """SVG of the backward graph that produced `output` (a tensor, or a tuple of tensors).

    Run the forward with gradients enabled first: `autograd_svg(loss, model)`. Leaves that are
    parameters of `model` are labelled with their qualified names (`fc.weight`).
    """
    outputs = output if isinstance(output, tuple) else (output,)
    if not any(t.grad_fn is not None for t in outputs):
        raise ValueError(
            "the output has no autograd graph: run the forward with gradients enabled"
            " (not under torch.no_grad()) and with parameters that require grad"
        )
    if shutil.which("dot") is None:
        raise graphviz_missing("the autograd graph")
    import graphviz
    import torchviz

    params = {_clean(name): p for name, p in model.named_parameters()}
    with warnings.catch_warnings():  # torchviz compares versions with distutils: not ours to see
        warnings.simplefilter("ignore", DeprecationWarning)
        dot = torchviz.make_dot(output, params=params)
    try:
        svg: Any = dot.pipe(format="svg")
    except graphviz.ExecutableNotFound as error:
        raise graphviz_missing("the autograd graph") from error
    return bytes(svg).decode()


def graphviz_missing(what: str) -> GraphvizMissingError:
    """The error for a missing `dot`, saying how to install it."""
    return GraphvizMissingError(f"{what} needs Graphviz's `dot` program: `{INSTALL_HINT}`")


def _clean(name: str) -> str:
    """torch.compile's wrapper adds `_orig_mod.` to every name; people never wrote it."""
    return ".".join(part for part in name.split(".") if part != COMPILED_PREFIX)
