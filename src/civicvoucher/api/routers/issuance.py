"""Issuance: a union issues its members' entitlement, funded by itself or a federation."""

from __future__ import annotations

from fastapi import Depends, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import IssuanceOut, IssueIn
from civicvoucher.auth import scope
from civicvoucher.errors import NotFound
from civicvoucher.i18n import msg
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.service import get_org
from civicvoucher.vouchers.issuance import issue
from civicvoucher.vouchers.models import Issuance

router = make_router("/issuances", "issuance")


def issuance_out(i: Issuance) -> IssuanceOut:
    return IssuanceOut(
        id=i.id, union_id=i.union_id, program_id=i.program_id, products=list(i.products),
        funding_org_id=i.funding_org_id, mode=i.mode, form=i.form, status=i.status,
        members_eligible=i.members_eligible, members_issued=i.members_issued,
        members_duplicate=i.members_duplicate, vouchers_issued=i.vouchers_issued,
        amount_fen=i.amount_fen, shortfall_fen=i.shortfall_fen, created_at=i.created_at)


@router.post("", response_model=IssuanceOut, status_code=201, name="create_issuance")
def create_issuance(body: IssueIn, c: Ctx = Depends(ctx)) -> IssuanceOut:
    """Issue a program to a union's active members. Short funds: ``all_or_nothing`` issues
    nothing (status refused), ``partial`` issues as far as funds go; the shortfall is kept."""

    def run(s: Session) -> IssuanceOut:
        scope.require_org(c.principal, get_org(s, body.union_id))
        if body.funding_org_id is not None:
            scope.require_org(c.principal, get_org(s, body.funding_org_id))
        r = issue(s, union_id=body.union_id, program=body.program, products=body.products,
                  member_ids=body.member_ids, form=body.form, mode=body.mode,
                  funding_org_id=body.funding_org_id, actor=c.principal.username,
                  idem_key=c.service_key("issue"))
        i = r.issuance
        if not r.replayed:
            c.audit(s, "issuance.create", target=f"issuance:{i.id}",
                    detail={"union_id": i.union_id, "program_id": i.program_id,
                            "status": i.status, "amount_fen": i.amount_fen,
                            "vouchers": i.vouchers_issued})
        return issuance_out(i)

    return c.db.run(run)


@router.get("", response_model=Page[IssuanceOut], name="list_issuances")
def list_issuances(org_id: int | None = Query(None, ge=1, le=2_147_483_647),
                   page: PageParams = Depends(page_params),
                   c: Ctx = Depends(ctx)) -> Page[IssuanceOut]:
    def run(s: Session) -> Page[IssuanceOut]:
        root = scope.scoped_root(s, c.principal, org_id)
        q = (select(Issuance).join(Org, Org.id == Issuance.union_id)
             .where(Org.path.startswith(root.path)))
        return paginate(s, q, Issuance.id, page, issuance_out)

    return c.db.run(run)


@router.get("/{issuance_id}", response_model=IssuanceOut, name="get_issuance")
def get_issuance(issuance_id: int = Path(ge=1, le=2_147_483_647),
                 c: Ctx = Depends(ctx)) -> IssuanceOut:
    def run(s: Session) -> IssuanceOut:
        i = s.get(Issuance, issuance_id)
        if i is None:
            raise NotFound(msg("no issuance {id}", id=issuance_id), code="issuance_not_found")
        scope.require_org(c.principal, get_org(s, i.union_id))
        return issuance_out(i)

    return c.db.run(run)
