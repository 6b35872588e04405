"""The dataflow graph of one forward pass: nodes, tensor edges, warnings; wire format version 1.

The wire format is written down in docs/graph-format.md and shared with js/src/graph: field
names and meanings here must stay in step with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..run import Run

WIRE_VERSION = 1

NodeKind = Literal["input", "output", "module", "op"]
WarningKind = Literal["not_run", "bypassed_hooks", "unregistered", "non_tensor_output", "error"]


@dataclass
class Node:
    """One node; mutable only while the tracer fills in what it learns after a call returns."""

    id: int
    kind: NodeKind
    name: str
    cls: str
    parent: int = -1
    call: int = 0
    params: int = 0
    shape: tuple[int, ...] | None = None
    dtype: str = ""
    sig: str = ""

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "cls": self.cls,
            "parent": self.parent,
            "call": self.call,
            "params": self.params,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype,
            "sig": self.sig,
        }


@dataclass(frozen=True)
class Edge:
    """A tensor from `src` to `dst`, with its shape and dtype where `dst` consumed it."""

    src: int
    dst: int
    shape: tuple[int, ...]
    dtype: str

    def wire(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class GraphWarning:
    """Something the trace did not see, or is unsure of; `module` is a qualified name."""

    kind: WarningKind
    module: str
    message: str

    def wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "module": self.module, "message": self.message}


@dataclass
class Graph:
    """What `nbviz.trace` returns. Nodes are in execution order, ids dense from 0."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    warnings: list[GraphWarning] = field(default_factory=list)
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict of docs/graph-format.md, version 1."""
        return {
            "version": WIRE_VERSION,
            "nodes": [node.wire() for node in self.nodes],
            "edges": [edge.wire() for edge in self.edges],
            "warnings": [warning.wire() for warning in self.warnings],
            "error": self.error,
        }

    def to_text(self) -> str:
        """A deterministic rendering: one line per node, indented by nesting (see `text`)."""
        from .text import render

        return render(self)

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        expanded: Iterable[str] | None = None,
        unfolded: Iterable[str] = (),
        overlay: str | None = None,
        run: Run | None = None,
        step: int | None = None,
        dpi: float | None = None,
    ) -> Path:
        """Write the structure diagram, as the widget draws it, to .svg, .png or .pdf.

        `expanded`: open groups, by module name or "name#call" (None: the widget's default);
        `unfolded`: folds of repeated blocks shown unfolded, by their first member's name;
        `overlay`: colour module boxes by a metric of `run` at `step` (None: its last step), on
        the run's scale, with a legend. Needs Graphviz's `dot`. See `nbviz.export.structure`.
        """
        from ..export.structure import export_structure

        return export_structure(
            self, path, expanded=expanded, unfolded=unfolded, overlay=overlay, run=run,
            step=step, dpi=dpi,
        )  # fmt: skip

    def groups(self) -> set[int]:
        """Ids of module nodes that some node names as its parent."""
        return {node.parent for node in self.nodes if node.parent >= 0}

    def find(self, name: str, kind: NodeKind | None = None) -> list[Node]:
        """Nodes called `name` (every call of a module), optionally of one kind only."""
        return [n for n in self.nodes if n.name == name and (kind is None or n.kind == kind)]

    def inputs_of(self, node_id: int) -> list[Edge]:
        return [edge for edge in self.edges if edge.dst == node_id]

    def warned(self, kind: WarningKind) -> list[str]:
        """Module names with a warning of `kind`, in the order they were raised."""
        return [w.module for w in self.warnings if w.kind == kind]
