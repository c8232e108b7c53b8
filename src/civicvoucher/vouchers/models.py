"""Vouchers (the subledger of vouchers.outstanding), issuance, redemption, refunds, expiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from civicvoucher.db import Base

BigId = BigInteger().with_variant(Integer, "sqlite")


class Issuance(Base):
    """One issuance attempt by a union for a program: what was issued and what fell short."""

    __tablename__ = "issuance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    union_id: Mapped[int] = mapped_column(ForeignKey("org.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("program.id"), index=True)
    products: Mapped[list] = mapped_column(JSON)  # product keys issued
    funding_org_id: Mapped[int] = mapped_column(ForeignKey("org.id"))
    mode: Mapped[str] = mapped_column(String(20))  # all_or_nothing | partial
    form: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # IssuanceStatus
    members_eligible: Mapped[int] = mapped_column(Integer)
    members_issued: Mapped[int] = mapped_column(Integer)
    members_duplicate: Mapped[int] = mapped_column(Integer, default=0)  # entitled via another union
    vouchers_issued: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    shortfall_fen: Mapped[int] = mapped_column(BigInteger)
    region_code: Mapped[str] = mapped_column(String(6))
    actor: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Entitlement(Base):
    """One person, one product, once: the guard against issuing twice province-wide."""

    __tablename__ = "entitlement"

    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), primary_key=True)
    person_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # shard key
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    union_id: Mapped[int] = mapped_column(ForeignKey("org.id"))
    issuance_id: Mapped[int] = mapped_column(ForeignKey("issuance.id"))


class Voucher(Base):
    __tablename__ = "voucher"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    program_id: Mapped[int] = mapped_column(ForeignKey("program.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    union_id: Mapped[int] = mapped_column(ForeignKey("org.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    issuance_id: Mapped[int] = mapped_column(ForeignKey("issuance.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    threshold_fen: Mapped[int] = mapped_column(BigInteger)
    form: Mapped[str] = mapped_column(String(20))  # VoucherForm
    status: Mapped[str] = mapped_column(String(20))  # VoucherStatus
    valid_from: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    region_code: Mapped[str] = mapped_column(String(6))  # shard key: issuing union's region
    # expiry (epoch seconds) of the newest QR payload spent on this voucher: older ones are void
    qr_used_exp: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        # Codes are 128 random bits; uniqueness is kept per shard, lookups use ix_voucher_code.
        UniqueConstraint("region_code", "code"),
        Index("ix_voucher_code", "code"),
        Index("ix_voucher_union_program_status", "union_id", "program_id", "status"),
        Index("ix_voucher_member", "member_id"),
        # expire(): status = 'issued' AND expires_at <= as_of
        Index("ix_voucher_status_expires", "status", "expires_at"),
        # extend(): program_id = p AND status IN (issued, held) AND expires_at < new deadline
        Index("ix_voucher_program_status_expires", "program_id", "status", "expires_at"),
    )


class Redemption(Base):
    __tablename__ = "redemption"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    voucher_id: Mapped[int] = mapped_column(ForeignKey("voucher.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchant.id"), index=True)
    union_id: Mapped[int] = mapped_column(ForeignKey("org.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("program.id"))
    channel: Mapped[str] = mapped_column(String(20))
    order_amount_fen: Mapped[int] = mapped_column(BigInteger)  # what the customer spent in all
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # what the voucher paid
    status: Mapped[str] = mapped_column(String(20))  # RedemptionStatus
    transfer_id: Mapped[str] = mapped_column(String(255))
    hold_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    posted_at: Mapped[datetime | None] = mapped_column(DateTime)
    settlement_batch_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_batch.id"))
    region_code: Mapped[str] = mapped_column(String(6))

    __table_args__ = (
        Index("ix_redemption_status_posted", "status", "posted_at"),
        # void_expired_holds(): status = 'held' AND hold_expires_at <= now
        Index("ix_redemption_status_hold", "status", "hold_expires_at"),
        # a batch's redemptions (payout listings, reconciliation)
        Index("ix_redemption_settlement_batch", "settlement_batch_id"),
        # scoped lists and reports join redemption.union_id to the org tree
        Index("ix_redemption_union", "union_id"),
    )


class Refund(Base):
    __tablename__ = "refund"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemption.id"), unique=True)
    outcome: Mapped[str] = mapped_column(String(20))  # restored | to_fund
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    transfer_id: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ExpiryRun(Base):
    __tablename__ = "expiry_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    vouchers_expired: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    holds_voided: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Extension(Base):
    __tablename__ = "extension"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("program.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    new_expires_at: Mapped[datetime] = mapped_column(DateTime)
    # True when no filter narrowed it: vouchers issued later get the new deadline too
    program_wide: Mapped[bool] = mapped_column(Boolean, default=False)
    scope: Mapped[dict] = mapped_column(JSON)  # the filters: unions, region, form
    vouchers_extended: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))
    document: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
