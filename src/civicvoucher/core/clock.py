"""Injectable "now": services take ``now`` from here so tests and the simulator can move time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_now: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None)  # noqa: E731


def now() -> datetime:
    """Naive UTC now (all timestamps in the database are naive UTC)."""
    return _now()


def set_clock(fn: Callable[[], datetime] | None) -> None:
    global _now
    _now = fn or (lambda: datetime.now(UTC).replace(tzinfo=None))


def naive_utc(value: datetime) -> datetime:
    """Timestamps are stored naive, in UTC: an aware value is converted, a naive one kept."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
