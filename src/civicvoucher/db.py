"""Engine, sessions and the transaction runner shared by every service.

SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``: writers queue
instead of failing mid-way, so a read-then-write inside one transaction cannot race.
PostgreSQL runs READ COMMITTED; services change state with conditional UPDATEs and row locks,
and ``Database.run`` retries deadlocks and unique-key races (the retry then finds the winner).

No database error carries data into a log or an answer: engines hide bound parameters
(``hide_parameters``), and PostgreSQL's DETAIL line, which echoes row values ("Key
(username)=(alice) already exists", "Failing row contains (...)"), is cut from the error's
message as it is raised (``scrub_error``); the driver's structured ``diag`` keeps it for code
that needs it.

A ``Database`` also carries the keyring that seals secrets at rest (``keys.bind_key`` binds
it; ``core.sealed``, docs/secrets.md).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from civicvoucher.core import testpoints
from civicvoucher.core.sealed import Keyring
from civicvoucher.errors import CivicVoucherError

T = TypeVar("T")
log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


DETAIL_WITHHELD = "(DETAIL withheld: it may echo row values)"


def scrub_error(ctx) -> None:
    """The engines' ``handle_error`` hook: cut PostgreSQL's DETAIL (and what follows it: HINT,
    CONTEXT) from the message of the driver's error and of SQLAlchemy's wrapper, so that a
    logged traceback (which prints both) carries no row values. In place, so the exception's
    class and ``orig.sqlstate`` / ``orig.diag`` stay what callers branch on."""
    orig = ctx.original_exception
    message = orig.args[0] if orig is not None and len(orig.args) == 1 else None
    if not isinstance(message, str) or "\nDETAIL:" not in message:
        return
    orig.args = (message.split("\nDETAIL:", 1)[0] + " " + DETAIL_WITHHELD,)
    wrapped = ctx.sqlalchemy_exception
    if wrapped is not None and len(wrapped.args) == 1 and isinstance(wrapped.args[0], str):
        wrapped.args = (wrapped.args[0].replace(message, orig.args[0]),)


def note_connect_failure(url: str, ctx) -> None:
    """The engines' other ``handle_error`` hook: an error raised while connecting (no server,
    no such database, login refused, a file SQLite cannot open) carries ``database_url``, the
    database it was for, without its password, for the door that explains it to a person
    (``cli.common.database_problem``). Class and message stay as they are.

    ``url`` is bound when the engine is made: a failed pre-ping on checkout reaches this hook
    with no ``ctx.engine`` (reading it there turned the API's 503 into a 500)."""
    if ctx.connection is None and ctx.sqlalchemy_exception is not None:
        ctx.sqlalchemy_exception.database_url = url


def make_engine(url: str, **kw: Any) -> Engine:
    kw.setdefault("hide_parameters", True)  # never a bound value in an error or a log
    engine = _make_engine(url, **kw)
    event.listen(engine, "handle_error", scrub_error)
    event.listen(engine, "handle_error",
                 functools.partial(note_connect_failure,
                                   engine.url.render_as_string(hide_password=True)))
    return engine


def _make_engine(url: str, **kw: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):  # pragma: no cover - driver glue
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - driver glue
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kw.setdefault("pool_size", 20)
    kw.setdefault("max_overflow", 40)
    return create_engine(url, pool_pre_ping=True, **kw)


def keyring_of(session: Session) -> Keyring:
    """The sealing keyring of the Database this session belongs to."""
    ref = session.info.get("database")
    db = ref() if ref is not None else None
    if db is None:
        raise RuntimeError("this session is not a civicvoucher Database's: it has no keyring")
    return db.keyring


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def once(session: Session, point: str, find: Callable[[], T | None],
         work: Callable[[], T]) -> tuple[T, bool]:
    """Exactly once on a caller's key, under any interleaving: ``(result, replayed)``.

    ``find`` looks the key up and returns the first result (or raises ``IdempotencyConflict``
    for the same key with another request); ``work`` does the operation and records the key in
    this transaction. A concurrent request with the same key may commit between our lookup and
    our work; our work then fails, either on the state the winner left (the voucher is already
    spent) or on the key's unique constraint. Either way the work is rolled back to a savepoint
    and the key looked up again: the retry gets the first result, never the error the first
    result caused. An error with no winner behind it is raised as it is.

    ``point`` names the moment between lookup and work for tests (``core.testpoints``).
    """
    if (found := find()) is not None:
        return found, True
    testpoints.reached(f"{point}.after_lookup")
    savepoint = session.begin_nested()
    try:
        result = work()
        session.flush()
    except (CivicVoucherError, IntegrityError):
        savepoint.rollback()
        if (found := find()) is not None:
            return found, True
        raise
    savepoint.commit()
    return result, False


def _retryable(exc: DBAPIError) -> bool:
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("40P01", "40001"):  # deadlock, serialization failure
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


class Database:
    """One per process: ``db.session()`` for a unit of work, ``db.run(fn)`` to retry races."""

    def __init__(self, url: str, **engine_kw: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kw)
        self._info = {"database": weakref.ref(self)}  # how a session finds its keyring
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, info=self._info)
        self._keyring: Keyring | None = None
        self._keyring_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def keyring(self) -> Keyring:
        """The keys that seal secrets at rest in this database (``keys.bind_key`` binds them;
        the API and the CLI always do). A Database nobody bound (a library caller that made
        its own and skipped ``bind_key``) gets a key that lives only in this process's
        memory: nothing is ever stored in clear, but what it seals cannot be opened by any
        other process, nor after this one ends."""
        with self._keyring_lock:
            if self._keyring is None:
                self._keyring = Keyring.ephemeral()
                log.warning("database %s: no sealing key bound (keys.bind_key); secrets "
                            "sealed now open only in this process, under key %s",
                            self.engine.url.render_as_string(hide_password=True),
                            self._keyring.current)
            return self._keyring

    def bind_keyring(self, keyring: Keyring) -> None:
        """Seal from now on under ``keyring``; what an earlier keyring of this process sealed
        stays readable."""
        with self._keyring_lock:
            self._keyring = keyring if self._keyring is None \
                else keyring.with_readable(self._keyring)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessions() as s, s.begin():
            yield s

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only view of one moment (REPEATABLE READ on PostgreSQL), for checks such as
        ``ledger verify`` that read many tables while others keep writing."""
        if self.dialect != "postgresql":
            with self.session() as s:
                yield s
            return
        conn = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with conn, Session(bind=conn, info=self._info) as s, s.begin():
            yield s

    def run(self, fn: Callable[..., T], /, *args: Any, retries: int = 8, **kwargs: Any) -> T:
        """Run ``fn(session, *args, **kwargs)`` in its own transaction, retrying races.

        A unique-key violation is retried too, a few times: services look up their
        idempotency key first, so a race's retry returns the winner's result, while a
        violation that is not a race (bad data) fails fast.
        """
        integrity_left = 4
        for attempt in range(retries + 1):
            try:
                with self.session() as s:
                    return fn(s, *args, **kwargs)
            except IntegrityError:
                integrity_left -= 1
                if attempt == retries or integrity_left < 0:
                    raise
            except DBAPIError as exc:
                if attempt == retries or not _retryable(exc):
                    raise
            time.sleep(min(0.002 * 2**attempt, 0.2))
        raise AssertionError("unreachable")

    def analyze(self, *tables: str) -> None:
        """Refresh the planner's statistics after a bulk load, so the next queries are planned
        for the table as it is now, not as it was when it was empty."""
        with self.engine.begin() as c:
            for t in tables:
                c.exec_driver_sql(f"ANALYZE {t}")

    def dispose(self) -> None:
        self.engine.dispose()
