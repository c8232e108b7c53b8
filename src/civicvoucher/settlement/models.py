"""Settlement runs and per-merchant payout batches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base


class SettlementRun(Base):
    __tablename__ = "settlement_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    cutoff: Mapped[datetime] = mapped_column(DateTime)
    batches: Mapped[int] = mapped_column(Integer)
    redemptions: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # redemptions settled (gross)
    # netted from the payouts for refunds of earlier, already-paid redemptions
    recovered_fen: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SettlementBatch(Base):
    __tablename__ = "settlement_batch"
    __table_args__ = (UniqueConstraint("run_id", "merchant_id"),)  # one payout per merchant

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("settlement_run.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # its redemptions' total (gross)
    redemption_count: Mapped[int] = mapped_column(Integer)
    transfer_id: Mapped[str] = mapped_column(String(255))
    # owed back by the merchant and kept from this payout (transfer ``recover:<id>``); the
    # merchant is paid amount_fen - recovered_fen
    recovered_fen: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime)
