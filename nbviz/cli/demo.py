"""`nbviz demo`: train the built-in model, one layer broken on purpose, and show what nbviz sees.

Writes into the output folder the run (`demo.nbviz`), the module hierarchy (`structure.txt`),
figures of the broken layer and of the whole model, and the offline HTML report (`report.html`,
with the model's dataflow graph), and prints each path it wrote.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import TYPE_CHECKING

import torch

from ..dataflow import trace
from ..demo import BROKEN_LAYER, demo_batch, demo_model, demo_optimizer, train_demo
from ..export.html import HtmlReport, export_html
from ..hierarchy import module_hierarchy
from ..recorder import watch
from ..run import Run
from ._common import progress

if TYPE_CHECKING:
    from ._common import Subparsers

# What the demo draws: (file, view, layer, kind, metric). The broken layer's ReLU shows its dead
# units as a spike at zero; the heatmap of the `dead` diagnostic shows which layer it is.
BROKEN_RELU = "head.relu"
FIGURES = (
    ("summary.png", "summary", BROKEN_RELU, "activation", "l2"),
    ("histogram.png", "histogram", BROKEN_LAYER, "weight", "l2"),
    ("distribution.png", "distribution", BROKEN_RELU, "activation", "l2"),
    ("gradient_flow.png", "gradient_flow", BROKEN_LAYER, "grad", "l2"),
    ("heatmap.png", "heatmap", BROKEN_RELU, "activation", "dead"),
)


def add_parser(commands: Subparsers) -> None:
    p: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="train the built-in demo model (one layer broken on purpose) and export figures",
        description=__doc__,
    )
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("nbviz-demo"),
                   help="output folder (default: nbviz-demo)")  # fmt: skip
    p.add_argument("--steps", type=int, default=200, help="training steps (default: 200)")
    p.add_argument("--dpi", type=float, default=110, help="resolution of the PNGs (default: 110)")
    p.set_defaults(parser=p)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if not args.dpi > 0:
        parser.error("--dpi must be positive")


def run(args: argparse.Namespace) -> int:
    for written in demo(args.out, args.steps, dpi=args.dpi):
        print(written.describe() if isinstance(written, HtmlReport) else f"wrote {written}")
    return 0


def demo(out: pathlib.Path, steps: int, *, dpi: float = 110) -> list[pathlib.Path | HtmlReport]:
    """Train and record the demo model for `steps` steps; write the run, figures and the HTML
    report to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "demo.nbviz"
    for stale in (run_file, out / "demo.nbviz-wal", out / "demo.nbviz-shm"):
        stale.unlink(missing_ok=True)  # the demo's own previous run: start afresh, not append
    model = demo_model(misbehave=True)
    optimizer = demo_optimizer(model)
    with (
        watch(model, run_file, optimizer=optimizer, every=1, histograms_every=10,
              activations_every=5) as _,
        progress(steps, "training") as bar,
    ):  # fmt: skip
        train_demo(model, steps, optimizer=optimizer, on_step=lambda _, loss: _advance(bar, loss))
    structure = out / "structure.txt"
    structure.write_text(module_hierarchy(model).to_text() + "\n", encoding="utf-8")
    written: list[pathlib.Path | HtmlReport] = [run_file, structure]
    with Run.open(run_file) as run, progress(len(FIGURES) + 1, "figures") as bar:
        for name, view, layer, kind, metric in FIGURES:
            written.append(
                run.export(out / name, view=view, layer=layer, kind=kind, metric=metric, dpi=dpi)
            )
            bar.update()
        example, _ = demo_batch(4, torch.Generator().manual_seed(0))
        graph = trace(model, example)
        written.append(export_html(run, out / "report.html", graph=graph, selected=BROKEN_LAYER))
        bar.update()
    return written


def _advance(bar: object, loss: float) -> None:
    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)  # type: ignore[attr-defined]
    bar.update()  # type: ignore[attr-defined]
