"""Batch-native inserts: COPY on PostgreSQL, executemany in one transaction on SQLite."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.exc import DBAPIError
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
    try:
        return _load(conn, table, columns, rows)
    except conn.dialect.loaded_dbapi.Error as exc:
        # Driver errors raised on the raw cursor become SQLAlchemy's, so that Database.run
        # retries unique-key races and deadlocks here as it does everywhere else.
        raise DBAPIError.instance(f"bulk insert into {table}", None, exc,
                                  conn.dialect.loaded_dbapi.Error) from exc


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
