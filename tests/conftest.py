"""Shared fixtures: every integration test runs on SQLite and on PostgreSQL.

PostgreSQL tests skip with a reason when no server answers, unless CIVICVOUCHER_REQUIRE_PG=1
(CI sets it), in which case an unreachable server is a failure.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from civicvoucher.db import Database
from civicvoucher.models import Base
from civicvoucher.schema import upgrade

PG_ADMIN_URL = os.environ.get("CIVICVOUCHER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("CIVICVOUCHER_REQUIRE_PG") == "1"
SECRET = b"test-secret-key"


@pytest.fixture(autouse=True)
def _english_by_default(monkeypatch, request):
    """Most tests read English text (written before the catalogue); a test of the Chinese
    says so with ``@pytest.mark.zh`` and gets the deployment's default (no language set).
    The language of a test never leaks into the next one."""
    from civicvoucher import i18n

    if request.node.get_closest_marker("zh") is None:
        monkeypatch.setenv(i18n.ENV, "en")
    else:
        for var in (i18n.ENV, "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
            monkeypatch.delenv(var, raising=False)
    token = i18n._current.set(None)
    yield
    i18n._current.reset(token)


def _pg_available(attempts: int = 4) -> str | None:
    """None when the server answers. A busy machine (a checkpoint, a long build) can hold a
    connection past a few seconds: the session fixture that asks fails every PostgreSQL test of
    its worker when this does, so it tries again before saying the server is not there."""
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                connect_args={"connect_timeout": 10})
            try:
                with eng.connect() as c:
                    c.execute(text("SELECT 1"))
            finally:
                eng.dispose()
            return None
        except Exception as exc:  # any failure is "not reachable", said below
            last = exc
            time.sleep(1 + 2 * attempt)
    return (f"PostgreSQL not reachable at {PG_ADMIN_URL} after {attempts} attempts: "
            f"{last.__class__.__name__}: {str(last).splitlines()[0] if str(last) else ''}")


@pytest.fixture(scope="session")
def pg_url():
    reason = _pg_available()
    if reason:
        if REQUIRE_PG:
            pytest.fail(f"{reason} (CIVICVOUCHER_REQUIRE_PG=1)")
        pytest.skip(reason)
    name = f"cv_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    eng = create_engine(url)
    upgrade(eng)
    eng.dispose()
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def wipe(db: Database) -> None:
    """Empty every table (ids restart), for tests that need a fresh world several times."""
    from civicvoucher.ledger.service import forget_accounts

    forget_accounts(db.engine)
    tables = list(reversed(Base.metadata.sorted_tables))
    with db.engine.begin() as c:
        if db.dialect == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            c.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for t in tables:
                c.execute(t.delete())
            c.execute(text("DELETE FROM sqlite_sequence")) if c.execute(text(
                "SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first() else None


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """A SQLite file migrated to the head once per worker: each test that wants a fresh
    migrated database gets a copy (migrating costs about 0.4 s, copying a millisecond)."""
    path = tmp_path_factory.mktemp("migrated") / "template.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database.engine)
    database.dispose()
    settle_sqlite(path)
    return path


def settle_sqlite(path) -> None:
    """Everything of a closed SQLite database in its main file (the WAL checkpointed and
    emptied), so that copying that one file copies the database."""
    import sqlite3

    con = sqlite3.connect(path, isolation_level=None)
    try:
        busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        con.close()
    wal = f"{path}-wal"
    assert busy == 0 and (not os.path.exists(wal) or os.path.getsize(wal) == 0), path


def migrated_sqlite(template, path) -> Database:
    shutil.copyfile(template, path)
    return Database(f"sqlite:///{path}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db(request, tmp_path):
    """A fresh, migrated database of each kind."""
    if request.param == "sqlite":
        database = migrated_sqlite(request.getfixturevalue("_sqlite_template"),
                                   tmp_path / "cv.db")
    else:
        database = Database(request.getfixturevalue("pg_url"))
        wipe(database)
    yield database
    database.dispose()


@pytest.fixture
def pg_db(pg_url):
    """PostgreSQL only, emptied: for interleavings SQLite cannot have (BEGIN IMMEDIATE takes
    the write lock with the transaction, so nobody commits in between)."""
    database = Database(pg_url)
    wipe(database)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path, _sqlite_template):
    database = migrated_sqlite(_sqlite_template, tmp_path / "cv.db")
    yield database
    database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def blank_db(request, tmp_path):
    """An empty database of each kind, not migrated yet (PostgreSQL: one made for this test)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'old.db'}")
        yield db
        db.dispose()
        return
    if reason := _pg_available():
        if REQUIRE_PG:
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"cv_test_blank_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
