"""Merchant registry use cases.

A merchant's county must be a real county inside the deployment's map (``merchants.regions``:
the federations in the org table, or CIVICVOUCHER_MERCHANT_REGIONS): checked when merchants
are registered (file imports, the API, scenarios) and again when one is activated.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock, ids
from civicvoucher.errors import Conflict, ImportRejected, NotFound, RowError
from civicvoucher.i18n import Text, msg
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.regions import MerchantMap
from civicvoucher.merchants.rules import Category, Channel, MerchantRow, MerchantStatus

COLUMNS = ("uscc", "name", "mcc", "category", "county_code", "channels", "status", "created_at")


def _record(r: MerchantRow, now) -> tuple:
    channels = ",".join(sorted(str(Channel(c)) for c in r.channels))
    return (r.uscc, r.name, r.mcc, str(Category(r.category)), r.county_code, channels,
            str(r.status), now)


def merchant_map(session: Session) -> MerchantMap:
    """The deployment's map: every federation's division code, and the allowed list."""
    from civicvoucher.orgs.models import Org

    codes = session.execute(select(Org.division_code).where(Org.division_code.is_not(None)))
    return MerchantMap.of(codes.scalars())


def region_errors(session: Session, rows: Sequence[tuple[int, MerchantRow]]) -> list[RowError]:
    """A row error for every merchant whose county is not a real one inside the map."""
    where = merchant_map(session)
    return [RowError(row_no, "county_code", problem) for row_no, r in rows
            if (problem := where.problem(r.county_code))]


def registry_errors(session: Session, rows: Sequence[tuple[int, MerchantRow]]) -> list[RowError]:
    """What the database says against these rows: a county outside the map, a USCC already
    registered (or twice in the batch)."""
    known = set(session.execute(select(Merchant.uscc)).scalars())
    errors, seen = region_errors(session, rows), set()
    for row_no, r in rows:
        if r.uscc in known or r.uscc in seen:
            errors.append(RowError(row_no, "uscc",
                                   msg("merchant {uscc} is registered already", uscc=r.uscc)))
        seen.add(r.uscc)
    return errors


def add_merchants(session: Session, rows: Sequence[tuple[int, MerchantRow]]) -> int:
    """Register merchants in one batch; a USCC already registered, or a county outside the
    map, rejects the whole batch (every such row named)."""
    errors = registry_errors(session, rows)
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: (e.row, e.field)),
                             total_rows=len(rows))
    now = db_datetime(session, clock.now())
    return bulk_insert(session, "merchant", COLUMNS, (_record(r, now) for _, r in rows))


def register_merchant(session: Session, row: MerchantRow) -> Merchant:
    add_merchants(session, [(1, row)])
    return session.execute(select(Merchant).where(Merchant.uscc == row.uscc)).scalar_one()


def set_status(session: Session, *, merchant_id: int, status: str) -> Merchant:
    """pending → active → suspended (and back): only active merchants can redeem, and only a
    merchant whose county is inside the map can be activated."""
    st = MerchantStatus(status)
    if st is MerchantStatus.ACTIVE:
        county = session.execute(
            select(Merchant.county_code).where(Merchant.id == merchant_id)).scalar()
        if county is not None and (problem := merchant_map(session).problem(county)):
            raise Conflict(msg("the merchant cannot be activated: {problem}",
                               problem=Text(problem)), code="county_outside_map",
                           merchant_id=merchant_id)
    n = session.execute(
        update(Merchant.__table__).where(Merchant.id == merchant_id).values(status=st)
    ).rowcount
    if n != 1:
        raise NotFound(msg("no merchant {ref}", ref=merchant_id), code="merchant_not_found")
    return session.get(Merchant, merchant_id, populate_existing=True)


def find_merchant(session: Session, ref: str | int) -> Merchant:
    s = str(ref).strip()
    m = session.execute(select(Merchant).where(Merchant.uscc == s.upper())).scalar()
    if m is None and (mid := ids.as_id(s)) is not None:
        m = session.get(Merchant, mid)
    if m is None:
        raise NotFound(msg("no merchant {ref}", ref=s), code="merchant_not_found")
    return m
