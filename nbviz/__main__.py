"""Command line: `nbviz demo` trains the built-in model and writes what nbviz sees of it."""

from __future__ import annotations

import argparse
import pathlib
import sys

from .demo import demo_model, train_demo
from .figures import parameter_histograms
from .hierarchy import module_hierarchy
from .stats import summarize


def demo(out: pathlib.Path, steps: int) -> list[pathlib.Path]:
    """Trains the demo model briefly and writes its structure and weight statistics to `out`."""
    model = demo_model()
    losses = train_demo(model, steps)
    hierarchy = module_hierarchy(model)
    summaries = summarize([None if p.lazy else p.tensor for p in hierarchy.params])
    out.mkdir(parents=True, exist_ok=True)
    structure = out / "structure.txt"
    structure.write_text(hierarchy.to_text() + "\n", encoding="utf-8")
    figure = out / "weights.png"
    title = f"Demo model after {steps} steps (loss {losses[0]:.3f} → {losses[-1]:.3f})"
    parameter_histograms(hierarchy, summaries, title).savefig(figure, dpi=110)
    return [structure, figure]


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
