"""What every command shares: the database, the console, keys, amounts, progress bars."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime
from functools import cache

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from civicvoucher.config import Settings, load_settings
from civicvoucher.core import clock
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.db import Database
from civicvoucher.errors import ValidationError

console = Console()
err_console = Console(stderr=True)


@cache
def settings() -> Settings:
    zone_or_fail()
    return load_settings()


def zone_or_fail():
    """The deployment's zone; an unknown CIVICVOUCHER_TIMEZONE is a clear error, not a trace."""
    try:
        return clock.zone()
    except clock.UnknownZone as exc:
        raise ValidationError(str(exc), field=clock.ZONE_ENV, code="unknown_timezone") from None


@cache
def database() -> Database:
    """Open the configured database, bringing the schema up to date (Alembic)."""
    from civicvoucher.keys import bind_key
    from civicvoucher.schema import upgrade

    db = Database(settings().database_url)
    upgrade(db.engine)
    bind_key(db, settings())  # refuses to run with another key than the database's
    return db


def cli_actor():
    """Who the audit log names for a command: the operating-system user, as an operator."""
    import getpass

    from civicvoucher.audit.service import Actor

    return Actor(f"cli:{getpass.getuser()}", role="operator", scope="cli")


def audit(session, action: str, target: str, detail: dict | None = None) -> None:
    """Append to the audit log in the command's transaction, as the CLI operator."""
    from civicvoucher.audit.service import append, chain_key

    append(session, key=chain_key(settings().secret_key), actor=cli_actor(), action=action,
           target=target, detail=detail)


def run_audited(fn, action: str, target, detail=None, /, **kwargs):
    """Run a keyed service like ``Database.run`` (races retried), with its audit entry in the
    same transaction; a replay (``result.replayed``) adds no second entry, as in the API."""
    def work(s):
        result = fn(s, **kwargs)
        if not getattr(result, "replayed", False):
            audit(s, action, target(result), detail(result) if detail else None)
        return result

    return database().run(work)


def key_or_new(key: str | None, prefix: str) -> str:
    """Caller's idempotency key, or a fresh one (printed, so a retry can reuse it)."""
    if key:
        return key
    new = f"{prefix}-{uuid.uuid4()}"
    err_console.print(f"[dim]idempotency key: {new}  (pass --key {new} to retry safely)[/dim]")
    return new


def parse_yuan(text: str, field: str) -> int:
    """Yuan as typed ('300', '1,234.50') into fen; anything loose is refused, naming ``field``."""
    try:
        return yuan_to_fen(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(str(exc), field=field) from None


def parse_when(text: str | None, field: str) -> datetime | None:
    """A time as typed, as naive UTC. Without an offset it is local time in the deployment's
    zone (CIVICVOUCHER_TIMEZONE, default Asia/Shanghai); a bare date is that day's 00:00 local;
    an explicit offset (``+08:00``, ``Z``) is honoured. A local time that daylight saving
    skips or repeats is refused."""
    if text is None:
        return None
    zone_name = getattr(zone_or_fail(), "key", clock.DEFAULT_ZONE)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(f"not a date or time: {text!r} (use 2020-08-01 or "
                              f"2020-07-31T23:59, local time in {zone_name} unless an offset "
                              "such as +08:00 or Z is given)", field=field) from None
    try:
        return clock.to_utc(value)  # the error names the field: "column cutoff: ..."
    except clock.ZoneError as exc:
        raise ValidationError(str(exc), field=field, code="ambiguous_time") from None


def parse_deadline(text: str, field: str) -> datetime:
    """A deadline as typed: a bare date means through the end of that local day (as in a
    program file: ``--until 2020-07-31`` is spendable on the 31st); a time is exclusive."""
    if (day := clock.bare_date(text)) is not None:
        return clock.end_of_day(day)
    return parse_when(text, field)


@contextmanager
def progress(description: str, total: int | None):
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
