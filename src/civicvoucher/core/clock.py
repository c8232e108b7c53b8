"""Injectable "now", and the deployment's time zone.

Services take ``now`` from here so tests and the simulator can move time. Instants are stored
naive, in UTC (``now()`` returns one). People read and write times in the deployment's zone:
``CIVICVOUCHER_TIMEZONE`` (an IANA name, default ``Asia/Shanghai``, i.e. Beijing time). Every
edge (CLI, program files, API, receipts, reports) converts with the helpers below:

- ``to_utc``: a time a person gave (naive = local wall time; an explicit offset is honoured)
  as naive UTC. A local time that a daylight-saving change makes ambiguous (it happens twice)
  or non-existent (skipped) is refused, naming the field: guessing an hour moves money.
- ``to_local`` / ``local_date`` / ``format_local``: a stored instant as people see it.
- ``start_of_day`` / ``end_of_day``: the instants bounding a local calendar day (a date-only
  deadline such as "valid through 2020-07-10" ends at ``end_of_day(2020-07-10)``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from civicvoucher.i18n import msg

_now: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None)  # noqa: E731

ZONE_ENV = "CIVICVOUCHER_TIMEZONE"
DEFAULT_ZONE = "Asia/Shanghai"


def now() -> datetime:
    """Naive UTC now (all timestamps in the database are naive UTC)."""
    return _now()


def set_clock(fn: Callable[[], datetime] | None) -> None:
    global _now
    _now = fn or (lambda: datetime.now(UTC).replace(tzinfo=None))


def naive_utc(value: datetime) -> datetime:
    """An aware value as naive UTC; a naive one is kept (already UTC, e.g. read from the
    database). For a time a person typed, use ``to_utc``: naive there means local."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


class ZoneError(ValueError):
    """A local time the zone makes ambiguous or skips (a bad input: the field is named)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _at(field: str | None, problem):
    """'valid_from: <problem>' when the time has a field name, else the problem alone."""
    return msg("{field}: {problem}", field=field, problem=problem) if field else problem


class UnknownZone(RuntimeError):
    """The configured zone is not a known IANA name (a deployment error, not a bad input)."""


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(
            f"{ZONE_ENV}={name!r} is not a known IANA time zone (e.g. Asia/Shanghai, "
            "Europe/Berlin); is the tz database installed (tzdata)?") from None


def zone(name: str | None = None) -> ZoneInfo:
    """The deployment's zone (``CIVICVOUCHER_TIMEZONE``, default Asia/Shanghai), or ``name``."""
    return _zone(name or os.environ.get(ZONE_ENV) or DEFAULT_ZONE)


def _tz(tz: tzinfo | str | None) -> tzinfo:
    return tz if isinstance(tz, tzinfo) else zone(tz)


def to_utc(value: datetime, *, field: str | None = None, tz: tzinfo | str | None = None
           ) -> datetime:
    """A time as a person gave it, as naive UTC: an aware value is converted; a naive one is
    wall time in ``tz`` (default: the deployment's zone). Refuses a wall time that a DST
    change skips or repeats in that zone (``ZoneError`` naming ``field``)."""
    if value.tzinfo is not None:
        try:
            return value.astimezone(UTC).replace(tzinfo=None)
        except (OverflowError, ValueError):
            raise ZoneError(_at(field, msg("date out of range")), field=field) from None
    z = _tz(tz)
    try:
        early = value.replace(tzinfo=z, fold=0)
        late = value.replace(tzinfo=z, fold=1)
        u_early = early.astimezone(UTC)
        u_late = late.astimezone(UTC)
        back = u_early.astimezone(z).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise ZoneError(_at(field, msg("date out of range")), field=field) from None
    if u_early != u_late:
        name = getattr(z, "key", str(z))
        shown = value.strftime("%Y-%m-%d %H:%M")
        if back != value:
            raise ZoneError(_at(field, msg(
                "{time} does not exist in {zone} (the clocks skip it for daylight saving "
                "time); give another time or an explicit UTC offset",
                time=shown, zone=name)), field=field)
        raise ZoneError(_at(field, msg(
            "{time} happens twice in {zone} (daylight saving time ends); give an explicit UTC "
            "offset, e.g. {early} or {late}", time=shown, zone=name,
            early=early.isoformat(), late=late.isoformat())), field=field)
    return u_early.replace(tzinfo=None)


def to_local(value: datetime, tz: tzinfo | str | None = None) -> datetime:
    """A stored instant (naive UTC, or aware) as an aware time in ``tz`` (default: the
    deployment's zone)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return aware.astimezone(_tz(tz))


def local_date(value: datetime, tz: tzinfo | str | None = None) -> date:
    """The local calendar day of a stored instant."""
    return to_local(value, tz).date()


def format_local(value: datetime | None, tz: tzinfo | str | None = None) -> str:
    """A stored instant for people: ``2020-07-11 00:00 +08:00`` (local, offset shown)."""
    if value is None:
        return "—"
    try:
        t = to_local(value, tz)
    except OverflowError:  # at the edge of the calendar
        return f"{naive_utc(value):%Y-%m-%d %H:%M} UTC"
    off = t.strftime("%z")
    return f"{t:%Y-%m-%d %H:%M} {off[:3]}:{off[3:]}"


def start_of_day(day: date, tz: tzinfo | str | None = None) -> datetime:
    """The first instant (naive UTC) of local calendar day ``day``. Where a DST change skips
    midnight, the day starts when the clocks jump; where midnight repeats, at the first one."""
    z = _tz(tz)
    return datetime.combine(day, time(), tzinfo=z).astimezone(UTC).replace(tzinfo=None)


def bare_date(value: object) -> date | None:
    """``value`` as a calendar day if it is one (a ``date``, or text like ``2020-07-10``),
    else None. A bare date given as a deadline means through the end of that local day
    (``end_of_day``); as a start, from its beginning (``start_of_day``): program files, the
    CLI and the API read them alike."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(s := value.strip()) == 10 and s[4] == s[7] == "-":
        try:
            return date.fromisoformat(s)
        except ValueError:
            return None
    return None


def end_of_day(day: date, tz: tzinfo | str | None = None) -> datetime:
    """The exclusive end (naive UTC) of local day ``day``: the start of the next day, so a
    deadline "2020-07-10" in Beijing is 2020-07-11T00:00+08:00 = 2020-07-10T16:00Z."""
    return start_of_day(day + timedelta(days=1), tz)
