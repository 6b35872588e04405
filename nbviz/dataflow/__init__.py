"""The dataflow graph of one forward pass (`trace`) and the autograd graph (`autograd_svg`)."""

from __future__ import annotations

from .autograd import GraphvizMissingError, autograd_svg
from .graph import Edge, Graph, GraphWarning, Node
from .tracer import trace, trace_call

__all__ = [
    "Edge",
    "Graph",
    "GraphWarning",
    "GraphvizMissingError",
    "Node",
    "autograd_svg",
    "trace",
    "trace_call",
]
