"""DuckDB over the transaction tables, with no download at run time.

DuckDB fetches its sqlite/postgres scanners from the internet on first use, which fails offline.
The PyPI packages ``duckdb-ext-sqlite`` / ``duckdb-ext-postgres`` ship them for duckdb 1.4.4, so
we point ``extension_directory`` at the installed copy and turn auto-install/auto-load off: a
missing extension is a clear error here, never a silent network call.

``stage()`` then copies one program's rows into typed in-memory tables, so every report
query runs on local columnar data (fast) and sees the same types on SQLite and PostgreSQL.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
from sqlalchemy.engine import make_url

from civicvoucher.errors import NotFound
from civicvoucher.i18n import msg


def extension_directory() -> Path:
    """The ``duckdb_ext/extensions`` folder of the installed duckdb-ext-* wheels."""
    spec = importlib.util.find_spec("duckdb_ext")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "extensions"
        if candidate.is_dir():
            return candidate
    raise RuntimeError(
        "DuckDB scanner extensions not found: install duckdb-ext-sqlite and duckdb-ext-postgres"
        f" (pinned for duckdb {duckdb.__version__})"
    )


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def libpq_conninfo(db_url: str) -> str:
    """``postgresql+psycopg://u:p@h:5432/db`` as a libpq string ``host=h port=5432 ...``."""
    url = make_url(db_url)
    parts = {
        "host": url.host,
        "port": url.port,
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        **{k: v for k, v in url.query.items() if isinstance(v, str)},
    }

    def value(v: object) -> str:
        s = str(v)
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={value(v)}" for k, v in parts.items() if v not in (None, ""))


_LOCK = threading.Lock()
_INSTANCE: duckdb.DuckDBPyConnection | None = None
_LOADED: set[str] = set()
_PID = 0  # a forked child must not share its parent's DuckDB


def _instance(extension: str) -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process, with ``extension`` loaded from the installed wheels.

    Loading a scanner costs about a second (a 50 MB library, signature-checked); reports after
    the first reuse it. Each report works on its own cursor (its own connection, so its TEMP
    tables are private) and attaches its source under its own alias.
    """
    global _INSTANCE, _PID
    with _LOCK:
        if _INSTANCE is None or os.getpid() != _PID:
            _LOADED.clear()
            _PID = os.getpid()
            _INSTANCE = duckdb.connect(f":memory:civicvoucher_analytics_{_PID}", config={
                "extension_directory": str(extension_directory()),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            })
        if extension not in _LOADED:
            _INSTANCE.execute(f"LOAD {extension}")
            _LOADED.add(extension)
        return _INSTANCE


@dataclass(frozen=True)
class Source:
    """A private DuckDB connection with the transaction database attached as ``alias``."""

    con: duckdb.DuckDBPyConnection
    alias: str


def _attach(db_url: str, alias: str) -> duckdb.DuckDBPyConnection:
    """A new cursor with ``db_url`` attached read-only as ``alias``."""
    url = make_url(db_url)
    backend = url.get_backend_name()
    setup: list[str] = []
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the report needs an SQLite file, not an in-memory database")
        path = Path(url.database)
        if not path.is_file():
            raise FileNotFoundError(f"no SQLite database at {path}")
        extension = "sqlite_scanner"
        # Read every column as text and cast it ourselves: SQLite's declared types are only
        # hints, and a datetime column holds text such as '2020-05-01 10:00:00.000000'.
        setup.append("SET sqlite_all_varchar = true")
        setup.append(f"ATTACH {_quote(str(path))} AS {alias} (TYPE sqlite, READ_ONLY)")
    elif backend == "postgresql":
        extension = "postgres_scanner"
        setup.append(
            f"ATTACH {_quote(libpq_conninfo(db_url))} AS {alias} (TYPE postgres, READ_ONLY)")
    else:
        raise ValueError(f"unsupported database for the report: {backend}")
    con = _instance(extension).cursor()
    try:
        for sql in setup:
            con.execute(sql)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def open_source(db_url: str) -> Iterator[Source]:
    """Attach the database at ``db_url`` (SQLAlchemy URL: sqlite or postgresql) read-only."""
    alias = f"src_{uuid.uuid4().hex[:12]}"
    con = _attach(db_url, alias)
    try:
        yield Source(con, alias)
    finally:
        try:
            con.execute(f"DETACH DATABASE IF EXISTS {alias}")
        finally:
            con.close()


@dataclass(frozen=True)
class ProgramInfo:
    id: int
    key: str
    name: str


@dataclass(frozen=True)
class OrgInfo:
    """The root of the subtree a report covers (None in ``Report.org``: the whole program)."""

    id: int
    name: str
    level: str
    code: str | None  # division code of a federation, USCC of a union
    path: str


def find_program(src: Source, program: str | int | None) -> ProgramInfo:
    """The program to report on, by key or id; or the only program in the database."""
    rows = src.con.execute(
        f"SELECT CAST(id AS BIGINT), CAST(key AS VARCHAR), CAST(name AS VARCHAR)"
        f" FROM {src.alias}.program ORDER BY 1"
    ).fetchall()
    if program is not None:
        ref = str(program).strip()
        found = [r for r in rows if r[1] == ref] or [
            r for r in rows if ref.isdigit() and r[0] == int(ref)]
        if not found:
            raise NotFound(_holds(msg("no program '{ref}' in the database (it holds: {keys})",
                                      ref=ref, keys=[r[1] for r in rows]), rows, ref=ref),
                           code="program_not_found")
        return ProgramInfo(*found[0])
    if len(rows) != 1:
        raise NotFound(_holds(msg("say which program to report on; the database holds: {keys}",
                                  keys=[r[1] for r in rows]), rows),
                       code="program_not_found")
    return ProgramInfo(*rows[0])


def _holds(found, rows, **params):
    """``found`` when the database holds programs; else the same said as "holds none"."""
    if rows:
        return found
    if "ref" in params:
        return msg("no program '{ref}' in the database (it holds none)", **params)
    return msg("say which program to report on; the database holds none")


def find_org(src: Source, ref: str | int) -> OrgInfo:
    """An organisation by id, division code or USCC (as ``orgs.service.find_org`` reads what a
    person types: a six-digit number is a division code, other digits an id)."""
    text = str(ref).strip()
    cols = (f"SELECT CAST(id AS BIGINT), CAST(name AS VARCHAR), CAST(level AS VARCHAR),"
            f" CAST(COALESCE(division_code, uscc) AS VARCHAR), CAST(path AS VARCHAR)"
            f" FROM {src.alias}.org")
    row = None
    if not isinstance(ref, int):
        row = src.con.execute(f"{cols} WHERE CAST(division_code AS VARCHAR) = $r"
                              f" OR CAST(uscc AS VARCHAR) = upper($r)", {"r": text}).fetchone()
    if row is None and text.isdigit() and (isinstance(ref, int) or len(text) != 6):
        row = src.con.execute(f"{cols} WHERE CAST(id AS BIGINT) = $i",
                              {"i": int(text)}).fetchone()
    if row is None:
        raise NotFound(msg("no organisation {ref}", ref=text), code="org_not_found")
    return OrgInfo(*row)


def read_setting(src: Source, name: str) -> str | None:
    """A ``deployment_setting`` value (facts recorded in the database itself)."""
    row = src.con.execute(f"SELECT CAST(value AS VARCHAR) FROM {src.alias}.deployment_setting"
                          f" WHERE CAST(name AS VARCHAR) = $n", {"n": name}).fetchone()
    return row[0] if row else None


# Typed local copies of one program's rows, restricted to the report's subtree. ``$p`` is the
# program id. ``orgs`` is staged first (every organisation, with its path); ``unions`` are the
# grassroots unions inside the subtree (``$root`` is its path, '/' for everything), each with
# the level of its parent federation (province / city / county) and, for county unions, the
# county code; every other table keeps only rows of those unions.
_STAGE = {
    "orgs": """
        SELECT CAST(id AS BIGINT) AS id, CAST(parent_id AS BIGINT) AS parent_id,
               CAST(level AS VARCHAR) AS level, CAST(name AS VARCHAR) AS name,
               CAST(COALESCE(division_code, uscc) AS VARCHAR) AS code,
               CAST(path AS VARCHAR) AS path
        FROM {src}.org""",
    "unions": """
        SELECT u.id, p.level AS level, p.code AS parent_code, u.path
        FROM orgs u JOIN orgs p ON p.id = u.parent_id
        WHERE u.level = 'union' AND starts_with(u.path, $root)""",
    "products": """
        SELECT CAST(id AS BIGINT) AS id, CAST(key AS VARCHAR) AS key,
               CAST(kind AS VARCHAR) AS kind, CAST(face_value_fen AS BIGINT) AS face_value_fen
        FROM {src}.product WHERE CAST(program_id AS BIGINT) = $p""",
    "members": """
        SELECT CAST(union_id AS BIGINT) AS union_id, count(*) AS active
        FROM {src}.member WHERE CAST(status AS VARCHAR) = 'active'
          AND CAST(union_id AS BIGINT) IN (SELECT id FROM unions) GROUP BY 1""",
    "vouchers": """
        SELECT CAST(v.id AS BIGINT) AS id, CAST(v.product_id AS BIGINT) AS product_id,
               CAST(v.union_id AS BIGINT) AS union_id, CAST(v.member_id AS BIGINT) AS member_id,
               CAST(v.amount_fen AS BIGINT) AS amount_fen, CAST(v.form AS VARCHAR) AS form,
               CAST(v.status AS VARCHAR) AS status
        FROM {src}.voucher v WHERE CAST(v.program_id AS BIGINT) = $p
          AND CAST(v.union_id AS BIGINT) IN (SELECT id FROM unions)""",
    "redemptions": """
        SELECT CAST(id AS BIGINT) AS id, CAST(voucher_id AS BIGINT) AS voucher_id,
               CAST(union_id AS BIGINT) AS union_id,
               CAST(merchant_id AS BIGINT) AS merchant_id, CAST(channel AS VARCHAR) AS channel,
               CAST(order_amount_fen AS BIGINT) AS order_amount_fen,
               CAST(amount_fen AS BIGINT) AS amount_fen, CAST(status AS VARCHAR) AS status,
               TRY_CAST(COALESCE(posted_at, created_at) AS TIMESTAMP) AS spent_at
        FROM {src}.redemption WHERE CAST(program_id AS BIGINT) = $p
          AND CAST(union_id AS BIGINT) IN (SELECT id FROM unions)""",
    "merchants": """
        SELECT CAST(id AS BIGINT) AS id, CAST(category AS VARCHAR) AS category
        FROM {src}.merchant""",
    # Breakage as the ledger saw it: expiry transfers out of the subtree's unions' outstanding
    # accounts of this program, and refunds that went to the union fund because the voucher
    # had expired.
    "ledger_breakage": """
        SELECT 'expire' AS source, count(*) AS transfers,
               COALESCE(sum(CAST(t.amount AS BIGINT)), 0) AS amount_fen
        FROM {src}.transfer t JOIN {src}.account a
          ON CAST(a.id AS BIGINT) = CAST(t.debit_account_id AS BIGINT)
        WHERE CAST(t.code AS VARCHAR) = 'expire' AND CAST(a.program_id AS BIGINT) = $p
          AND CAST(a.org_id AS BIGINT) IN (SELECT id FROM unions)
        UNION ALL
        SELECT 'refund_to_fund', count(*), COALESCE(sum(CAST(f.amount_fen AS BIGINT)), 0)
        FROM {src}.refund f JOIN {src}.redemption r
          ON CAST(r.id AS BIGINT) = CAST(f.redemption_id AS BIGINT)
        WHERE CAST(f.outcome AS VARCHAR) = 'to_fund' AND CAST(r.program_id AS BIGINT) = $p
          AND CAST(r.union_id AS BIGINT) IN (SELECT id FROM unions)""",
}


def stage(src: Source, program: ProgramInfo, *, root_path: str = "/",
          tick: Callable[[], None] = lambda: None) -> None:
    """Copy the program's rows of the subtree at ``root_path`` into TEMP tables (see
    ``_STAGE``), then detach the source so a PostgreSQL connection is not held while the
    report is computed. ``tick`` is called once per table (a progress bar)."""
    for name, sql in _STAGE.items():
        params = {k: v for k, v in (("p", program.id), ("root", root_path)) if f"${k}" in sql}
        sql = sql.replace("{src}", src.alias)
        src.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params or None)
        tick()
    src.con.execute(f"DETACH DATABASE IF EXISTS {src.alias}")


def fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    """Rows of ``sql`` as dicts keyed by column name (DuckDB sums of BIGINT come back as int)."""
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
