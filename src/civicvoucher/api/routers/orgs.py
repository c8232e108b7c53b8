"""Organisations (the federation tree and grassroots unions) and their funds."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, File, Path, Query, Response, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import (
    DepositIn,
    DepositOut,
    DepositRequestOut,
    FundBalance,
    OrgImportOut,
    OrgIn,
    OrgOut,
    RejectIn,
)
from civicvoucher.api.uploads import read_upload, saved_upload
from civicvoucher.auth import scope
from civicvoucher.auth.errors import OutOfScope
from civicvoucher.errors import ImportRejected
from civicvoucher.funds import approvals
from civicvoucher.funds.models import DepositRequest
from civicvoucher.funds.service import Deposit, fund_balance
from civicvoucher.i18n import nmsg
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import ORG_ALIASES, validate_org_rows
from civicvoucher.orgs.service import create_org, get_org, import_orgs

router = make_router("/orgs", "organisations")
funds = make_router("/funds", "funds")
OrgId = Path(ge=1, le=2_147_483_647)


def org_out(o: Org) -> OrgOut:
    return OrgOut(id=o.id, parent_id=o.parent_id, level=o.level, name=o.name,
                  division_code=o.division_code, uscc=o.uscc, unit_type=o.unit_type,
                  region_code=o.region_code)


@router.get("", response_model=Page[OrgOut], name="list_orgs")
def list_orgs(under: int | None = Query(None, ge=1, le=2_147_483_647,
                                        description="subtree root (default: your organisation)"),
              level: Literal["province", "city", "county", "union"] | None = None,
              page: PageParams = Depends(page_params), c: Ctx = Depends(ctx)) -> Page[OrgOut]:
    def run(s: Session) -> Page[OrgOut]:
        root = scope.scoped_root(s, c.principal, under)
        q = select(Org).where(Org.path.startswith(root.path))
        if level:
            q = q.where(Org.level == level)
        return paginate(s, q, Org.id, page, org_out)

    return c.db.run(run)


@router.get("/{org_id}", response_model=OrgOut, name="get_org_detail")
def get_org_detail(org_id: int = OrgId, c: Ctx = Depends(ctx)) -> OrgOut:
    return c.db.run(lambda s: org_out(scope.require_org(c.principal, get_org(s, org_id))))


@router.post("", response_model=OrgOut, status_code=201, name="create_org")
def create_org_route(body: OrgIn, c: Ctx = Depends(ctx)) -> OrgOut:
    """Add a city, county or union under a parent in your subtree."""

    def run(s: Session) -> OrgOut:
        scope.require_org(c.principal, get_org(s, body.parent_id))
        o = create_org(s, level=body.level, name=body.name, parent_id=body.parent_id,
                       division_code=body.division_code, uscc=body.uscc,
                       unit_type=body.unit_type)
        c.audit(s, "org.create", target=f"org:{o.id}", detail={"level": o.level,
                                                                 "parent_id": o.parent_id})
        return org_out(o)

    return c.db.run(run)


@router.post("/import", response_model=OrgImportOut, status_code=201, name="import_orgs_upload",
             openapi_extra={"x-upload": "CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX of "
                                        "organisations, parents before children"})
def import_orgs_upload(file: UploadFile = File(...), c: Ctx = Depends(ctx)) -> OrgImportOut:
    """Import federations and unions. All or nothing: one bad row imports nothing and the
    answer names every bad row; every new organisation must land in your subtree."""
    with saved_upload(file, "orgs") as path:
        table = read_upload(path, ORG_ALIASES)
    rows, errors = validate_org_rows(table)
    if errors:
        raise ImportRejected(errors, total_rows=len(table.rows))

    def run(s: Session) -> OrgImportOut:
        created = import_orgs(s, rows)
        outside = [o for o in created if not scope.org_in_scope(c.principal, o)]
        if outside:  # the transaction rolls back: nothing is imported
            raise OutOfScope(nmsg("{n} row would land outside your subtree ({name})",
                                  "{n} rows would land outside your subtree (first: {name})",
                                  len(outside), name=outside[0].name))
        c.audit(s, "org.import", target=f"file:{file.filename or ''}"[:200],
                detail={"rows": len(table.rows), "imported": len(created)})
        return OrgImportOut(rows=len(table.rows), imported=len(created),
                            orgs=[org_out(o) for o in created])

    return c.db.run(run)


@router.get("/{org_id}/fund", response_model=FundBalance, name="get_fund_balance")
def get_fund_balance(org_id: int = OrgId, c: Ctx = Depends(ctx)) -> FundBalance:
    def run(s: Session) -> FundBalance:
        scope.require_org(c.principal, get_org(s, org_id))
        return FundBalance(org_id=org_id, balance_fen=fund_balance(s, org_id))

    return c.db.run(run)


@funds.post("/deposits", response_model=DepositOut | DepositRequestOut, status_code=201,
            name="create_deposit",
            responses={202: {"model": DepositRequestOut,
                             "description": "waits for a second person (maker-checker)"}})
def create_deposit(body: DepositIn, response: Response, c: Ctx = Depends(ctx)
                   ) -> DepositOut | DepositRequestOut:
    """Deposit dues or a fiscal allocation, or transfer down from a federation; both ends must
    be in your subtree. Fiscal money, transfers, and dues above
    ``CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE`` yuan (default 100,000) need a second person: the
    answer is then 202 with a pending request, and no money moves until an admin of a
    federation above approves it (``/funds/deposit-requests/{id}/approve``; docs/deposits.md).
    """

    def run(s: Session) -> DepositOut | DepositRequestOut:
        scope.require_org(c.principal, get_org(s, body.org_id))
        if body.from_org_id is not None:
            scope.require_org(c.principal, get_org(s, body.from_org_id))
        r = approvals.request_deposit(
            s, org_id=body.org_id, amount_fen=body.amount_fen, source=body.source,
            from_org_id=body.from_org_id, memo=body.memo, idem_key=c.service_key("deposit"),
            maker=_person(c))
        if isinstance(r, Deposit):
            if not r.replayed:
                c.audit(s, "fund.deposit", target=f"org:{r.org_id}",
                        detail={"amount_fen": r.amount_fen, "source": r.source,
                                "from_org_id": body.from_org_id, "transfer_id": r.transfer_id})
            return DepositOut(transfer_id=r.transfer_id, org_id=r.org_id,
                              amount_fen=r.amount_fen, source=r.source, balance_fen=r.balance_fen)
        q = r.request
        if not r.replayed:
            c.audit(s, "fund.deposit.request", target=f"deposit_request:{q.id}",
                    detail={"org_id": q.org_id, "amount_fen": q.amount_fen, "source": q.source,
                            "from_org_id": q.from_org_id, "reason": q.reason})
        response.status_code = 202
        return request_out(q)

    return c.db.run(run)


def _person(c: Ctx) -> approvals.Person:
    p = c.principal
    return approvals.Person.api_user(p.user_id, p.username, p.org_id)


def request_out(q: DepositRequest, balance_fen: int | None = None) -> DepositRequestOut:
    return DepositRequestOut(
        id=q.id, org_id=q.org_id, from_org_id=q.from_org_id, amount_fen=q.amount_fen,
        source=q.source, reason=q.reason, status=q.status, maker_name=q.maker_name,
        checker_name=q.checker_name, note=q.note, transfer_id=q.transfer_id,
        created_at=q.created_at, decided_at=q.decided_at, balance_fen=balance_fen)


RequestId = Path(ge=1, le=2_147_483_647)


def _request_in_scope(s: Session, c: Ctx, request_id: int) -> DepositRequest:
    q = approvals.get_request(s, request_id)
    scope.require_org(c.principal, get_org(s, q.org_id))
    return q


@funds.get("/deposit-requests", response_model=Page[DepositRequestOut],
           name="list_deposit_requests")
def list_deposit_requests(
        status: Literal["pending", "approved", "rejected"] | None = "pending",
        org_id: int | None = Query(None, ge=1, le=2_147_483_647,
                                   description="subtree root (default: your organisation)"),
        page: PageParams = Depends(page_params),
        c: Ctx = Depends(ctx)) -> Page[DepositRequestOut]:
    """Deposit requests of organisations in your subtree (pending unless asked otherwise)."""

    def run(s: Session) -> Page[DepositRequestOut]:
        root = scope.scoped_root(s, c.principal, org_id)
        q = approvals.requests_query(status=status, within_path=root.path)
        return paginate(s, q, DepositRequest.id, page, request_out)

    return c.db.run(run)


@funds.get("/deposit-requests/{request_id}", response_model=DepositRequestOut,
           name="get_deposit_request")
def get_deposit_request(request_id: int = RequestId, c: Ctx = Depends(ctx)) -> DepositRequestOut:
    return c.db.run(lambda s: request_out(_request_in_scope(s, c, request_id)))


@funds.post("/deposit-requests/{request_id}/approve", response_model=DepositRequestOut,
            name="approve_deposit_request")
def approve_deposit_request(request_id: int = RequestId,
                            c: Ctx = Depends(ctx)) -> DepositRequestOut:
    """Approve a pending deposit: the money moves now, once. Not the maker's own; you must
    be an admin of a federation above the receiving organisation (and above the paying one and
    the maker's own). Approving again, by anyone, answers the first approval."""

    def run(s: Session) -> DepositRequestOut:
        _request_in_scope(s, c, request_id)
        d = approvals.approve(s, request_id=request_id, checker=_person(c))
        q = d.request
        if not d.replayed:
            c.audit(s, "fund.deposit.approve", target=f"deposit_request:{q.id}",
                    detail=_decision_detail(q))
        return request_out(q, d.balance_fen)

    return c.db.run(run)


@funds.post("/deposit-requests/{request_id}/reject", response_model=DepositRequestOut,
            name="reject_deposit_request")
def reject_deposit_request(body: RejectIn | None = None, request_id: int = RequestId,
                           c: Ctx = Depends(ctx)) -> DepositRequestOut:
    """Reject a pending deposit (the same people as approve it); nothing moves."""

    def run(s: Session) -> DepositRequestOut:
        _request_in_scope(s, c, request_id)
        d = approvals.reject(s, request_id=request_id, checker=_person(c),
                             note=body.reason if body is not None else None)
        q = d.request
        if not d.replayed:
            c.audit(s, "fund.deposit.reject", target=f"deposit_request:{q.id}",
                    detail=_decision_detail(q))
        return request_out(q, d.balance_fen)

    return c.db.run(run)


def _decision_detail(q: DepositRequest) -> dict:
    """Both actors: the checker is the entry's actor, the maker is named here."""
    return {"org_id": q.org_id, "amount_fen": q.amount_fen, "source": q.source,
            "from_org_id": q.from_org_id, "maker": q.maker, "maker_name": q.maker_name,
            "transfer_id": q.transfer_id, "note": q.note}
