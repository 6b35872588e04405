"""Static figures of a run with matplotlib, and its data for other tools.

`figure(run, view, selection)` draws one of VIEWS into a new `matplotlib.figure.Figure` (never
pyplot: the user's backend and open figures are left alone); `save` writes it by extension
(PNG, SVG, PDF), SVG and PDF deterministically. `Run.export` and the command line use both;
the widget's export passes its selected layer, kind and step as a `Selection`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import matplotlib
from matplotlib.figure import Figure

from . import distribution, gradient_flow, heatmap, histogram, summary
from ._data import Selection, select
from ._paths import output_path
from ._svg import stable_ids

if TYPE_CHECKING:
    from matplotlib.figure import FigureBase

    from ..run import Run

__all__ = [
    "FORMATS",
    "VIEWS",
    "Selection",
    "check_path",
    "export",
    "figure",
    "save",
    "select",
    "view_figure",
]

_Draw = Callable[["FigureBase", "Run", Selection], object]
_Size = Callable[["Run", Selection], tuple[float, float]]

VIEWS: Final[dict[str, tuple[_Draw, _Size]]] = {
    "histogram": (histogram.draw, histogram.size),
    "distribution": (distribution.draw, distribution.size),
    "gradient_flow": (gradient_flow.draw, gradient_flow.size),
    "heatmap": (heatmap.draw, heatmap.size),
    "summary": (summary.draw, summary.size),
}
# Views about one layer; the others are about the whole model and only highlight the layer.
LAYER_VIEWS: Final = ("histogram", "distribution", "summary")
FORMATS: Final = ("png", "svg", "pdf")
# Salt of the SVG ids when the user set none: the same figure always gives the same bytes.
SVG_SALT: Final = "nbviz"


def figure(run: Run, view: str, sel: Selection) -> Figure:
    """A new Figure of `view`; sized to its content, styled by the current rcParams."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: choose one of {', '.join(VIEWS)}")
    draw, size = VIEWS[view]
    # Constrained layout keeps long layer names and colour bars inside the figure, also across
    # the summary's subfigures; it is the one rcParam-like choice made for the user.
    fig = Figure(figsize=size(run, sel), layout="constrained")
    draw(fig, run, sel)
    return fig


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> Path:
    """Write `fig` in the format its extension names; SVG and PDF carry no date."""
    out, fmt = check_path(path)
    # No dates: the same figure gives the same bytes (PNG carries none by default).
    metadata: dict[str, str | None] = {}
    if fmt == "svg":
        metadata["Date"] = None
    elif fmt == "pdf":
        metadata["CreationDate"] = None
    salt = matplotlib.rcParams["svg.hashsalt"] or SVG_SALT
    resolution = "figure" if dpi is None else dpi
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        if fmt != "svg":
            fig.savefig(out, format=fmt, dpi=resolution, metadata=metadata)
            return out
        buffer = io.StringIO()
        fig.savefig(buffer, format=fmt, dpi=resolution, metadata=metadata)
    out.write_text(stable_ids(buffer.getvalue(), salt), encoding="utf-8")
    return out


def check_path(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The path and its format; ValueError or FileNotFoundError before anything is drawn."""
    return output_path(path, FORMATS, "a figure")


def view_figure(
    run: Run,
    view: str = "summary",
    *,
    layer: str | None = None,
    kind: str = "weight",
    step: int | None = None,
    tensor: str | None = None,
    metric: str = "l2",
    call: int = 0,
    mode: str = "train",
) -> Figure:
    """`figure` for keyword arguments as `Run.export` takes them, checked and defaulted."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: choose one of {', '.join(VIEWS)}")
    if view == "gradient_flow":
        kind = gradient_flow.flow_kind(kind)
    sel = select(
        run, layer=layer, kind=kind, step=step, tensor=tensor, call=call, mode=mode,
        metric=metric, need_layer=view in LAYER_VIEWS,
    )  # fmt: skip
    return figure(run, view, sel)


def export(
    run: Run,
    path: str | os.PathLike[str],
    *,
    view: str = "summary",
    layer: str | None = None,
    kind: str = "weight",
    step: int | None = None,
    tensor: str | None = None,
    metric: str = "l2",
    call: int = 0,
    mode: str = "train",
    dpi: float | None = None,
) -> Path:
    """Draw `view` of `run` and write it to `path` (see `Run.export`)."""
    check_path(path)
    fig = view_figure(
        run, view, layer=layer, kind=kind, step=step, tensor=tensor, metric=metric, call=call,
        mode=mode,
    )  # fmt: skip
    return save(fig, path, dpi=dpi)
