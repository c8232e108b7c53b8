"""Ledger tables, named like TigerBeetle's: Account and Transfer. Append-only transfers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base


class Account(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str] = mapped_column(String(40), index=True)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("org.id"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("program.id"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchant.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending


class Transfer(Base):
    __tablename__ = "transfer"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # the idempotency key
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(20))
    flags: Mapped[int] = mapped_column(Integer, default=0)
    pending_id: Mapped[str | None] = mapped_column(String(255))
    memo: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_transfer_debit", "debit_account_id"),
        Index("ix_transfer_credit", "credit_account_id"),
        Index("ix_transfer_pending", "pending_id", unique=True),  # resolved once
    )
