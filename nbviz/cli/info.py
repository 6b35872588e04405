"""`nbviz info RUN`: what a run holds: steps, layers and what was recorded of them, anomalies,
diagnostics that look wrong, and sizes."""

from __future__ import annotations

import argparse
import collections
import pathlib
from typing import TYPE_CHECKING, Final

import numpy as np

from ..records import KINDS
from ..run import Run
from ._common import human_bytes, open_run

if TYPE_CHECKING:
    from ._common import Subparsers

# Diagnostics worth a line: the latest value of the statistic at or above the threshold.
FLAGS: Final = (
    ("dead", 0.25, "of channels dead (never positive)"),
    ("saturated", 0.25, "of elements saturated"),
)
MAX_ANOMALIES: Final = 10  # listed one a line; the rest are counted


def add_parser(commands: Subparsers) -> None:
    p: argparse.ArgumentParser = commands.add_parser(
        "info", help="describe a run: steps, layers, anomalies, sizes", description=__doc__
    )
    p.add_argument("run", type=pathlib.Path, metavar="RUN", help="an nbviz run file")
    p.set_defaults(parser=p)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    with open_run(args.run) as r:
        print("\n".join(describe(r)))
    return 0


def describe(run: Run) -> list[str]:
    lines = [f"run: {run.path} ({'complete' if run.complete else 'still being written'})"]
    lines += _steps(run)
    lines += _layers(run)
    lines += _anomalies(run)
    lines += _diagnostics(run)
    lines += _sizes(run)
    return lines


def _steps(run: Run) -> list[str]:
    steps = run.steps
    if len(steps) == 0:
        return ["steps: none recorded"]
    skipped = run.skipped_steps
    text = f"steps: {len(steps)} train steps, {steps[0]}..{steps[-1]}"
    if skipped:
        text += f", {len(skipped)} skipped ({', '.join(str(s.step) for s in skipped[:5])}"
        text += ", ...)" if len(skipped) > 5 else ")"
    return [text]


def _layers(run: Run) -> list[str]:
    kinds: dict[str, set[str]] = collections.defaultdict(set)
    for key in run.series(mode=None):
        kinds[key.layer].add(key.kind)
    metas = run.layers
    names = [m.name for m in metas] + sorted(set(kinds) - {m.name for m in metas})
    cls = {m.name: m.cls for m in metas}
    lines = [f"layers: {len(names)}, {len(kinds)} with records"]
    width = max((len(n or "(model)") for n in names), default=0)
    for name in names:
        recorded = ", ".join(k for k in KINDS if k in kinds.get(name, ()))
        label = name or "(model)"
        lines.append(f"  {label:<{width}}  {cls.get(name, '?'):<16} {recorded or '-'}")
    return lines


def _anomalies(run: Run) -> list[str]:
    found = run.anomalies
    if not found:
        return ["anomalies: none (no NaN or Inf recorded)"]
    lines = [f"anomalies: {len(found)} (NaN/Inf; the first is where to look)"]
    for a in found[:MAX_ANOMALIES]:
        where = a.key.layer + (f".{a.key.tensor}" if a.key.tensor else "")
        lines.append(
            f"  step {a.step} {a.phase}: {where} {a.key.kind}: "
            f"{a.nan} NaN, {a.posinf} +Inf, {a.neginf} -Inf"
            + (f" ({a.detail})" if a.detail else "")
        )
    if len(found) > MAX_ANOMALIES:
        lines.append(f"  ... and {len(found) - MAX_ANOMALIES} more")
    return lines


def _diagnostics(run: Run) -> list[str]:
    lines = []
    for key in run.series(kind="activation"):
        stats = run.stats(key.layer, key.kind, key.tensor, call=key.call)
        if len(stats) == 0:
            continue
        for field, threshold, what in FLAGS:
            value = stats.values[field][-1]
            if np.isfinite(value) and value >= threshold:
                lines.append(f"  {key.layer}: {value:.0%} {what} at step {int(stats.step_lo[-1])}")
    return ["diagnostics:", *lines] if lines else ["diagnostics: nothing flagged"]


def _sizes(run: Run) -> list[str]:
    sizes = run.sizes()
    on_disk = f"{human_bytes(sizes['bytes'])} on disk; " if "bytes" in sizes else ""
    return [
        f"size: {on_disk}{sizes['series']} series, {sizes['stats']:,} statistics rows, "
        f"{sizes['hists']:,} histograms"
    ]
