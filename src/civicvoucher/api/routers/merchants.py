"""The merchant registry, placed in the tree by county code."""

from __future__ import annotations

from fastapi import Depends, Path, Query
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import MerchantIn, MerchantOut, MerchantStatusIn
from civicvoucher.auth import scope
from civicvoucher.auth.errors import OutOfScope
from civicvoucher.errors import Conflict, ImportRejected, ValidationError
from civicvoucher.i18n import msg
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import validate_merchant_row
from civicvoucher.merchants.service import (
    find_merchant,
    may_activate,
    register_merchant,
    set_status,
)

router = make_router("/merchants", "merchants")
MerchantId = Path(ge=1, le=2_147_483_647)


class MerchantCreateIn(MerchantIn):
    category: str | None = Field(
        None, max_length=20,
        description="voucher category (Chinese label or key, e.g. 粮油果蔬 or grain_produce); "
                    "default: the MCC's")
    payee_name: str | None = Field(None, max_length=200,
                                   description="bank details (all three or none): the payee's "
                                               "account name (收款户名)")
    bank_name: str | None = Field(None, max_length=200, description="the bank (开户行)")
    account_no: str | None = Field(None, max_length=60,
                                   description="the account number (digits; sealed at rest, "
                                               "never answered in clear)")


def merchant_out(m: Merchant) -> MerchantOut:
    return MerchantOut(id=m.id, uscc=m.uscc, name=m.name, mcc=m.mcc, category=m.category,
                       county_code=m.county_code, channels=sorted(m.channel_set),
                       status=m.status)


@router.get("", response_model=Page[MerchantOut], name="list_merchants")
def list_merchants(county: str | None = Query(None, pattern=r"^\d{2,6}$",
                                              description="division-code prefix"),
                   page: PageParams = Depends(page_params),
                   c: Ctx = Depends(ctx)) -> Page[MerchantOut]:
    def run(s: Session) -> Page[MerchantOut]:
        q = select(Merchant).where(
            scope.merchant_condition(c.principal, Merchant.id, Merchant.county_code))
        if county:
            q = q.where(Merchant.county_code.startswith(county))
        return paginate(s, q, Merchant.id, page, merchant_out)

    return c.db.run(run)


@router.get("/{merchant_id}", response_model=MerchantOut, name="get_merchant")
def get_merchant(merchant_id: int = MerchantId, c: Ctx = Depends(ctx)) -> MerchantOut:
    return c.db.run(lambda s: merchant_out(
        scope.require_merchant(c.principal, find_merchant(s, merchant_id))))


@router.post("", response_model=MerchantOut, status_code=201, name="register_merchant_route")
def register_merchant_route(body: MerchantCreateIn, c: Ctx = Depends(ctx)) -> MerchantOut:
    """Register a merchant in a county of your region (a real county inside the organisation
    tree, or an allowed one); its category follows from its MCC unless ``category`` says."""
    raw = {"uscc": body.uscc, "name": body.name, "mcc": body.mcc,
           "county_code": body.county_code, "channels": ",".join(body.channels),
           "status": body.status, "category": body.category or "",
           "payee_name": body.payee_name or "", "bank_name": body.bank_name or "",
           "account_no": body.account_no or ""}
    row = validate_merchant_row(1, raw)
    if isinstance(row, list):
        e = row[0]
        raise ValidationError(e.reason, field=e.field)
    if not scope.county_in_scope(c.principal, row.county_code):
        raise OutOfScope(msg("county {county} is outside your region", county=row.county_code))

    def run(s: Session) -> MerchantOut:
        try:
            m = register_merchant(s, row, registered_by=f"user:{c.principal.user_id}")
        except ImportRejected as exc:
            outside = [e for e in exc.errors if e.field == "county_code"]
            if outside:
                raise ValidationError(outside[0].reason, field="county_code",
                                      code="county_outside_map") from None
            raise Conflict(exc.errors[0].reason,
                           code="merchant_exists") from None
        c.audit(s, "merchant.register", target=f"merchant:{m.id}",
                detail={"county_code": m.county_code, "status": m.status,
                        "bank": m.account_masked})
        return merchant_out(m)

    return c.db.run(run)


@router.post("/{merchant_id}/status", response_model=MerchantOut, name="set_merchant_status")
def set_merchant_status(body: MerchantStatusIn, merchant_id: int = MerchantId,
                        c: Ctx = Depends(ctx)) -> MerchantOut:
    """Activate or suspend a merchant in your region (only active merchants redeem; one whose
    county is outside the map cannot be activated: 409 county_outside_map). A pending merchant
    is activated by someone other than who registered it (403 self_approval_refused)."""

    def run(s: Session) -> MerchantOut:
        found = scope.require_merchant(c.principal, find_merchant(s, merchant_id))
        before = found.status
        may_activate(found, f"user:{c.principal.user_id}", body.status)
        m = set_status(s, merchant_id=merchant_id, status=body.status)
        c.audit(s, "merchant.status", target=f"merchant:{m.id}",
                detail={"from": before, "to": m.status})
        return merchant_out(m)

    return c.db.run(run)
