"""Gradient flow: the gradient norm of every parameter across the model at one step.

Vanishing or exploding gradients show as a slope along the depth of the model; bars are in model
order, top to bottom, on a log scale. With `kind="activation_grad"` the same for the gradients
of the layers' outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ..records import SeriesKey
from ._data import NORM_LABELS, Selection, highlighted, ordered, row_at, tensor_name

if TYPE_CHECKING:
    from matplotlib.figure import FigureBase

    from ..run import Run

BAR_HEIGHT = 0.24  # inches per parameter


@dataclass(frozen=True)
class Flow:
    keys: list[SeriesKey]
    l2: NDArray[np.float64]  # NaN where nothing was recorded at or before the step
    max_abs: NDArray[np.float64]
    steps: NDArray[np.int64]  # the step each value was recorded at (-1 for none)


def flow_kind(kind: str) -> str:
    return kind if kind in ("grad", "activation_grad") else "grad"


def flow(run: Run, sel: Selection) -> Flow:
    kind = flow_kind(sel.kind)
    keys = ordered(run, run.series(kind=kind, mode=sel.mode))
    l2, max_abs, steps = np.full(len(keys), np.nan), np.full(len(keys), np.nan), []
    for i, key in enumerate(keys):
        s = run.stats(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
        row = row_at(s, sel.step)
        steps.append(-1 if row is None else int(s.step_lo[row]))
        if row is not None:
            l2[i] = s.values["l2"][row]
            max_abs[i] = max(abs(s.values["min"][row]), abs(s.values["max"][row]))
    return Flow(keys, l2, max_abs, np.array(steps, dtype=np.int64))


def size(run: Run, sel: Selection) -> tuple[float, float]:
    n = len(run.series(kind=flow_kind(sel.kind), mode=sel.mode))
    return (8.0, 1.6 + BAR_HEIGHT * max(n, 3))


def draw(fig: FigureBase, run: Run, sel: Selection) -> Flow:
    data = flow(run, sel)
    ax = fig.subplots()
    y = np.arange(len(data.keys))
    finite = np.isfinite(data.l2) & (data.l2 > 0)
    colors = ["C1" if highlighted(k, sel.layer) else "C0" for k in data.keys]
    # Bars only where a log axis can draw them; zeros and NaN/Inf are written out instead.
    ax.barh(y[finite], data.l2[finite], color=[c for c, f in zip(colors, finite, strict=True) if f])
    ax.plot(data.max_abs, y, linestyle="none", marker="|", color="black", label="max |value|")
    for i in np.flatnonzero(~finite):
        value = data.l2[i]
        text = "not recorded" if np.isnan(value) and data.steps[i] < 0 else f"{value:g}"
        ax.annotate(
            text,
            (0, y[i]),
            xycoords=("axes fraction", "data"),
            va="center",
            xytext=(4, 0),
            textcoords="offset points",
            fontsize="x-small",
            color="C3",
        )
    if finite.any():
        ax.set_xscale("log")
    ax.set_yticks(y, [tensor_name(k) for k in data.keys], fontsize="small")
    ax.set_ylim(len(data.keys) - 0.5, -0.5)  # model order from the top
    ax.set_xlabel(f"{NORM_LABELS[flow_kind(sel.kind)]} (log scale)")
    ax.legend(fontsize="x-small", loc="lower right")
    stale = sorted({int(s) for s in data.steps if 0 <= s != sel.step})
    note = f" (latest recorded at or before it: steps {_steps(stale)})" if stale else ""
    fig.suptitle(f"Gradient flow at step {sel.step}{note}")
    return data


def _steps(steps: list[int]) -> str:
    return ", ".join(map(str, steps[:4])) + (", ..." if len(steps) > 4 else "")
