"""Funds in the console (资金): balances per organisation, deposits, transfers down the tree,
and the approval queue of deposits that wait for a second person.

* **Balances** (``/funds``, ``/funds/orgs/{id}``): an organisation's own fund, its subtree's
  total, and its direct children (paged) each with its own fund and its subtree's total:
  two aggregate queries over the subtree (``_totals``, ``_children``), never a query per
  organisation. Drill down by following a child; the path back is shown as far as the
  user's scope reaches. The fund's recent ledger transfers are listed (``_movements``).
* **Deposit** (``POST /funds/orgs/{id}/deposit``): dues, a fiscal allocation, or a transfer
  from a federation above, with the document it rests on (文件/凭证号, kept as the deposit's
  memo), through the API's own ``create_deposit`` (``api/routers/orgs.py``: the same scope
  checks, ``funds.approvals.request_deposit``, audit ``fund.deposit`` or
  ``fund.deposit.request``), once per attempt key. Whether it posted at once or waits for
  approval is shown after the redirect.
* **Transfer** (``POST /funds/orgs/{id}/transfer``): a federation pays one of its direct
  children from its own fund (source ``transfer``), through the same ``create_deposit``.
  **Distribute** (``POST /funds/orgs/{id}/distribute``): the same amount to every direct child,
  in one transaction (all requests or none), each child's request idempotent on the form's
  one attempt key plus the child's id. Transfers always wait for a second person
  (docs/deposits.md); the service refuses an overdraw when the transfer posts (approval).
  The page refuses earlier too: a transfer (or a distribution's total) above the paying
  fund's balance now is refused before anything is written.
* **Approvals** (``/funds/requests``): pending requests in the user's subtree, each marked
  with whether this user may decide it (``funds.approvals.may_check``); approve and reject
  (with a note) through the API's own ``approve_deposit_request`` /
  ``reject_deposit_request`` (audit ``fund.deposit.approve`` / ``fund.deposit.reject``). The
  service's decision is idempotent on the request: a second approval answers the first and
  moves nothing, so those forms carry no attempt key. The maker deciding their own request
  is refused (``self_approval_refused``) and audited as the API audits a refusal.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased
from starlette.responses import RedirectResponse, Response

from civicvoucher.api.routers import orgs as api_orgs
from civicvoucher.api.routing import _audit_refusal
from civicvoucher.api.schemas import DepositIn, RejectIn
from civicvoucher.auth import scope
from civicvoucher.auth.policy import rule_for
from civicvoucher.console import nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.errors import (
    CivicVoucherError,
    Forbidden,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransition,
    ValidationError,
)
from civicvoucher.funds import approvals
from civicvoucher.funds.models import DepositRequest
from civicvoucher.funds.service import Deposit, fund_balance
from civicvoucher.i18n import N_, Text, Yuan, msg
from civicvoucher.ledger.models import Account, Transfer
from civicvoucher.ledger.rules import AccountCode, DepositSource, account_key
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel
from civicvoucher.orgs.service import get_org

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
nav.register(nav.Link("console_funds", "/funds", N_("Funds")))

ORG_TEMPLATE = "fundspage/org.html.j2"
QUEUE_TEMPLATE = "fundspage/requests.html.j2"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,100}$")
PAGE_SIZE = 50
MAX_FEN = 10**13  # as api.schemas.Fen
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MOVEMENTS = 20
OrgId = Path(ge=1, le=2_147_483_647)
BAL = Account.credits_posted - Account.debits_posted
SOURCES = [str(s) for s in DepositSource]
SOURCE_LABELS = {"dues": N_("Union dues"), "fiscal": N_("Fiscal allocation"),
                 "transfer": N_("Transfer from a federation above")}
REASON_LABELS = {"fiscal": N_("fiscal money always needs a second person"),
                 "transfer": N_("a transfer always needs a second person"),
                 "over_threshold": N_("above the amount one person may deposit")}
CODE_LABELS = {"deposit": N_("Deposit"), "reserve": N_("Reserved for a program"),
               "issue": N_("Issued vouchers"), "redeem": N_("Redemption"),
               "release": N_("Released")}


# --------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Row:
    id: int
    name: str
    level: str
    own_fen: int
    subtree_fen: int
    orgs: int  # organisations in its subtree, itself included
    unions: int


def _fund_cond(org_col):
    return and_(Account.org_id == org_col, Account.code == str(AccountCode.UNION_FUND))


def _totals(s: Session, org: Org) -> Row:
    """The organisation's own fund and its subtree's total: one aggregate over the subtree."""
    row = s.execute(
        select(func.count(Org.id),
               func.count(case((Org.level == OrgLevel.UNION.value, 1))),
               func.coalesce(func.sum(case((Org.id == org.id, BAL), else_=0)), 0),
               func.coalesce(func.sum(BAL), 0))
        .select_from(Org).outerjoin(Account, _fund_cond(Org.id))
        .where(Org.path.startswith(org.path))).one()
    return Row(org.id, org.name, org.level, int(row[2]), int(row[3]), int(row[0]), int(row[1]))


def _children(s: Session, org: Org, page: int) -> tuple[list[Row], int]:
    """A page of the direct children, each with its own fund and its subtree's total: one
    query (the page of children joined to their descendants and funds), plus the count."""
    total = s.execute(select(func.count()).select_from(Org)
                      .where(Org.parent_id == org.id)).scalar_one()
    kids = (select(Org.id, Org.name, Org.level, Org.path).where(Org.parent_id == org.id)
            .order_by(Org.name, Org.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
            .subquery("kids"))
    d = aliased(Org, name="d")
    q = (select(kids.c.id, kids.c.name, kids.c.level,
                func.count(d.id), func.count(case((d.level == OrgLevel.UNION.value, 1))),
                func.coalesce(func.sum(case((d.id == kids.c.id, BAL), else_=0)), 0),
                func.coalesce(func.sum(BAL), 0))
         .select_from(kids)
         # the constant prefix lets the path index narrow the descendants first
         .join(d, and_(d.path.startswith(org.path), d.path.startswith(kids.c.path)))
         .outerjoin(Account, _fund_cond(d.id))
         .group_by(kids.c.id, kids.c.name, kids.c.level)
         .order_by(kids.c.name, kids.c.id))
    rows = [Row(r[0], r[1], r[2], int(r[5]), int(r[6]), int(r[3]), int(r[4]))
            for r in s.execute(q)]
    return rows, total


def _trail(s: Session, c: PageCtx, org: Org) -> list[dict]:
    """The organisations above ``org`` the user may open (the path back), top first."""
    ids = [int(x) for x in org.path.strip("/").split("/") if x][:-1]
    if not ids:
        return []
    rows = s.execute(select(Org.id, Org.name, Org.path).where(
        Org.id.in_(ids), scope.org_path_condition(c.principal, Org.path))).all()
    return sorted(({"id": r.id, "name": r.name, "depth": r.path.count("/")} for r in rows),
                  key=lambda x: x["depth"])


def _fund_account_id(s: Session, org_id: int) -> int | None:
    return s.execute(select(Account.id).where(
        Account.key == account_key(AccountCode.UNION_FUND, org_id))).scalar()


def _movements(s: Session, org_id: int) -> list[dict]:
    """The fund's latest ledger transfers, each with its other side (one query)."""
    acct = _fund_account_id(s, org_id)
    if acct is None:
        return []
    other, other_org = aliased(Account, name="other"), aliased(Org, name="other_org")
    incoming = Transfer.credit_account_id == acct
    q = (select(Transfer.id, Transfer.amount, Transfer.code, Transfer.memo, Transfer.created_at,
                incoming.label("incoming"), other.code.label("other_code"),
                other.key.label("other_key"), other_org.name.label("other_name"))
         .join(other, other.id == case((incoming, Transfer.debit_account_id),
                                       else_=Transfer.credit_account_id))
         .outerjoin(other_org, other_org.id == other.org_id)
         .where(or_(Transfer.credit_account_id == acct, Transfer.debit_account_id == acct))
         .order_by(Transfer.created_at.desc(), Transfer.id.desc()).limit(MOVEMENTS))
    out = []
    for r in s.execute(q):
        if r.other_code == AccountCode.FUNDING_EXTERNAL:
            src = r.other_key.rsplit(":", 1)[-1]
            counterpart = SOURCE_LABELS.get(src, src)
        elif r.other_code == AccountCode.UNION_FUND:
            counterpart = r.other_name or r.other_key
        else:
            counterpart = CODE_LABELS.get(r.code, r.code)
        out.append({"id": r.id, "amount_fen": int(r.amount), "incoming": bool(r.incoming),
                    "code": CODE_LABELS.get(r.code, r.code), "memo": r.memo,
                    "at": r.created_at, "counterpart": counterpart,
                    "counterpart_is_org": r.other_code == AccountCode.UNION_FUND})
    return out


def _may(c: PageCtx, route: str) -> bool:
    rule = rule_for(route)
    return c.principal.role in rule.roles


def _org_data(s: Session, c: PageCtx, org_id: int, page: int) -> dict:
    org = scope.require_org(c.principal, get_org(s, org_id))  # as get_fund_balance
    kids, n_kids = _children(s, org, page)
    trail = _trail(s, c, org)
    choices = []
    if org.level != OrgLevel.UNION and _may(c, "console_fund_transfer"):
        choices = [dict(id=r.id, name=r.name) for r in s.execute(
            select(Org.id, Org.name).where(Org.parent_id == org.id).order_by(Org.name, Org.id))]
    pending = s.execute(select(func.count()).select_from(DepositRequest)
                        .join(Org, Org.id == DepositRequest.org_id)
                        .where(DepositRequest.status == approvals.PENDING,
                               Org.path.startswith(org.path))).scalar_one()
    return {"org": {"id": org.id, "name": org.name, "level": org.level,
                    "is_union": org.level == OrgLevel.UNION},
            "totals": _totals(s, org), "children": kids, "n_children": n_kids,
            "page": page, "pages": max(1, -(-n_kids // PAGE_SIZE)),
            "trail": trail, "payers": trail,  # who may pay it a transfer: those above, in scope
            "movements": _movements(s, org.id), "transfer_choices": choices,
            "pending_in_subtree": pending}


def _outcome(s: Session, org_id: int, posted: str | None, requested: int | None) -> dict | None:
    """What the last deposit did, for the page it redirected to (only this org's)."""
    if requested:
        r = s.get(DepositRequest, requested)
        if r is not None and (r.org_id == org_id or r.from_org_id == org_id):
            return {"kind": "requested", "id": r.id, "amount_fen": r.amount_fen,
                    "status": r.status, "reason": r.reason, "to": get_org(s, r.org_id).name}
    if posted:
        t = s.get(Transfer, posted)
        acct = _fund_account_id(s, org_id)
        if t is not None and acct is not None and t.credit_account_id == acct:
            return {"kind": "posted", "id": t.id, "amount_fen": t.amount}
    return None


def _org_page(c: PageCtx, org_id: int, *, page: int = 1, status: int = 200,
              posted: str | None = None, requested: int | None = None,
              distributed: int | None = None, **context) -> Response:
    def run(s: Session) -> dict:
        data = _org_data(s, c, org_id, page)
        data["outcome"] = _outcome(s, org_id, posted, requested)
        return data

    data = c.db.run(run)
    for k in ("error", "error_code", "error_field", "error_form"):
        context.setdefault(k, None)
    context.setdefault("form", {"amount": "", "source": "dues", "from_org": 0, "document": "",
                                "to_org": 0})
    # one attempt key per form: a deposit's key never answers a transfer sent from the same page
    keys = {which: str(uuid.uuid4()) for which in ("deposit", "transfer", "distribute")}
    keys.update(context.pop("keys", {}))
    return render(c.request, ORG_TEMPLATE, status_code=status, title=N_("Funds"),
                  sources=SOURCES, source_labels=SOURCE_LABELS,
                  threshold_fen=approvals.approval_threshold_fen(),
                  may_deposit=_may(c, "console_fund_deposit"),
                  may_transfer=_may(c, "console_fund_transfer"), distributed=distributed,
                  keys=keys, **data, **context)


@router.get("/funds", name="console_funds")
def funds_page(c: PageCtx = Depends(page_ctx)) -> Response:
    """The user's own organisation's funds."""
    return _org_page(c, c.principal.org_id or 0)


@router.get("/funds/orgs/{org_id}", name="console_fund_org")
def fund_org_page(org_id: int = OrgId, page: int = Query(1, ge=1, le=100_000),
                  posted: str | None = Query(None, max_length=255),
                  requested: int | None = Query(None, ge=1, le=2_147_483_647),
                  distributed: int | None = Query(None, ge=0, le=100_000),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    return _org_page(c, org_id, page=page, posted=posted, requested=requested,
                     distributed=distributed)


# --------------------------------------------------------------------------- writing

def _amount(text: str) -> int:
    if not text.strip():
        raise ValidationError(N_("type the amount in yuan, e.g. 15000 or 15万"), field="amount")
    try:
        amount = yuan_to_fen(text.strip())
    except (ValueError, TypeError) as exc:
        raise ValidationError(msg("amount: {problem} (yuan, e.g. 15000.00 or 15万)",
                                  problem=Text(exc.args[0] if exc.args else str(exc))),
                              field="amount") from None
    if amount <= 0:
        raise ValidationError(N_("deposit must be positive"), field="amount")
    if amount > MAX_FEN:  # the API's own bound on one deposit (schemas.Fen)
        raise ValidationError(msg("at most {amount} in one deposit", amount=Yuan(MAX_FEN)),
                              field="amount")
    return amount


def _plain(text: str, field: str, empty) -> str:
    """One line of text as the API's ``Text`` takes it: spaces collapsed, no control
    characters, at most 200 characters."""
    out = " ".join(text.split())
    if not out:
        raise ValidationError(empty, field=field)
    if CONTROL.search(out):
        raise ValidationError(N_("no control characters, please"), field=field)
    return out[:200]


def _key(idempotency_key: str) -> str:
    if not KEY_RE.fullmatch(idempotency_key or ""):
        raise ValidationError(N_("the page's attempt key is missing: reload the page"),
                              field="idempotency_key", code="idempotency_key_missing")
    return idempotency_key


def _document(text: str) -> str:
    return _plain(text, "document", N_("name the document the money rests on (文件 or 凭证号)"))


def _covers(s: Session, payer_id: int, amount_fen: int) -> None:
    """The page's early refusal of an overdraw: the paying fund's balance now must cover it
    (the ledger refuses it again when the transfer posts)."""
    acct = _fund_account_id(s, payer_id)
    have = s.execute(select(Account.credits_posted - Account.debits_posted
                            - Account.debits_pending).where(Account.id == acct)).scalar() \
        if acct is not None else 0
    if amount_fen > int(have or 0):
        raise InsufficientFunds(msg("the fund of {org} holds {have}: it cannot pay {amount}",
                                    org=get_org(s, payer_id).name, have=Yuan(int(have or 0)),
                                    amount=Yuan(amount_fen)), field="amount")


def _redirect(org_id: int, out) -> RedirectResponse:
    if hasattr(out, "transfer_id") and not hasattr(out, "status"):
        where = f"/funds/orgs/{org_id}?posted={quote(out.transfer_id, safe='')}"
    else:
        where = f"/funds/orgs/{org_id}?requested={out.id}"
    return RedirectResponse(where, status_code=303)


def _form_error(c: PageCtx, org_id: int, exc: CivicVoucherError, which: str, form: dict,
                key: str) -> Response:
    # a key already used for another deposit (the back button, an edit): a fresh one
    keys = {} if isinstance(exc, IdempotencyConflict) else {which: key}
    return _org_page(c, org_id, status=exc.http_status, form=form, keys=keys,
                     error=exc.localized(c.lang), error_code=exc.code,
                     error_field=getattr(exc, "field", None) or exc.details.get("field"),
                     error_form=which)


WRITE_ERRORS = (ValidationError, InsufficientFunds, IdempotencyConflict)


@router.post("/funds/orgs/{org_id}/deposit", name="console_fund_deposit")
def fund_deposit(org_id: int = OrgId, amount: str = Form("", max_length=40),
                 source: str = Form("", max_length=20),
                 from_org: int = Form(0, ge=0, le=2_147_483_647),
                 document: str = Form("", max_length=200),
                 idempotency_key: str = Form("", max_length=100),
                 c: PageCtx = Depends(page_ctx)) -> Response:
    """A deposit into this organisation's fund through the API's create_deposit."""
    form = {"amount": amount, "source": source, "from_org": from_org, "document": document,
            "to_org": 0}
    key = idempotency_key or str(uuid.uuid4())
    try:
        key = _key(idempotency_key)
        fen = _amount(amount)
        if source not in SOURCES:
            raise ValidationError(N_("choose where the money comes from"), field="source")
        payer = from_org or None
        if source == DepositSource.TRANSFER and payer is None:
            raise ValidationError(N_("a transfer needs the paying federation"),
                                  field="from_org")
        if source != DepositSource.TRANSFER:
            payer = None  # the select is only read for a transfer
        doc = _document(document)
        if payer is not None:
            c.db.run(lambda s: (scope.require_org(c.principal, get_org(s, payer)),
                                _covers(s, payer, fen)))
        body = DepositIn(org_id=org_id, amount_fen=fen, source=source, from_org_id=payer,
                         memo=doc)
        c.request.state.idempotency_key = key  # c.service_key derives the service's key
        out = api_orgs.create_deposit(body, Response(), c)
    except WRITE_ERRORS as exc:
        return _form_error(c, org_id, exc, "deposit", form, key)
    return _redirect(org_id, out)


@router.post("/funds/orgs/{org_id}/transfer", name="console_fund_transfer")
def fund_transfer(org_id: int = OrgId, to_org: int = Form(0, ge=0, le=2_147_483_647),
                  amount: str = Form("", max_length=40),
                  document: str = Form("", max_length=200),
                  idempotency_key: str = Form("", max_length=100),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    """This federation pays one of its direct children (a transfer request)."""
    form = {"amount": amount, "source": "transfer", "from_org": 0, "document": document,
            "to_org": to_org}
    key = idempotency_key or str(uuid.uuid4())
    try:
        key = _key(idempotency_key)
        fen = _amount(amount)
        doc = _document(document)

        def check(s: Session) -> None:
            payer = scope.require_org(c.principal, get_org(s, org_id))
            if not to_org or s.get(Org, to_org) is None or get_org(s, to_org).parent_id \
                    != payer.id:
                raise ValidationError(N_("choose one of this federation's own unions or "
                                         "federations"), field="to_org")
            _covers(s, payer.id, fen)

        c.db.run(check)
        body = DepositIn(org_id=to_org, amount_fen=fen, source="transfer", from_org_id=org_id,
                         memo=doc)
        c.request.state.idempotency_key = key
        out = api_orgs.create_deposit(body, Response(), c)
    except WRITE_ERRORS as exc:
        return _form_error(c, org_id, exc, "transfer", form, key)
    if hasattr(out, "status"):
        return RedirectResponse(f"/funds/orgs/{org_id}?requested={out.id}", status_code=303)
    return _redirect(to_org, out)


def _request_one(s: Session, c: PageCtx, *, org_id: int, amount_fen: int, from_org_id: int,
                 memo: str, key: str) -> approvals.Requested | Deposit:
    """One transfer request as ``create_deposit`` makes it (its scope checks, service call and
    audit entries, word for word), inside the caller's transaction."""
    scope.require_org(c.principal, get_org(s, org_id))
    scope.require_org(c.principal, get_org(s, from_org_id))
    c.request.state.idempotency_key = key
    r = approvals.request_deposit(
        s, org_id=org_id, amount_fen=amount_fen, source="transfer", from_org_id=from_org_id,
        memo=memo, idem_key=c.service_key("deposit"), maker=api_orgs._person(c))
    if isinstance(r, Deposit):  # only if the approval rule changed: posted at once
        if not r.replayed:
            c.audit(s, "fund.deposit", target=f"org:{r.org_id}",
                    detail={"amount_fen": r.amount_fen, "source": r.source,
                            "from_org_id": from_org_id, "transfer_id": r.transfer_id})
        return r
    q = r.request
    if not r.replayed:
        c.audit(s, "fund.deposit.request", target=f"deposit_request:{q.id}",
                detail={"org_id": q.org_id, "amount_fen": q.amount_fen, "source": q.source,
                        "from_org_id": q.from_org_id, "reason": q.reason})
    return r


@router.post("/funds/orgs/{org_id}/distribute", name="console_fund_distribute")
def fund_distribute(org_id: int = OrgId, amount: str = Form("", max_length=40),
                    document: str = Form("", max_length=200),
                    children: int = Form(0, ge=0, le=100_000),
                    idempotency_key: str = Form("", max_length=100),
                    c: PageCtx = Depends(page_ctx)) -> Response:
    """The same amount to every direct child: one transaction, all requests or none; the
    form's key plus each child's id is that child's key, so a double submit replays all."""
    form = {"amount": amount, "source": "transfer", "from_org": 0, "document": document,
            "to_org": 0}
    key = idempotency_key or str(uuid.uuid4())
    try:
        key = _key(idempotency_key)
        fen = _amount(amount)
        doc = _document(document)

        def run(s: Session) -> int:
            payer = scope.require_org(c.principal, get_org(s, org_id))
            kids = s.execute(select(Org.id).where(Org.parent_id == payer.id)
                             .order_by(Org.id)).scalars().all()
            if not kids:
                raise ValidationError(N_("this organisation has no union or federation "
                                         "under it"), field="amount")
            if len(kids) != children:  # the page showed another list: say so, do nothing
                raise ValidationError(N_("the list of organisations under this one changed: "
                                         "reload the page and check again"), field="amount")
            fresh = [k for k in kids if s.execute(select(DepositRequest.id).where(
                DepositRequest.key == f"request:{_service_key(c, f'{key}:{k}')}")).scalar()
                is None]
            _covers(s, payer.id, fen * len(fresh))
            for k in kids:
                _request_one(s, c, org_id=k, amount_fen=fen, from_org_id=payer.id, memo=doc,
                             key=f"{key}:{k}")
            return len(kids)

        n = c.db.run(run)
    except WRITE_ERRORS as exc:
        return _form_error(c, org_id, exc, "distribute", form, key)
    return RedirectResponse(f"/funds/orgs/{org_id}?distributed={n}", status_code=303)


def _service_key(c: PageCtx, key: str) -> str:
    before = getattr(c.request.state, "idempotency_key", None)
    c.request.state.idempotency_key = key
    try:
        return c.service_key("deposit")
    finally:
        c.request.state.idempotency_key = before


# --------------------------------------------------------------------------- approvals

def _queue(s: Session, c: PageCtx) -> dict:
    root = scope.scoped_root(s, c.principal, None)
    me = api_orgs._person(c)
    payer = aliased(Org, name="payer")
    rows = s.execute(
        approvals.requests_query(status=approvals.PENDING, within_path=root.path)
        .add_columns(Org.name, payer.name)
        .outerjoin(payer, payer.id == DepositRequest.from_org_id)
        .order_by(DepositRequest.id).limit(200)).all()
    mine, others = [], []
    for r, org_name, payer_name in rows:
        item = {"id": r.id, "org_id": r.org_id, "org": org_name, "payer": payer_name,
                "amount_fen": r.amount_fen, "source": r.source, "reason": r.reason,
                "memo": r.memo, "maker": r.maker_name, "at": r.created_at, "why_not": None,
                "own": r.maker == me.identity}
        try:
            approvals.may_check(s, r, me)
        except Forbidden as exc:
            item["why_not"] = exc.localized(c.lang)
        (mine if item["why_not"] is None else others).append(item)
    decided = s.execute(
        approvals.requests_query(within_path=root.path).add_columns(Org.name)
        .where(DepositRequest.status != approvals.PENDING)
        .order_by(DepositRequest.decided_at.desc(), DepositRequest.id.desc()).limit(10)).all()
    return {"decide": mine, "waiting": others,
            "decided": [{"id": r.id, "org": n, "amount_fen": r.amount_fen, "status": r.status,
                         "checker": r.checker_name, "maker": r.maker_name, "note": r.note,
                         "at": r.decided_at, "source": r.source} for r, n in decided]}


def _queue_page(c: PageCtx, *, status: int = 200, **context) -> Response:
    def run(s: Session) -> dict:
        data = _queue(s, c)
        data["done_balance"] = data["done_org"] = None
        if context.get("done") == approvals.APPROVED and context.get("done_id"):
            r = s.get(DepositRequest, context["done_id"])
            if r is not None and r.status == approvals.APPROVED:
                org = scope.require_org(c.principal, get_org(s, r.org_id))
                data["done_balance"], data["done_org"] = fund_balance(s, org.id), org.name
        return data

    for k in ("error", "error_code", "error_id", "done", "done_id"):
        context.setdefault(k, None)
    data = c.db.run(run)
    return render(c.request, QUEUE_TEMPLATE, status_code=status, title=N_("Deposit approvals"),
                  may_decide=_may(c, "console_fund_request_approve"),
                  source_labels=SOURCE_LABELS, reason_labels=REASON_LABELS,
                  **data, **context)


@router.get("/funds/requests", name="console_fund_requests")
def requests_page(done: str | None = Query(None, pattern="^(approved|rejected)$"),
                  id: int | None = Query(None, ge=1, le=2_147_483_647),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    return _queue_page(c, done=done, done_id=id)


def _decide(c: PageCtx, request_id: int, call) -> Response:
    try:
        out = call()
    except (approvals.SelfApproval, approvals.ApprovalNotAllowed) as exc:
        _audit_refusal(c.st, c.request, exc)  # as the route class audits a refusal
        return _queue_page(c, status=exc.http_status, error=exc.localized(c.lang),
                           error_code=exc.code, error_id=request_id)
    except (InsufficientFunds, InvalidTransition, ValidationError) as exc:
        return _queue_page(c, status=exc.http_status, error=exc.localized(c.lang),
                           error_code=exc.code, error_id=request_id)
    return RedirectResponse(f"/funds/requests?done={out.status}&id={out.id}", status_code=303)


RequestId = Path(ge=1, le=2_147_483_647)


@router.post("/funds/requests/{request_id}/approve", name="console_fund_request_approve")
def request_approve(request_id: int = RequestId, c: PageCtx = Depends(page_ctx)) -> Response:
    """Approve through the API's approve_deposit_request: the money moves now, once."""
    return _decide(c, request_id, lambda: api_orgs.approve_deposit_request(request_id, c))


@router.post("/funds/requests/{request_id}/reject", name="console_fund_request_reject")
def request_reject(request_id: int = RequestId, note: str = Form("", max_length=200),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    """Reject with a note through the API's reject_deposit_request: nothing moves."""
    def call():
        text = _plain(note, "note", N_("say why the deposit is rejected"))
        return api_orgs.reject_deposit_request(RejectIn(reason=text), request_id, c)

    return _decide(c, request_id, call)
