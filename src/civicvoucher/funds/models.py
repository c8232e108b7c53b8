"""Deposits waiting for a second person (maker-checker): see ``funds/approvals.py``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base


class DepositRequest(Base):
    """A deposit a maker asked for that moves no money until a checker approves it.

    ``maker`` / ``checker`` are identities (``user:17`` for an API user, ``cli:alice`` for an
    operator at the command line): the two-person rule compares them; ``*_name`` is what
    people read. ``key`` is the maker's idempotency key; the approved deposit's transfer is
    ``deposit:approval:<id>``, so it posts once whatever happens."""

    __tablename__ = "deposit_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("org.id"))
    from_org_id: Mapped[int | None] = mapped_column(ForeignKey("org.id"))  # a transfer's payer
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(20))  # DepositSource
    memo: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(20))  # fiscal | transfer | over_threshold
    status: Mapped[str] = mapped_column(String(20))  # pending | approved | rejected
    maker: Mapped[str] = mapped_column(String(120))
    maker_name: Mapped[str] = mapped_column(String(100))
    maker_org_id: Mapped[int | None] = mapped_column(ForeignKey("org.id"))
    checker: Mapped[str | None] = mapped_column(String(120))
    checker_name: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(String(200))  # why it was rejected
    transfer_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_deposit_request_status_org", "status", "org_id"),)
