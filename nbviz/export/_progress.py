"""Progress bars on stderr, only for a person watching: never on stdout, nor in logs or pipes."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress_bar(items: Iterable[T], description: str, *, enabled: bool = True) -> Iterator[T]:
    """`items`, with a bar on stderr when `enabled` and stderr is a terminal."""
    show = enabled and sys.stderr.isatty()
    # delay: no bar at all for work that ends within a second.
    yield from tqdm(items, desc=description, disable=not show, file=sys.stderr, delay=1.0)
