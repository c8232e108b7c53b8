"""Merchant registry use cases.

A merchant's county must be a real county inside the deployment's map (``merchants.regions``:
the federations in the org table, or CIVICVOUCHER_MERCHANT_REGIONS): checked when merchants
are registered (file imports, the API, scenarios) and again when one is activated.

Bank details are sealed here, as the row is written (``_record``: the account number under the
session's database keyring, bound to the USCC), and nowhere else: nothing above this module
writes ``account_sealed``. A pending merchant registered by a person (``registered_by``) is
activated by another one (``may_activate``), as a deposit is approved by a second person.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock, ids
from civicvoucher.db import keyring_of
from civicvoucher.errors import Conflict, Forbidden, ImportRejected, NotFound, RowError
from civicvoucher.i18n import N_, Text, msg
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.regions import MerchantMap
from civicvoucher.merchants.rules import (
    Category,
    Channel,
    MerchantRow,
    MerchantStatus,
    mask_account,
)

COLUMNS = ("uscc", "name", "mcc", "category", "county_code", "channels", "status", "created_at",
           "payee_name", "bank_name", "account_sealed", "account_masked", "registered_by")


class SelfApproval(Forbidden):
    code = "self_approval_refused"


def _record(r: MerchantRow, now, keyring, registered_by: str | None) -> tuple:
    channels = ",".join(sorted(str(Channel(c)) for c in r.channels))
    if r.has_bank:
        sealed = keyring.seal(r.account_no, context=Merchant.account_context(r.uscc))
        bank = (r.payee_name, r.bank_name, sealed, mask_account(r.account_no))
    else:
        bank = (None, None, None, None)
    return (r.uscc, r.name, r.mcc, str(Category(r.category)), r.county_code, channels,
            str(r.status), now, *bank, registered_by)


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


def add_merchants(session: Session, rows: Sequence[tuple[int, MerchantRow]], *,
                  registered_by: str | None = None) -> int:
    """Register merchants in one batch; a USCC already registered, or a county outside the
    map, rejects the whole batch (every such row named). Bank details are sealed."""
    errors = registry_errors(session, rows)
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: (e.row, e.field)),
                             total_rows=len(rows))
    now = db_datetime(session, clock.now())
    ring = keyring_of(session) if any(r.has_bank for _, r in rows) else None
    return bulk_insert(session, "merchant", COLUMNS,
                       (_record(r, now, ring, registered_by) for _, r in rows))


def register_merchant(session: Session, row: MerchantRow, *,
                      registered_by: str | None = None) -> Merchant:
    """One merchant; ``registered_by`` (``user:<id>``) is who may not activate it."""
    add_merchants(session, [(1, row)], registered_by=registered_by)
    return session.execute(select(Merchant).where(Merchant.uscc == row.uscc)).scalar_one()


def may_activate(m: Merchant, identity: str, status: str) -> None:
    """Refuse (403 self_approval_refused) the person who registered a pending merchant
    activating it: a second person approves it (anyone for a file import or the CLI)."""
    if (m.status == MerchantStatus.PENDING and MerchantStatus(status) is MerchantStatus.ACTIVE
            and m.registered_by is not None and m.registered_by == identity):
        raise SelfApproval(msg("merchant {id} was registered by you: a second person approves "
                               "it", id=m.id), target=f"merchant:{m.id}")


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


def set_bank_details(session: Session, *, merchant_id: int, payee_name: str, bank_name: str,
                     account_no: str) -> tuple[Merchant, str | None]:
    """Give (or replace) a merchant's bank details, sealed as at registration; returns the
    merchant and the masked number it had before. A ValidationError names the field."""
    from civicvoucher.errors import ValidationError
    from civicvoucher.merchants.rules import bank_errors, normalise_account

    payee, bank, account = payee_name.strip(), bank_name.strip(), normalise_account(account_no)
    errors = bank_errors(1, payee, bank, account) if (payee or bank or account) else [
        RowError(1, "account_no", N_("the account number is required with bank details"))]
    if errors:
        raise ValidationError(errors[0].reason, field=errors[0].field)
    m = session.get(Merchant, merchant_id)
    if m is None:
        raise NotFound(msg("no merchant {ref}", ref=merchant_id), code="merchant_not_found")
    before = m.account_masked
    sealed = keyring_of(session).seal(account, context=Merchant.account_context(m.uscc))
    session.execute(update(Merchant.__table__).where(Merchant.id == m.id).values(
        payee_name=payee, bank_name=bank, account_sealed=sealed,
        account_masked=mask_account(account)))
    return session.get(Merchant, m.id, populate_existing=True), before
