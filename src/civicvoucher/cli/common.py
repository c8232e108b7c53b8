"""What every command shares: the database, the console, keys, amounts, progress bars."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime
from functools import cache

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from civicvoucher.config import Settings, load_settings
from civicvoucher.core.clock import naive_utc
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.db import Database
from civicvoucher.errors import ValidationError

console = Console()
err_console = Console(stderr=True)


@cache
def settings() -> Settings:
    return load_settings()


@cache
def database() -> Database:
    """Open the configured database, bringing the schema up to date (Alembic)."""
    from civicvoucher.keys import bind_key
    from civicvoucher.schema import upgrade

    db = Database(settings().database_url)
    upgrade(db.engine)
    bind_key(db, settings())  # refuses to run with another key than the database's
    return db


def key_or_new(key: str | None, prefix: str) -> str:
    """Caller's idempotency key, or a fresh one (printed, so a retry can reuse it)."""
    if key:
        return key
    new = f"{prefix}-{uuid.uuid4()}"
    err_console.print(f"[dim]idempotency key: {new}  (pass --key {new} to retry safely)[/dim]")
    return new


def parse_yuan(text: str, field: str) -> int:
    try:
        return yuan_to_fen(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(str(exc), field=field) from None


def parse_when(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        return naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValidationError(f"not a date or time: {text!r} (use 2020-08-01 or "
                              "2020-07-31T23:59, in UTC unless an offset is given)",
                              field=field) from None


@contextmanager
def progress(description: str, total: int | None):
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
