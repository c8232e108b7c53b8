"""The dashboard rollup's tables (migration 0012, which also creates the triggers that log
changed unions). What they mean and how they are kept: ``civicvoucher.analytics.rollup``.
Here, apart from the analytics package, so that ``civicvoucher.models`` can list them
without importing DuckDB."""

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

# The triggers that write ``dash_dirty`` live in migration 0012 itself (frozen there, as a
# migration must be: a later change to them is a new migration).
