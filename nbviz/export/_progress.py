"""Progress bars on stderr, only for a person watching: never on stdout, nor in logs or pipes."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import NoReturn, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(total: int, description: str, *, enabled: bool = True) -> tqdm[NoReturn]:
    """A bar to `update()` on stderr, shown when `enabled` and stderr is a terminal."""
    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, desc=description, file=sys.stderr, disable=not show)


def progress_bar(items: Iterable[T], description: str, *, enabled: bool = True) -> Iterator[T]:
    """`items`, with a bar on stderr when `enabled` and stderr is a terminal."""
    show = enabled and sys.stderr.isatty()
    yield from tqdm(items, desc=description, file=sys.stderr, disable=not show)
