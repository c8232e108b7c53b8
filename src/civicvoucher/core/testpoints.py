"""Named points in the code where a test can pause a thread, to make a race deterministic.

Production code calls ``reached("redeem.after_lookup")`` at the moments a race would matter
(between looking an idempotency key up and acting on it, say); with no hook installed it costs
one dictionary lookup. Tests install a hook with ``hooked(point, fn)``: ``fn`` runs in the
thread that reached the point, so it can wait on a barrier until another thread has done its
work, and the interleaving under test happens every time instead of once in a while.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

_hooks: dict[str, Callable[[], None]] = {}


def reached(point: str) -> None:
    fn = _hooks.get(point)
    if fn is not None:
        fn()


@contextmanager
def hooked(point: str, fn: Callable[[], None]) -> Iterator[None]:
    """Run ``fn`` whenever ``point`` is reached, for the duration of the block."""
    _hooks[point] = fn
    try:
        yield
    finally:
        _hooks.pop(point, None)
