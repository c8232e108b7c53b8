"""Batch-native inserts: COPY on PostgreSQL, executemany in one transaction on SQLite."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session


def _sqlite_dt(value: datetime, cache: dict[datetime, str]) -> str:
    """Store datetimes exactly as SQLAlchemy does on SQLite, so string comparisons in SQL hold."""
    text = cache.get(value)
    if text is None:
        text = cache[value] = value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return text


def bulk_insert(session: Session, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """Insert tuples into ``table`` inside the session's transaction; returns the row count."""
    conn = session.connection()
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
    cache: dict[datetime, str] = {}
    for row in rows:
        if any(isinstance(v, datetime) for v in row):
            row = tuple(_sqlite_dt(v, cache) if isinstance(v, datetime) else v for v in row)
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
