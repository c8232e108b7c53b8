"""Merchants in the console: onboarding, the approval queue, the list and a merchant's page.

* **Onboarding** (``/merchants/new``): a federation admin registers a merchant by form, the
  fields of an import row (``merchants.rules.validate_merchant_row``: every problem named by
  its field, the USCC's checksum among them) plus its bank details; the county must lie in the
  admin's region (``scope.county_in_scope``). It goes through the API's own
  ``register_merchant_route`` (the same service, audit ``merchant.register``, the account
  number sealed by ``merchants.service``) and always starts pending.
* **Approval queue** (``/merchants/queue``): the pending merchants in the user's region;
  approve (→ active) or reject (→ suspended, with a reason). The one who registered a
  merchant cannot approve it (``merchants.service.may_activate``, as the API's
  ``set_merchant_status`` refuses it too): a second person approves. Audited
  ``merchant.status`` with from, to and the reason.
* **List** (``/merchants``): filters by status, category and county, paged.
* **A merchant** (``/merchants/{id}``): its details, the masked account number, a status
  change, and its bank details given or replaced (``merchants.service.set_bank_details``,
  audited ``merchant.bank`` with the masked numbers only).

Every mutation is idempotent on the form's attempt key through the API's key table
(``api.idempotency``, under a ``console:`` prefix): a double submit replays the first answer.
A merchant outside the user's region is refused as the API refuses it (403, audited).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from fastapi import APIRouter, Depends, Form, Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from civicvoucher.api.routers import merchants as api_merchants
from civicvoucher.auth import scope
from civicvoucher.auth.errors import OutOfScope
from civicvoucher.auth.policy import Rule, rule_for
from civicvoucher.console import attempts, nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.errors import CivicVoucherError, RowError, ValidationError
from civicvoucher.i18n import N_, Text, localize, msg
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import (
    CATEGORY_LABEL_ZH,
    Channel,
    MerchantStatus,
    validate_merchant_row,
)
from civicvoucher.merchants.service import (
    find_merchant,
    may_activate,
    set_bank_details,
    set_status,
)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
nav.register(nav.Link("console_merchants", "/merchants", N_("Merchants")))
nav.register(nav.Link("console_merchant_queue", "/merchants/queue", N_("Merchant approvals")))

PAGE_SIZE = 50
REASON_MAX = 200
STATUSES = [str(s) for s in MerchantStatus]
CATEGORIES = [str(c) for c in CATEGORY_LABEL_ZH]
CHANNELS = [str(c) for c in Channel]
FIELDS = ("uscc", "name", "mcc", "category", "county_code", "payee_name", "bank_name",
          "account_no")
MerchantId = Path(ge=1, le=2_147_483_647)


def _may(c: PageCtx, route: str) -> bool:
    rule = rule_for(route)
    return isinstance(rule, Rule) and c.principal.role in rule.roles


def _blind(c: PageCtx, account_no: str) -> str:
    """An account number as the attempt's fingerprint takes it: keyed, so the stored request
    hash cannot be tested against guessed numbers by someone holding the database."""
    return hmac.new(c.st.secret_key, b"console account " + account_no.encode(),
                    hashlib.sha256).hexdigest()


def _in_scope(s: Session, c: PageCtx, merchant_id: int) -> Merchant:
    return scope.require_merchant(c.principal, find_merchant(s, merchant_id))


def _view(m: Merchant) -> dict:
    return {"id": m.id, "uscc": m.uscc, "name": m.name, "mcc": m.mcc, "category": m.category,
            "county_code": m.county_code, "channels": sorted(m.channel_set),
            "status": m.status, "created_at": m.created_at, "payee_name": m.payee_name,
            "bank_name": m.bank_name, "account_masked": m.account_masked,
            "registered_by": m.registered_by}


# --------------------------------------------------------------------------- the list

@router.get("/merchants", name="console_merchants")
def merchants_page(status: str = Query("", max_length=20),
                   category: str = Query("", max_length=20),
                   county: str = Query("", max_length=6, pattern=r"^\d{0,6}$"),
                   q: str = Query("", max_length=50),
                   page: int = Query(1, ge=1, le=100_000),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    status = status if status in STATUSES else ""
    category = category if category in CATEGORIES else ""

    def run(s: Session):
        cond = [scope.merchant_condition(c.principal, Merchant.id, Merchant.county_code)]
        if status:
            cond.append(Merchant.status == status)
        if category:
            cond.append(Merchant.category == category)
        if county:
            cond.append(Merchant.county_code.startswith(county))
        if q.strip():
            cond.append(Merchant.name.contains(q.strip(), autoescape=True)
                        | (Merchant.uscc == q.strip().upper()))
        total = s.execute(select(func.count()).select_from(Merchant).where(*cond)).scalar()
        rows = s.execute(select(Merchant).where(*cond).order_by(Merchant.id.desc())
                         .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars()
        return total, [_view(m) for m in rows]

    total, lines = c.db.run(run)
    pages = max(1, -(-total // PAGE_SIZE))
    return render(c.request, "merchantspage/merchants.html.j2", title=N_("Merchants"),
                  lines=lines, total=total, page=page, pages=pages,
                  filters={"status": status, "category": category, "county": county, "q": q},
                  statuses=STATUSES, categories=CATEGORIES,
                  may_register=_may(c, "console_merchant_register"))


# --------------------------------------------------------------------------- onboarding

def _form_page(c: PageCtx, *, status: int = 200, form: dict | None = None,
               errors: list[RowError] | None = None, error: str | None = None,
               key: str | None = None) -> Response:
    by_field: dict[str, str] = {}
    for e in errors or []:
        by_field.setdefault(e.field, localize(Text(e.reason), c.lang))
    return render(c.request, "merchantspage/new.html.j2", status_code=status,
                  title=N_("Register a merchant"),
                  form=form or {**dict.fromkeys(FIELDS, ""), "channels": ["offline"]},
                  errors=by_field, error=error, key=key or str(uuid.uuid4()),
                  categories=CATEGORIES, channels=CHANNELS, region=c.principal.region or "")


@router.get("/merchants/new", name="console_merchant_new")
def merchant_new(c: PageCtx = Depends(page_ctx)) -> Response:
    return _form_page(c)


@router.post("/merchants/new", name="console_merchant_register")
def merchant_register(uscc: str = Form("", max_length=40), name: str = Form("", max_length=250),
                      mcc: str = Form("", max_length=10), category: str = Form("", max_length=20),
                      county_code: str = Form("", max_length=10),
                      channels: list[str] = Form([]),
                      payee_name: str = Form("", max_length=250),
                      bank_name: str = Form("", max_length=250),
                      account_no: str = Form("", max_length=60),
                      idempotency_key: str = Form("", max_length=100),
                      c: PageCtx = Depends(page_ctx)) -> Response:
    """Register through the API's own handler (pending), once per attempt key."""
    form = {"uscc": uscc, "name": name, "mcc": mcc, "category": category,
            "county_code": county_code, "channels": channels[:4], "payee_name": payee_name,
            "bank_name": bank_name, "account_no": account_no}
    raw = {**{k: v for k, v in form.items() if k != "channels"},
           "channels": ",".join(channels[:4]), "status": "pending"}
    row = validate_merchant_row(1, raw)
    if isinstance(row, list):
        return _form_page(c, status=422, form=form, errors=row, key=idempotency_key)
    if not scope.county_in_scope(c.principal, row.county_code):
        err = RowError(1, "county_code", msg("county {county} is outside your region",
                                             county=row.county_code))
        return _form_page(c, status=422, form=form, errors=[err], key=idempotency_key)
    body = api_merchants.MerchantCreateIn(
        uscc=row.uscc, name=row.name, mcc=row.mcc, county_code=row.county_code,
        channels=[str(x) for x in row.channels], status="pending", category=str(row.category),
        payee_name=row.payee_name or None, bank_name=row.bank_name or None,
        account_no=row.account_no or None)

    def work() -> dict:
        out = api_merchants.register_merchant_route(body, c)
        return {"merchant_id": out.id}

    try:
        answer = attempts.once(c, "merchant-register", idempotency_key,
                       json.dumps({**raw, "account_no": _blind(c, row.account_no)},
                                  sort_keys=True).encode(), work)
    except CivicVoucherError as exc:
        if isinstance(exc, OutOfScope) or exc.http_status >= 500:
            raise
        field = getattr(exc, "field", None) or ("uscc" if exc.code == "merchant_exists" else "")
        return _form_page(c, status=exc.http_status, form=form,
                          errors=[RowError(1, field, exc.message)] if field else None,
                          error=None if field else exc.localized(c.lang), key=idempotency_key)
    return RedirectResponse(f"/merchants/{answer['merchant_id']}?registered=1", status_code=303)


# --------------------------------------------------------------------------- approval queue

@router.get("/merchants/queue", name="console_merchant_queue")
def merchant_queue(done: int | None = Query(None, ge=1, le=2_147_483_647),
                   to: str = Query("", max_length=20),
                   page: int = Query(1, ge=1, le=100_000),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    me = f"user:{c.principal.user_id}"

    def run(s: Session):
        cond = (scope.merchant_condition(c.principal, Merchant.id, Merchant.county_code),
                Merchant.status == MerchantStatus.PENDING)
        total = s.execute(select(func.count()).select_from(Merchant).where(*cond)).scalar()
        rows = s.execute(select(Merchant).where(*cond).order_by(Merchant.id)
                         .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars()
        return total, [{**_view(m), "mine": m.registered_by == me} for m in rows]

    total, lines = c.db.run(run)
    return render(c.request, "merchantspage/queue.html.j2", title=N_("Merchant approvals"),
                  lines=lines, total=total, page=page, pages=max(1, -(-total // PAGE_SIZE)),
                  done=done, done_to=to if to in STATUSES else "", reason_max=REASON_MAX)


def _decide(c: PageCtx, merchant_id: int, status: str, reason: str) -> dict:
    if status not in STATUSES:
        raise ValidationError(N_("choose a status"), field="status")
    reason = reason.strip()
    if status != MerchantStatus.ACTIVE and not reason:
        raise ValidationError(N_("a rejection or suspension records a reason"), field="reason")

    def run(s: Session) -> dict:
        m = _in_scope(s, c, merchant_id)
        before = m.status
        may_activate(m, f"user:{c.principal.user_id}", status)
        m = set_status(s, merchant_id=m.id, status=status)
        c.audit(s, "merchant.status", target=f"merchant:{m.id}",
                detail={"from": before, "to": m.status, "reason": reason[:REASON_MAX] or None})
        return {"merchant_id": m.id, "from": before, "to": m.status}

    return c.db.run(run)


@router.post("/merchants/{merchant_id}/status", name="console_merchant_status")
def merchant_status(merchant_id: int = MerchantId, status: str = Form("", max_length=20),
                    reason: str = Form("", max_length=REASON_MAX + 50),
                    back: str = Form("", max_length=10),
                    idempotency_key: str = Form("", max_length=100),
                    c: PageCtx = Depends(page_ctx)) -> Response:
    """Approve, reject or suspend: the same service as the API's set_merchant_status."""
    body = json.dumps([merchant_id, status, reason]).encode()
    try:
        answer = attempts.once(c, "merchant-status", idempotency_key, body,
                       lambda: _decide(c, merchant_id, status, reason))
    except ValidationError as exc:
        if back == "queue":
            raise
        return _merchant_page(c, merchant_id, status=exc.http_status,
                              status_error=exc.localized(c.lang), status_field=exc.field)
    if back == "queue":
        return RedirectResponse(f"/merchants/queue?done={answer['merchant_id']}&to={answer['to']}",
                                status_code=303)
    return RedirectResponse(f"/merchants/{answer['merchant_id']}?changed=1", status_code=303)


# --------------------------------------------------------------------------- one merchant

def _merchant_page(c: PageCtx, merchant_id: int, *, status: int = 200, **context) -> Response:
    m = c.db.run(lambda s: _view(_in_scope(s, c, merchant_id)))
    for k in ("registered", "changed", "bank_saved", "status_error", "status_field",
              "bank_error", "bank_field"):
        context.setdefault(k, None)
    context.setdefault("bank_form", {"payee_name": m["payee_name"] or "",
                                     "bank_name": m["bank_name"] or "", "account_no": ""})
    return render(c.request, "merchantspage/merchant.html.j2", status_code=status,
                  title=N_("Merchants"), m=m, statuses=STATUSES, reason_max=REASON_MAX,
                  mine=m["registered_by"] == f"user:{c.principal.user_id}",
                  may_change=_may(c, "console_merchant_status"),
                  key=str(uuid.uuid4()), bank_key=str(uuid.uuid4()), **context)


@router.get("/merchants/{merchant_id}", name="console_merchant")
def merchant_page(merchant_id: int = MerchantId, registered: int | None = None,
                  changed: int | None = None, bank: int | None = None,
                  c: PageCtx = Depends(page_ctx)) -> Response:
    return _merchant_page(c, merchant_id, registered=registered, changed=changed,
                          bank_saved=bank)


@router.post("/merchants/{merchant_id}/bank", name="console_merchant_bank")
def merchant_bank(merchant_id: int = MerchantId, payee_name: str = Form("", max_length=250),
                  bank_name: str = Form("", max_length=250),
                  account_no: str = Form("", max_length=60),
                  idempotency_key: str = Form("", max_length=100),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    """Give or replace the bank details (sealed); audited with the masked numbers only."""

    def work() -> dict:
        def run(s: Session) -> dict:
            m = _in_scope(s, c, merchant_id)
            m, before = set_bank_details(s, merchant_id=m.id, payee_name=payee_name,
                                         bank_name=bank_name, account_no=account_no)
            c.audit(s, "merchant.bank", target=f"merchant:{m.id}",
                    detail={"before": before, "after": m.account_masked})
            return {"merchant_id": m.id}

        return c.db.run(run)

    body = json.dumps([merchant_id, payee_name, bank_name, _blind(c, account_no)]).encode()
    try:
        attempts.once(c, "merchant-bank", idempotency_key, body, work)
    except ValidationError as exc:
        return _merchant_page(c, merchant_id, status=exc.http_status,
                              bank_error=exc.localized(c.lang), bank_field=exc.field,
                              bank_form={"payee_name": payee_name, "bank_name": bank_name,
                                         "account_no": ""})
    return RedirectResponse(f"/merchants/{merchant_id}?bank=1", status_code=303)
