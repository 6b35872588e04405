"""`Graph.to_text()`: one line per node, indented by nesting; deterministic, for golden tests.

    #3 module layer1.0.conv1 (Conv2d) 2×4×8×8 float32 params=144 <- #2

A module with children prints as `group`; a second call of a module as `name@1`; an edge whose
shape differs from its source node's output shows it (`<- #4:2×8`). Warnings and the error
follow the nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Graph, Node


def shape_text(shape: Sequence[int] | None) -> str:
    if shape is None:
        return "-"
    return "×".join(str(size) for size in shape) or "scalar"


def render(graph: Graph) -> str:
    groups = graph.groups()
    depth: list[int] = []
    sources: list[list[str]] = [[] for _ in graph.nodes]
    for edge in graph.edges:
        src = graph.nodes[edge.src]
        mark = f"#{edge.src}"
        if src.shape is None or tuple(edge.shape) != tuple(src.shape):
            mark += f":{shape_text(edge.shape)}"
        sources[edge.dst].append(mark)
    lines = []
    for node in graph.nodes:
        depth.append(0 if node.parent < 0 else depth[node.parent] + 1)
        lines.append("  " * depth[-1] + _line(node, node.id in groups, sources[node.id]))
    lines.extend(f"warning {w.kind} {w.module or '(root)'}: {w.message}" for w in graph.warnings)
    if graph.error is not None:
        lines.append(f"error: {graph.error}")
    return "\n".join(lines) + "\n"


def _line(node: Node, group: bool, sources: list[str]) -> str:
    kind = "group" if group else node.kind
    name = node.name or "(root)"
    if node.call:
        name += f"@{node.call}"
    parts = [f"#{node.id}", kind, name, f"({node.cls})", shape_text(node.shape)]
    if node.dtype:
        parts.append(node.dtype)
    if node.kind == "module":
        parts.append(f"params={node.params}")
    if sources:
        parts.append("<- " + " ".join(sources))
    return " ".join(parts)
