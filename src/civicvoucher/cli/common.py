"""What every command shares: the database, the console, keys, amounts, times, who is
operating (``--as``), progress bars."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from civicvoucher.config import Settings, load_settings
from civicvoucher.core import clock
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.errors import DatabaseUnavailable, ValidationError
from civicvoucher.i18n import localize, msg

if TYPE_CHECKING:  # the engine (SQLAlchemy) is loaded by the first command that opens it
    from civicvoucher.db import Database

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
        raise ValidationError(reason(exc), field=clock.ZONE_ENV, code="unknown_timezone") from None


def reason(exc: BaseException):
    """An exception's message as it was made (a ``Msg`` stays one, to be localized where it
    is shown; other text is passed on as it is)."""
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, str) and first else str(exc)


@cache
def database() -> Database:
    """Open the configured database, bringing the schema up to date (Alembic)."""
    from civicvoucher.db import Database
    from civicvoucher.keys import bind_key
    from civicvoucher.schema import upgrade

    db = Database(settings().database_url)
    upgrade(db.engine)
    bind_key(db, settings())  # refuses to run with another key than the database's
    return db


_NO_SERVER = ("connection refused", "could not translate host name", "name or service not known",
              "timeout expired", "no route to host", "network is unreachable",
              "no such file or directory", "could not connect")
_LOGIN_REFUSED = ("password authentication failed", "no password supplied", "no pg_hba.conf entry",
                  "peer authentication failed")


def database_problem(exc: BaseException) -> DatabaseUnavailable | None:
    """A database that could not be opened, as the operator reads it: which one (no password),
    what failed, what to do. Errors raised while connecting carry ``database_url``
    (``db.note_connect_failure``); any other error gives None (it is not this kind)."""
    seen = 0
    while exc is not None and not isinstance(getattr(exc, "database_url", None), str):
        exc = exc.__cause__ or exc.__context__  # raised again by whoever was connecting
        seen += 1
        if seen > 5:
            return None
    if exc is None:
        return None
    url = exc.database_url
    import re

    from sqlalchemy.engine import make_url

    u = make_url(url)
    said = str(getattr(exc, "orig", None) or exc).strip()
    # psycopg: 'connection failed: connection to server at "h", port 5432 failed: FATAL:  ...'
    why = re.sub(r"^(FATAL|ERROR):\s+", "", said.rsplit(" failed: ", 1)[-1].splitlines()[0])
    low = said.lower()
    if u.get_backend_name() == "sqlite":
        return DatabaseUnavailable(msg(
            "cannot open {url}: SQLite cannot open the file {path} ({reason}); it must be a "
            "file, or not exist yet, in a folder this user may write", url=url,
            path=u.database or "", reason=why), url=url)
    server = f"{u.host or 'localhost'}:{u.port or 5432}"
    if (missing := re.search(r'database "([^"]+)" does not exist', said)) is not None:
        name = missing.group(1)
        create = " ".join(["createdb", *(["-h", u.host] if u.host else []),
                           *(["-p", str(u.port)] if u.port else []),
                           *(["-U", u.username] if u.username else []), name])
        return DatabaseUnavailable(msg(
            "cannot open {url}: database {name} does not exist on the server at {server}; "
            "create it ({createdb}), or name another with --database-url or "
            "CIVICVOUCHER_DATABASE_URL", url=url, name=name, server=server, createdb=create),
            url=url, code="database_missing")
    if any(s in low for s in _NO_SERVER):
        return DatabaseUnavailable(msg(
            "cannot open {url}: no PostgreSQL server answers at {server} ({reason}); is the "
            "server running, and are the host and port right?", url=url, server=server,
            reason=why), url=url, code="database_unreachable")
    if any(s in low for s in _LOGIN_REFUSED) or re.search(r'role "[^"]+" does not exist', said):
        return DatabaseUnavailable(msg(
            "cannot open {url}: the server at {server} refused the login ({reason}); check the "
            "user name and password in the URL", url=url, server=server, reason=why),
            url=url, code="database_login_refused")
    return DatabaseUnavailable(msg("cannot open {url}: {reason}", url=url, reason=why), url=url)


OPERATOR_ENV = "CIVICVOUCHER_OPERATOR"
_operator: str | None = None  # --as, for this run


def use_operator(value: str | None) -> str | None:
    """``--as NAME``'s callback: the person the audit log names for this command."""
    global _operator
    if value is not None and not value.strip():
        raise typer.BadParameter(localize(msg("name the person operating")), param_hint="--as")
    _operator = value.strip()[:100] if value else None
    return value


AS = typer.Option(None, "--as", metavar="NAME", callback=use_operator, expose_value=False,
                  help="who is operating, as the audit log names them (default: "
                       "CIVICVOUCHER_OPERATOR, else the login name of this computer)")


def os_user() -> str:
    import getpass

    return getpass.getuser()


def operator_name() -> str:
    """The person operating: ``--as``, else ``CIVICVOUCHER_OPERATOR``, else the OS login."""
    return _operator or (os.environ.get(OPERATOR_ENV) or "").strip()[:100] or os_user()


def cli_actor():
    """Who the audit log names for a command: the operator (``--as``, else
    ``CIVICVOUCHER_OPERATOR``, else the operating-system user), as ``cli:<name>``."""
    from civicvoucher.audit.service import Actor

    return Actor(f"cli:{operator_name()}", role="operator", scope="cli")


def audit(session, action: str, target: str, detail: dict | None = None) -> None:
    """Append to the audit log in the command's transaction, as the CLI operator; when the
    operator was named (``--as``), the entry keeps the OS login it was typed under too."""
    from civicvoucher.audit.service import append, chain_key

    if (login := os_user()) != operator_name():
        detail = {**(detail or {}), "os_user": login}
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
    hint = localize(msg("idempotency key: {key}  (pass --key {key} to retry safely)", key=new))
    err_console.print(f"[dim]{escape(hint)}[/dim]")
    return new


def parse_yuan(text: str, field: str) -> int:
    """Yuan as typed ('300', '1,234.50') into fen; anything loose is refused, naming ``field``."""
    try:
        return yuan_to_fen(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(reason(exc), field=field) from None


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
        raise ValidationError(msg("not a date or time: {text} (use 2020-08-01 or "
                                  "2020-07-31T23:59, local time in {zone} unless an offset "
                                  "such as +08:00 or Z is given)", text=repr(text),
                                  zone=zone_name), field=field) from None
    try:
        return clock.to_utc(value)  # the error names the field: "column cutoff: ..."
    except clock.ZoneError as exc:
        raise ValidationError(reason(exc), field=field, code="ambiguous_time") from None


def parse_deadline(text: str, field: str) -> datetime:
    """A deadline as typed: a bare date means through the end of that local day (as in a
    program file: ``--until 2020-07-31`` is spendable on the 31st); a time is exclusive."""
    if (day := clock.bare_date(text)) is not None:
        return clock.end_of_day(day)
    return parse_when(text, field)


CUTOFF_HELP = ("up to when (default: now, fixed by the first run of a --key). A bare date "
               "such as 2020-07-31 means through the end of that local day: everything due or "
               "done on the 31st is included (the cut is 2020-08-01 00:00); a time such as "
               "2020-07-31T18:00 is the cut itself. Local time (CIVICVOUCHER_TIMEZONE, default "
               "Asia/Shanghai) unless an offset such as +08:00 or Z is given; never in the "
               "future")


def parse_cutoff(text: str | None, field: str, *, now: datetime | None = None
                 ) -> datetime | None:
    """Up to when a run (``settle``, ``expire``) reaches, as typed; the one reading of both.
    None: now, decided by the run itself (so a retry with the same key replays). A bare date
    means through the end of that local day, as an official reads "as of 31 July" and as a
    program's deadline or ``extend --until`` reads it: ``2020-07-31`` is 2020-08-01 00:00
    local, so vouchers whose last day was the 31st expire, and the 31st's redemptions are
    settled. A time is the cut itself. A cut still to come is refused: the day is not over."""
    if text is None:
        return None
    when = parse_deadline(text, field)
    now = now or clock.now()
    if when > now:
        raise ValidationError(msg("{when} is still to come: a run reaches only up to now "
                                  "(leave the option out to mean now)",
                                  when=clock.format_local(when)), field=field,
                              code="cutoff_in_future")
    return when


@contextmanager
def progress(description: str, total: int | None):
    """A progress bar on stderr; ``description`` is a message (shown in the language)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=False,
    ) as bar:
        task = bar.add_task(escape(localize(description)), total=total)
        yield lambda n=1: bar.advance(task, n)
