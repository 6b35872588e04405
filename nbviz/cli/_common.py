"""What the commands share: opening a run for reading, progress bars, sizes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..export._progress import progress
from ..run import Run

__all__ = ["human_bytes", "open_run", "progress"]

if TYPE_CHECKING:
    # argparse's add_subparsers() returns this private type; aliased once here.
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def open_run(path: Path) -> Run:
    """Run.open, whose errors (missing, not a run, truncated) name the file and the fault."""
    return Run.open(path)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
