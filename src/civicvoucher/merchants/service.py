"""Merchant registry use cases."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock
from civicvoucher.errors import ImportRejected, NotFound, RowError
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import Channel, MerchantRow, MerchantStatus, category_for_mcc

COLUMNS = ("uscc", "name", "mcc", "category", "county_code", "channels", "status", "created_at")


def _record(r: MerchantRow, now) -> tuple:
    channels = ",".join(sorted(str(Channel(c)) for c in r.channels))
    return (r.uscc, r.name, r.mcc, str(category_for_mcc(r.mcc)), r.county_code, channels,
            str(r.status), now)


def add_merchants(session: Session, rows: Sequence[tuple[int, MerchantRow]]) -> int:
    """Register merchants in one batch; a USCC already registered rejects the whole batch."""
    known = set(session.execute(select(Merchant.uscc)).scalars())
    errors, seen = [], set()
    for row_no, r in rows:
        if r.uscc in known or r.uscc in seen:
            errors.append(RowError(row_no, "uscc", f"merchant {r.uscc} is registered already"))
        seen.add(r.uscc)
    if errors:
        raise ImportRejected(errors, total_rows=len(rows))
    now = db_datetime(session, clock.now())
    return bulk_insert(session, "merchant", COLUMNS, (_record(r, now) for _, r in rows))


def register_merchant(session: Session, row: MerchantRow) -> Merchant:
    add_merchants(session, [(1, row)])
    return session.execute(select(Merchant).where(Merchant.uscc == row.uscc)).scalar_one()


def set_status(session: Session, *, merchant_id: int, status: str) -> Merchant:
    """pending → active → suspended (and back): only active merchants can redeem."""
    st = MerchantStatus(status)
    n = session.execute(
        update(Merchant.__table__).where(Merchant.id == merchant_id).values(status=st)
    ).rowcount
    if n != 1:
        raise NotFound(f"no merchant {merchant_id}", code="merchant_not_found")
    return session.get(Merchant, merchant_id, populate_existing=True)


def find_merchant(session: Session, ref: str | int) -> Merchant:
    s = str(ref).strip()
    m = session.execute(select(Merchant).where(Merchant.uscc == s.upper())).scalar()
    if m is None and s.isdigit():
        m = session.get(Merchant, int(s))
    if m is None:
        raise NotFound(f"no merchant {s}", code="merchant_not_found")
    return m
