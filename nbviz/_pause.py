"""A switch that makes every recorder ignore forward passes nbviz runs itself (a trace, a probe).

A context variable rather than a global: a trace in one thread must not blind capture in another.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_PAUSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "nbviz_capture_paused", default=False
)


def capture_paused() -> bool:
    return _PAUSED.get()


@contextlib.contextmanager
def pausing_capture() -> Iterator[None]:
    token = _PAUSED.set(True)
    try:
        yield
    finally:
        _PAUSED.reset(token)
