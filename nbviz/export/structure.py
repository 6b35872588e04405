"""The structure diagram as a file (SVG, PNG, PDF), drawn by Graphviz's `dot`, without a browser.

Shows what the widget's diagram shows for the same expansion state: the same boxes (collapsed
groups, "Block ×6" folds, open groups as dashed clusters), the same text (name, class, output
shape, parameters; shapes on the edges) and colours (by module class, or by an overlay metric at
a step on the run's scale, with a legend); the boxes come from a port of js/src/graph/model.ts
(`nbviz.dataflow.diagram`), the overlay from one of js/src/panels/scale.ts (`._overlay`). Only the
layout differs: Graphviz's instead of ELK's. Every label goes through HTML escaping: module and
class names are text, never markup. SVG output is deterministic for a given Graphviz version.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..dataflow.autograd import graphviz_missing
from ..dataflow.diagram import (
    ROOT_BOX,
    Box,
    GraphIndex,
    VisibleGraph,
    box_lines,
    box_text,
    default_expanded,
    edge_label,
    format_value,
    index_graph,
    local_name,
    node_color,
    visible_graph,
    with_enclosing,
)
from ._overlay import LEGEND_SWATCHES, METRIC_LABELS, NO_DATA_RGB, Overlay, hex_color
from ._paths import output_path

if TYPE_CHECKING:
    from ..dataflow.graph import Graph
    from ..run import Run

__all__ = ["export_structure", "structure_dot"]

FORMATS: Final = ("svg", "png", "pdf")
FONT: Final = "Helvetica,Arial,sans-serif"
MONO: Final = "Courier,monospace"


def _text(value: str) -> str:
    """Text for a Graphviz HTML-like label: markup characters become entities; backslashes are
    doubled, or Graphviz would read escapes (\\N: the node's id), even from an entity."""
    return html.escape(value, quote=True).replace("&#x27;", "'").replace("\\", "\\\\")


def _box_label(index: GraphIndex, box: Box) -> str:
    text = box_text(index, box)
    title, *rest = box_lines(text)
    parts = [f"<B>{_text(title)}</B>" if title else ""]  # Graphviz refuses an empty <B>
    for i, line in enumerate(rest):
        # The detail line (shape, parameters) in monospace, as in the browser.
        is_detail = text.detail != "" and i == len(rest) - 1
        face = f' FACE="{MONO}" POINT-SIZE="9"' if is_detail else ' POINT-SIZE="10"'
        parts.append(f'<FONT{face} COLOR="#333333">{_text(line)}</FONT>')
    return "<" + '<BR ALIGN="LEFT"/>'.join(parts) + '<BR ALIGN="LEFT"/>>'


def _box_fill(index: GraphIndex, box: Box, overlay: Overlay | None, names: Collection[str]) -> str:
    node = index.nodes[box.node]
    if node is None:
        return "#eeeeee"
    if overlay is not None and node["kind"] == "module" and node["name"] in names:
        return overlay.color(node["name"])  # the browser paints module boxes it knows by name
    return node_color(node["kind"], node["cls"])


def _legend(overlay: Overlay) -> str:
    """A legend node: metric and step, the domain's ends around a strip, and "no data"."""
    scale = overlay.scale
    d0, d1 = scale.domain
    swatches = "".join(
        f'<TD BGCOLOR="{hex_color(scale.rgb(v))}" WIDTH="8" HEIGHT="12"></TD>'
        for v in scale.legend_values()
    )
    kind = "" if scale.kind == "linear" else " (log scale)"
    title = f"{METRIC_LABELS[overlay.metric]} at step {overlay.step}{kind}"
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
        f'<TR><TD COLSPAN="{LEGEND_SWATCHES + 4}" ALIGN="LEFT"><B>{_text(title)}</B></TD></TR>'
        f"<TR><TD>{_text(format_value(d0))}</TD>{swatches}<TD>{_text(format_value(d1))}</TD>"
        f'<TD BGCOLOR="{hex_color(NO_DATA_RGB)}" WIDTH="12" HEIGHT="12"></TD>'
        "<TD>no data</TD></TR></TABLE>>"
    )


def structure_dot(
    graph: Mapping[str, Any],
    *,
    expanded: Iterable[str] | None = None,
    unfolded: Iterable[str] = (),
    overlay: Overlay | None = None,
    names: Collection[str] | None = None,
    dpi: float | None = None,
) -> str:
    """The DOT source of the diagram of a wire graph (docs/graph-format.md).

    `expanded`: open groups by "name#call" (None: the browser's default); `unfolded`: folds by
    their first member's "name#call"; `overlay`: colours for module boxes named in `names`
    (default: every module of the graph).
    """
    index = index_graph(graph)
    keys = index.group_keys()
    open_ids = (
        default_expanded(index) if expanded is None else {keys[k] for k in expanded if k in keys}
    )
    vg = visible_graph(index, open_ids, set(unfolded))
    if names is None:
        names = {n["name"] for n in graph["nodes"] if n["kind"] == "module"}
    dot_ids = {box_id: f"b{i}" for i, box_id in enumerate(vg.boxes)}
    lines = [
        "digraph structure {",
        f'  graph [rankdir=TB, fontname="{FONT}", fontsize=11, nodesep=0.3, ranksep=0.35,'
        f' bgcolor="white", pad=0.2{"" if dpi is None else f", dpi={dpi:g}"}];',
        f'  node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=11,'
        ' color="#00000059", penwidth=1, margin="0.12,0.06"];',
        f'  edge [fontname="{MONO}", fontsize=9, fontcolor="#666666", color="#999999",'
        " arrowsize=0.6];",
    ]
    _emit_level(lines, index, vg, ROOT_BOX, dot_ids, overlay, names, "  ")
    for edge in vg.edges:
        shown = edge.shape or edge.count > 1
        label = edge_label(edge.shape, edge.dtype, edge.count) if shown else ""
        attrs = f" [label=<{_text(label)}>]" if label else ""
        lines.append(f"  {dot_ids[edge.src]} -> {dot_ids[edge.dst]}{attrs};")
    if overlay is not None:
        lines.append(f'  legend [shape=plaintext, style="", label={_legend(overlay)}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _emit_level(
    lines: list[str],
    index: GraphIndex,
    vg: VisibleGraph,
    level: str,
    dot_ids: Mapping[str, str],
    overlay: Overlay | None,
    names: Collection[str],
    indent: str,
) -> None:
    for box_id in vg.children.get(level, []):
        box = vg.boxes[box_id]
        node = index.nodes[box.node] or {}
        if box.kind == "open":
            title = f"{local_name(index, box.node)} · {node.get('cls', '')}"
            lines.append(f"{indent}subgraph cluster_{dot_ids[box_id]} {{")
            lines.append(
                f"{indent}  label=<<B>{_text(title)}</B>>; labeljust=l; fontsize=11;"
                ' style="dashed,rounded,filled"; color="#bbbbbb"; fillcolor="#f7f7f7";'
            )
            _emit_level(lines, index, vg, box_id, dot_ids, overlay, names, indent + "  ")
            lines.append(f"{indent}}}")
            continue
        fill = _box_fill(index, box, overlay, names)
        extra = ""
        if box.kind == "group":
            extra = ", penwidth=2"  # a collapsed group: a thicker border, as in the browser
        elif box.kind == "fold":
            extra = ', style="rounded,filled,bold", peripheries=2'
        label = _box_label(index, box)
        lines.append(f'{indent}{dot_ids[box_id]} [label={label}, fillcolor="{fill}"{extra}];')


def render(source: str, fmt: str) -> bytes:
    """`dot` output of a DOT source; GraphvizMissingError (with the fix) without the program."""
    if shutil.which("dot") is None:
        raise graphviz_missing("exporting the structure diagram")
    import graphviz

    try:
        out: bytes = graphviz.pipe("dot", fmt, source.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound as error:
        raise graphviz_missing("exporting the structure diagram") from error
    return out


def export_structure(
    graph: Graph | Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    expanded: Iterable[str] | None = None,
    unfolded: Iterable[str] = (),
    overlay: str | None = None,
    run: Run | None = None,
    step: int | None = None,
    dpi: float | None = None,
) -> Path:
    """Write the structure diagram of `graph` (a `Graph` or its wire dict) to `path`.

    The format comes from the extension: .svg, .png (`dpi`, default 96) or .pdf. `expanded`
    lists groups to open, with the groups around them, as "name#call" or module names (None:
    the widget's default); `unfolded` the folds shown unfolded, by their first member's
    "name#call" or name. `overlay` colours module boxes by a metric of `run` ("grad_norm",
    "activation_std", "update_ratio", "dead_fraction", "nonfinite") at `step` (None: the last
    recorded step) on the run's scale, as the widget does. Needs Graphviz's `dot`
    (GraphvizMissingError says how to install it).
    """
    wire = graph.to_wire() if hasattr(graph, "to_wire") else graph
    index = index_graph(wire)
    keys = None if expanded is None else _group_keys(index, expanded)
    # A fold may be named by its first member's name too ("blocks.0" for "blocks.0#0").
    by_name = {f.key.rpartition("#")[0]: f.key for f in index.folds}
    unfolded = [key if key in by_name.values() else by_name.get(key, key) for key in unfolded]
    shown: Overlay | None = None
    names = None
    if overlay is not None:
        if run is None:
            raise ValueError(f"overlay={overlay!r} needs the run to read it from: run=...")
        check_path(path, dpi)
        shown = Overlay.of_run(run, overlay, step)
        names = {layer.name for layer in run.layers}
    elif step is not None:
        raise ValueError("step applies to the overlay only: pass overlay=... and run=...")
    return write_diagram(
        wire, path, expanded=keys, unfolded=unfolded, overlay=shown, names=names, dpi=dpi
    )


def write_diagram(
    wire: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    expanded: Iterable[str] | None,
    unfolded: Iterable[str],
    overlay: Overlay | None,
    names: Collection[str] | None,
    dpi: float | None,
) -> Path:
    """Write the diagram for exactly this state (`structure_dot`'s arguments) to `path`."""
    out, fmt = check_path(path, dpi)
    unfolded = list(unfolded)
    folds = {f.key for f in index_graph(wire).folds}
    unknown = [key for key in unfolded if key not in folds]
    if unknown:
        raise ValueError(
            f"no fold {unknown[0]!r} in the graph: folds are {', '.join(map(repr, sorted(folds)))}"
        )
    source = structure_dot(
        wire, expanded=expanded, unfolded=unfolded, overlay=overlay, names=names, dpi=dpi
    )
    out.write_bytes(render(source, fmt))
    return out


def check_path(path: str | os.PathLike[str], dpi: float | None) -> tuple[Path, str]:
    """The path and its format, checked before anything is drawn."""
    out, fmt = output_path(path, FORMATS, "the diagram")
    if dpi is not None and fmt != "png":
        raise ValueError(f"dpi applies to .png files only, not .{fmt}")
    return out, fmt


def _group_keys(index: GraphIndex, entries: Iterable[str]) -> list[str]:
    """ "name#call" keys of the groups to open with their enclosing groups (so that they show);
    a bare module name opens every call of it."""
    keys = index.group_keys()
    out: list[str] = []
    for entry in entries:
        found = (
            [entry]
            if entry in keys
            else [k for k, i in keys.items() if (index.nodes[i] or {}).get("name") == entry]
        )
        if not found:
            raise ValueError(
                f"no group {entry!r} in the graph: groups are "
                + ", ".join(repr(k) for k in list(keys)[:10])
                + (" ..." if len(keys) > 10 else "")
            )
        out += found
    return with_enclosing(index, out)
