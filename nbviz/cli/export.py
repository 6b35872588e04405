"""`nbviz export RUN --out FILE`: a figure (.png, .svg, .pdf), the statistics table (.csv) or the
standalone HTML report (.html, the widget's views offline) of a run, from a script or a shell,
with no notebook; `--tensorboard DIR` writes TensorBoard events."""

from __future__ import annotations

import argparse
import pathlib
from typing import TYPE_CHECKING

from ..export import VIEWS, check_path, save, view_figure
from ..export.html import export_html
from ..records import KINDS, RECORD_FIELDS
from ._common import open_run, progress

if TYPE_CHECKING:
    from ._common import Subparsers

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def add_parser(commands: Subparsers) -> None:
    p: argparse.ArgumentParser = commands.add_parser(
        "export", help="write a figure, a CSV table or TensorBoard events of a run",
        description=__doc__,
    )  # fmt: skip
    p.add_argument("run", type=pathlib.Path, metavar="RUN", help="an nbviz run file")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--out",
        type=pathlib.Path,
        metavar="FILE",
        help="figure (.png, .svg, .pdf), statistics table (.csv) or offline HTML report (.html)",
    )
    target.add_argument(
        "--tensorboard",
        type=pathlib.Path,
        metavar="DIR",
        help="write TensorBoard event files (histograms and scalars) into DIR",
    )
    p.add_argument(
        "--view", choices=list(VIEWS), default="summary", help="which figure (default: summary)"
    )
    p.add_argument(
        "--layer",
        help="qualified module name (default: the first recorded); selected in an HTML report",
    )
    p.add_argument("--kind", choices=KINDS, default="weight", help="default: weight")
    p.add_argument("--step", type=int, help="default: the last step")
    p.add_argument("--tensor", help="one tensor of the layer, e.g. weight (default: all)")
    p.add_argument(
        "--metric",
        choices=RECORD_FIELDS,
        default="l2",
        help="the heatmap's statistic (default: l2)",
    )
    p.add_argument("--mode", choices=("train", "eval"), default="train")
    p.add_argument("--dpi", type=float, help="resolution of a PNG (default: matplotlib's)")
    p.add_argument(
        "--budget",
        type=int,
        metavar="BYTES",
        help="largest size of an HTML report: histograms are left out to fit (never statistics)",
    )
    p.set_defaults(parser=p)


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.out is not None:
        suffix = args.out.suffix.lower()
        if suffix not in (*FIGURE_SUFFIXES, ".csv", ".html"):
            parser.error(
                f"--out {args.out}: the extension must be one of "
                + ", ".join((*FIGURE_SUFFIXES, ".csv", ".html"))
            )
        if args.budget is not None and suffix != ".html":
            parser.error("--budget applies to an HTML report (--out FILE.html)")
    elif args.budget is not None:
        parser.error("--budget applies to an HTML report (--out FILE.html)")
    if args.budget is not None and args.budget <= 0:
        parser.error("--budget must be a positive number of bytes")
    if args.dpi is not None and not args.dpi > 0:
        parser.error("--dpi must be positive")


def run(args: argparse.Namespace) -> int:
    with open_run(args.run) as r:
        if args.tensorboard is not None:
            written = r.to_tensorboard(args.tensorboard, progress=True)
        elif args.out.suffix.lower() == ".csv":
            if not args.out.parent.is_dir():
                raise FileNotFoundError(f"cannot write {args.out}: no directory {args.out.parent}")
            r.to_pandas().to_csv(args.out, index=False)
            written = args.out
        elif args.out.suffix.lower() == ".html":
            report = export_html(r, args.out, budget=args.budget, selected=args.layer)
            print(report.describe())
            return 0
        else:
            check_path(args.out)  # before the drawing, which can take seconds
            with progress(2, args.view) as bar:
                fig = view_figure(
                    r, args.view, layer=args.layer, kind=args.kind, step=args.step,
                    tensor=args.tensor, metric=args.metric, mode=args.mode,
                )  # fmt: skip
                bar.update()
                written = save(fig, args.out, dpi=args.dpi)
                bar.update()
    print(f"wrote {written}")
    return 0
