"""Batch-native inserts: COPY on PostgreSQL, executemany in one transaction on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session


def db_datetime(session: Session, value: datetime) -> datetime | str:
    """A datetime as ``bulk_insert`` must be given it: as is for PostgreSQL; on SQLite the
    text SQLAlchemy itself stores, so comparisons in SQL agree with ORM-written rows.
    Convert once per value, not once per row."""
    if session.get_bind().dialect.name == "postgresql":
        return value
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def bulk_insert(session: Session, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert tuples into ``table`` inside the session's transaction; returns the row count.

    Datetime values must come through ``db_datetime``."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        _keep_statistics(conn.engine, table)
    try:
        n = _load(conn, table, columns, rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        # Driver errors raised on the raw cursor become SQLAlchemy's, so that Database.run
        # retries unique-key races and deadlocks here as it does everywhere else.
        raise DBAPIError.instance(f"bulk insert into {table}", None, exc,
                                  conn.dialect.loaded_dbapi.Error) from exc
    if conn.dialect.name == "postgresql":
        with _grown_lock:
            _grown.setdefault((id(conn.engine), table), [0, 0])[0] += n
    return n


# Rows this process has bulk-loaded per (engine, table) since it last analyzed the table, and
# the table's size then. PostgreSQL plans from statistics: a table loaded in bulk but never
# analyzed gets the default selectivity (0.5% of the table per value), so a lookup of 5,000
# hashes is planned as a scan of the whole table, and a load slows down as it grows. Autovacuum
# would fix that, but it may be off or behind (it is off on some servers), so bulk paths keep
# their own tables' statistics fresh.
_grown: dict[tuple[int, str], list[int]] = {}
_grown_lock = threading.Lock()


def _keep_statistics(engine, table: str) -> None:
    """ANALYZE ``table`` when this process has added more than half of its last known size
    (and at least 1,000 rows). Runs on its own autocommit connection, so the analyze's lock
    is held for its few hundred milliseconds, not for the caller's transaction; it sees what
    has been committed, which for a bulk load is the earlier batches."""
    key = (id(engine), table)
    with _grown_lock:
        added, size = _grown.get(key, (0, 0))
        if added < max(1000, size // 2):
            return
        _grown[key] = [0, size + added]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        # Never wait long: should the caller's own transaction hold a conflicting table lock,
        # waiting here would wait for ourselves. Skipped now, tried again after more rows.
        c.exec_driver_sql("SET lock_timeout = '2s'")
        try:
            c.exec_driver_sql(f"ANALYZE {table}")
        except OperationalError:
            return
        rows = c.exec_driver_sql(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %(t)s::regclass", {"t": table}
        ).scalar()
    with _grown_lock:
        _grown[key][1] = max(int(rows or 0), 0)


def _load(conn, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    n = 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection  # psycopg.Connection, same transaction
        with raw.cursor() as cur, cur.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n
    cur = conn.connection.driver_connection.cursor()
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= 20_000:
            cur.executemany(sql, chunk)
            n += len(chunk)
            chunk = []
    if chunk:
        cur.executemany(sql, chunk)
        n += len(chunk)
    cur.close()
    return n
