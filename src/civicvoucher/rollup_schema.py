"""The dashboard rollup's tables and the triggers that log changed unions (migration 0012).
What they mean and how they are kept: ``civicvoucher.analytics.rollup``. Here, apart from the
analytics package, so that ``civicvoucher.models`` can list them without importing DuckDB."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, Integer, String, Table

from civicvoucher.db import Base

BigId = BigInteger().with_variant(Integer, "sqlite")
md = Base.metadata
md = Base.metadata


def _n() -> list[Column]:
    return [Column("n", BigInteger, nullable=False), Column("fen", BigInteger, nullable=False)]


DIRTY = Table(
    "dash_dirty", md,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("union_id", Integer, nullable=False),
    Index("ix_dash_dirty_union", "union_id"),
)
STATE = Table(
    "dash_state", md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("zone", String(64), nullable=False),
    Column("refreshed_at", DateTime, nullable=False),
)
DV = Table(
    "dash_voucher", md,
    Column("union_id", Integer, nullable=False), Column("program_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False), Column("form", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("expires_at", DateTime),  # only for issued/held: the outstanding/lapsed split
    *_n(),
    Index("ix_dash_voucher_union", "union_id"),
)
DI = Table(
    "dash_issue_day", md,
    Column("union_id", Integer, nullable=False), Column("program_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False), Column("day", Date, nullable=False),
    *_n(),
    Index("ix_dash_issue_day_union", "union_id"),
)
DR = Table(
    "dash_redemption", md,
    Column("union_id", Integer, nullable=False), Column("program_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False), Column("status", String(20), nullable=False),
    *_n(),
    Column("order_fen", BigInteger, nullable=False),
    Column("refunds", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("restored_fen", BigInteger, nullable=False),
    Column("to_fund_fen", BigInteger, nullable=False),
    Index("ix_dash_redemption_union", "union_id"),
)
DS = Table(
    "dash_spend", md,
    Column("union_id", Integer, nullable=False), Column("program_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("category", String(20), nullable=False), Column("channel", String(20), nullable=False),
    *_n(),
    Column("order_fen", BigInteger, nullable=False),
    Index("ix_dash_spend_union", "union_id"),
)
DD = Table(
    "dash_redeem_day", md,
    Column("union_id", Integer, nullable=False), Column("program_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False), Column("day", Date, nullable=False),
    *_n(),
    Column("order_fen", BigInteger, nullable=False),
    Index("ix_dash_redeem_day_union", "union_id"),
)
DM = Table(
    "dash_member", md,
    Column("union_id", Integer, primary_key=True, autoincrement=False),
    Column("members", BigInteger, nullable=False),
)
SUMMARIES = (DV, DI, DR, DS, DD, DM)

# --- triggers (created by migration 0012) ----------------------------------------------------

_PG_SOURCES = {  # table -> the union ids of a transition table ``t``
    "voucher": "SELECT union_id FROM {t}",
    "redemption": "SELECT union_id FROM {t}",
    "member": "SELECT union_id FROM {t}",
    "refund": "SELECT r.union_id FROM {t} x JOIN redemption r ON r.id = x.redemption_id",
}


def pg_trigger_ddl() -> list[str]:
    out = []
    for table, src in _PG_SOURCES.items():
        for event, refs, body in (
            ("INSERT", "NEW TABLE AS dash_new", src.format(t="dash_new")),
            ("UPDATE", "OLD TABLE AS dash_old NEW TABLE AS dash_new",
             src.format(t="dash_new") + " UNION " + src.format(t="dash_old")),
            ("DELETE", "OLD TABLE AS dash_old", src.format(t="dash_old")),
        ):
            fn = f"dash_mark_{table}_{event.lower()}"
            out.append(
                f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n  INSERT INTO dash_dirty (union_id) SELECT DISTINCT u.union_id FROM "
                f"({body}) u WHERE u.union_id IS NOT NULL;\n  RETURN NULL;\nEND $$")
            out.append(f"CREATE TRIGGER {fn} AFTER {event} ON {table} REFERENCING {refs} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")
    out.append(
        "CREATE OR REPLACE FUNCTION dash_mark_merchant_update() RETURNS trigger LANGUAGE plpgsql "
        "AS $$\nBEGIN\n  INSERT INTO dash_dirty (union_id) SELECT DISTINCT r.union_id FROM "
        "dash_new n JOIN dash_old o ON o.id = n.id JOIN redemption r ON r.merchant_id = n.id "
        "WHERE n.category IS DISTINCT FROM o.category;\n  RETURN NULL;\nEND $$")
    out.append("CREATE TRIGGER dash_mark_merchant_update AFTER UPDATE ON merchant REFERENCING "
               "OLD TABLE AS dash_old NEW TABLE AS dash_new FOR EACH STATEMENT EXECUTE "
               "FUNCTION dash_mark_merchant_update()")
    return out


def pg_trigger_drop() -> list[str]:
    out = []
    for table in (*_PG_SOURCES, "merchant"):
        for event in ("insert", "update", "delete"):
            if table == "merchant" and event != "update":
                continue
            fn = f"dash_mark_{table}_{event}"
            out.append(f"DROP TRIGGER IF EXISTS {fn} ON {table}")
            out.append(f"DROP FUNCTION IF EXISTS {fn}()")
    return out


def sqlite_trigger_ddl() -> list[str]:
    out = []
    for table in ("voucher", "redemption", "member"):
        out += [
            f"CREATE TRIGGER dash_mark_{table}_insert AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO dash_dirty (union_id) VALUES (NEW.union_id); END",
            f"CREATE TRIGGER dash_mark_{table}_update AFTER UPDATE ON {table} BEGIN "
            f"INSERT INTO dash_dirty (union_id) VALUES (NEW.union_id); "
            f"INSERT INTO dash_dirty (union_id) SELECT OLD.union_id "
            f"WHERE OLD.union_id IS NOT NEW.union_id; END",
            f"CREATE TRIGGER dash_mark_{table}_delete AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO dash_dirty (union_id) VALUES (OLD.union_id); END",
        ]
    for event, row in (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")):
        extra = ("INSERT INTO dash_dirty (union_id) SELECT union_id FROM redemption "
                 "WHERE id = OLD.redemption_id AND OLD.redemption_id IS NOT "
                 "NEW.redemption_id; ") if event == "update" else ""
        out.append(
            f"CREATE TRIGGER dash_mark_refund_{event} AFTER {event.upper()} ON refund BEGIN "
            f"INSERT INTO dash_dirty (union_id) SELECT union_id FROM redemption "
            f"WHERE id = {row}.redemption_id; {extra}END")
    out.append(
        "CREATE TRIGGER dash_mark_merchant_update AFTER UPDATE OF category ON merchant "
        "WHEN OLD.category IS NOT NEW.category BEGIN INSERT INTO dash_dirty (union_id) "
        "SELECT DISTINCT union_id FROM redemption WHERE merchant_id = NEW.id; END")
    return out


def sqlite_trigger_drop() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS dash_mark_{t}_{e}"
            for t in ("voucher", "redemption", "member", "refund")
            for e in ("insert", "update", "delete")] + [
        "DROP TRIGGER IF EXISTS dash_mark_merchant_update"]
