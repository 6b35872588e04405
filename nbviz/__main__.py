"""Command line: `nbviz demo` trains the built-in model and writes what nbviz sees of it."""

from __future__ import annotations

import argparse
import pathlib
import sys

from .demo import demo_model, demo_optimizer, train_demo
from .figures import gradient_norms, parameter_histograms
from .hierarchy import module_hierarchy
from .recorder import watch
from .run import Run
from .stats import summarize


def demo(out: pathlib.Path, steps: int) -> list[pathlib.Path]:
    """Trains the demo model briefly, recording it, and writes what nbviz saw to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "demo.nbviz"
    run_file.unlink(missing_ok=True)  # the demo's own previous run: start afresh, not append
    model = demo_model()
    optimizer = demo_optimizer(model)
    with watch(model, run_file, optimizer=optimizer, every=1, histograms_every=10):
        losses = train_demo(model, steps, optimizer=optimizer)
    hierarchy = module_hierarchy(model)
    summaries = summarize([None if p.lazy else p.tensor for p in hierarchy.params])
    structure = out / "structure.txt"
    structure.write_text(hierarchy.to_text() + "\n", encoding="utf-8")
    figure = out / "weights.png"
    title = f"Demo model after {steps} steps (loss {losses[0]:.3f} → {losses[-1]:.3f})"
    parameter_histograms(hierarchy, summaries, title).savefig(figure, dpi=110)
    flow = out / "gradient_norms.png"
    with Run.open(run_file) as run:
        gradient_norms(run).savefig(flow, dpi=110)
    return [run_file, structure, figure, flow]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbviz", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="train the built-in demo model and export it")
    demo_parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("nbviz-demo"))
    demo_parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    for path in demo(args.out, args.steps):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
