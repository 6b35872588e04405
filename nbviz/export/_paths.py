"""The output path of every export, checked before anything is drawn or written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def output_path(
    path: str | os.PathLike[str], formats: Sequence[str], what: str
) -> tuple[Path, str]:
    """`path` and its format (its extension, lower case, without the dot), which must be one of
    `formats`; ValueError naming them, or FileNotFoundError when its folder does not exist."""
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in formats:
        raise ValueError(
            f"cannot write {what} to {out.name!r}: the extension must be one of "
            + ", ".join(f".{f}" for f in formats)
        )
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write {out}: directory {out.parent} does not exist")
    return out, fmt
