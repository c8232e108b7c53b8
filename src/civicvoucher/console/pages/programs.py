"""Programs and issuance in the console.

Programs: the list, a program's products with their current deadlines (moved by any
program-wide extension, as ``vouchers.issuance.deadline_of`` reads them) and its extensions;
the province admin extends a program's deadline with a reason through the API's own
``create_extension`` (``api/routers/runs.py``: the same service, audit and refusal of an
earlier date, ``extension_not_later``), once per attempt key.

Issuance: choose a program and a union of the user's subtree, see the
funding check (members to receive, amount needed, the union fund's available balance, the
shortfall) before anything is written, then confirm through the API's own handler
(``api.routers.issuance.create_issuance``: the same scope checks, service and audit).

The funding check reads with the issuance service's own helpers (``_choose_products``,
``_plan``, ``deadline_of``) and the fund account's available balance as ``_issue`` computes
it, without locking or creating anything (there is no read-only plan function in
``vouchers/issuance.py``; this page computes from the same queries). The confirm form carries
an attempt key made with the preview: a double submit is the service's replay, issued once.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pydantic
from fastapi import APIRouter, Depends, Form, Path
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from civicvoucher.api.routers import issuance as api_issuance
from civicvoucher.api.routers import runs as api_runs
from civicvoucher.api.schemas import ExtensionIn, IssueIn
from civicvoucher.auth import scope
from civicvoucher.auth.policy import rule_for
from civicvoucher.console import nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core import clock
from civicvoucher.errors import CivicVoucherError, ValidationError
from civicvoucher.i18n import N_
from civicvoucher.ledger.models import Account
from civicvoucher.ledger.rules import AccountCode, account_key
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel
from civicvoucher.orgs.service import get_org
from civicvoucher.programs.models import Program
from civicvoucher.programs.service import get_program, products_of
from civicvoucher.vouchers.issuance import _choose_products, _plan, deadline_of
from civicvoucher.vouchers.models import Extension
from civicvoucher.vouchers.rules import IssueMode

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
nav.register(nav.Link("console_programs", "/programs", N_("Programs")))
nav.register(nav.Link("console_issue", "/issue", N_("Issue vouchers")))

TEMPLATE = "programs/issue.html.j2"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,100}$")
MODES = [str(m) for m in IssueMode]


@dataclass(frozen=True)
class Check:
    """What an issuance would do now: the funding check shown before confirming."""

    program: str
    program_name: str
    union_id: int
    union_name: str
    mode: str
    eligible: int
    to_receive: int
    duplicates: int
    needed_fen: int
    available_fen: int
    first_fen: int  # the first member's cost: partial stops at the first one that does not fit
    closed: bool

    @property
    def issues_something(self) -> bool:
        """Whether a confirm would issue anything (as ``_issue`` decides it)."""
        if self.closed or not self.to_receive:
            return False
        if self.mode == IssueMode.PARTIAL:
            return self.available_fen >= self.first_fen
        return self.available_fen >= self.needed_fen

    @property
    def shortfall_fen(self) -> int:
        return max(0, self.needed_fen - self.available_fen)


def _available(s: Session, org_id: int) -> int:
    """The fund's available balance as ``_issue`` reads it (posted less pending debits),
    without creating the account or locking it."""
    row = s.execute(select(Account).where(
        Account.key == account_key(AccountCode.UNION_FUND, org_id))).scalar()
    return row.available if row is not None else 0


def funding_check(s: Session, c: PageCtx, *, union_id: int, program: str, mode: str) -> Check:
    union = scope.require_org(c.principal, get_org(s, union_id))  # as create_issuance
    prog = get_program(s, program)
    if union.level != OrgLevel.UNION:
        raise ValidationError(N_("only a grassroots union issues to members"), field="union")
    chosen = _choose_products(s, prog, None)
    now = clock.now()
    closed = any(deadline_of(s, p) <= now for p in chosen)
    plan, eligible, duplicates = _plan(s, union, chosen, None)
    return Check(program=prog.key, program_name=prog.name, union_id=union.id,
                 union_name=union.name, mode=mode, eligible=eligible, to_receive=len(plan),
                 duplicates=duplicates, needed_fen=sum(cost for _, _, cost in plan),
                 available_fen=_available(s, union.id),
                 first_fen=plan[0][2] if plan else 0, closed=closed)


def _choices(s: Session, c: PageCtx) -> dict:
    unions = s.execute(select(Org.id, Org.name).where(
        Org.level == OrgLevel.UNION, scope.org_path_condition(c.principal, Org.path))
        .order_by(Org.name, Org.id)).all()
    programs = s.execute(select(Program.key, Program.name).order_by(Program.id.desc())).all()
    return {"unions": [dict(id=u.id, name=u.name) for u in unions],
            "programs": [dict(key=p.key, name=p.name) for p in programs]}


def _page(c: PageCtx, *, status: int = 200, **context) -> Response:
    choices = c.db.run(lambda s: _choices(s, c))
    for k in ("check", "error", "error_code", "result", "key"):
        context.setdefault(k, None)
    context.setdefault("chosen", {"union_id": 0, "program": "", "mode": "all_or_nothing"})
    return render(c.request, TEMPLATE, status_code=status, title=N_("Issue vouchers"),
                  modes=MODES, **choices, **context)


def _error(c: PageCtx, exc: CivicVoucherError) -> dict:
    return {"error": exc.localized(c.lang), "error_code": exc.code}


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise ValidationError(N_("choose how a shortfall is handled"), field="mode")
    return mode


@router.get("/issue", name="console_issue")
def issue_page(c: PageCtx = Depends(page_ctx)) -> Response:
    return _page(c)


@router.post("/issue/preview", name="console_issue_preview")
def issue_preview(union_id: int = Form(0, ge=0, le=2_147_483_647),
                  program: str = Form("", max_length=80),
                  mode: str = Form("all_or_nothing", max_length=20),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    """The funding check: reads only; the confirm form it shows carries a fresh key."""
    chosen = {"union_id": union_id, "program": program, "mode": mode}

    def run(s: Session) -> Check:
        try:
            return funding_check(s, c, union_id=union_id, program=program, mode=_mode(mode))
        finally:
            s.rollback()  # a preview writes nothing

    if not union_id or not program:
        exc = ValidationError(N_("choose a program and a union"), field="union")
        return _page(c, status=400, chosen=chosen, **_error(c, exc))
    check = c.db.run(run)  # out of scope: refused (and audited) as the API refuses it
    return _page(c, check=check, chosen=chosen, key=str(uuid.uuid4()))


@router.post("/issue/confirm", name="console_issue_confirm")
def issue_confirm(union_id: int = Form(..., ge=1, le=2_147_483_647),
                  program: str = Form(..., max_length=80),
                  mode: str = Form("all_or_nothing", max_length=20),
                  idempotency_key: str = Form("", max_length=100),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    """Issue through the API's own handler, exactly once per attempt key."""
    chosen = {"union_id": union_id, "program": program, "mode": mode}
    if not KEY_RE.fullmatch(idempotency_key or ""):
        exc = ValidationError(N_("the page's attempt key is missing: check the funding again"),
                              field="idempotency_key", code="idempotency_key_missing")
        return _page(c, status=400, chosen=chosen, **_error(c, exc))
    try:
        body = IssueIn(union_id=union_id, program=program, mode=_mode(mode))
    except CivicVoucherError as exc:
        return _page(c, status=exc.http_status, chosen=chosen, **_error(c, exc))
    except ValueError:
        exc = ValidationError(N_("choose a program and a union"), field="program")
        return _page(c, status=400, chosen=chosen, **_error(c, exc))
    c.request.state.idempotency_key = idempotency_key  # c.service_key derives the service's
    out = api_issuance.create_issuance(body, c)
    return RedirectResponse(f"/issue/issuances/{out.id}", status_code=303)


@router.get("/issue/issuances/{issuance_id}", name="console_issuance")
def issuance_page(issuance_id: int = Path(ge=1, le=2_147_483_647),
                  c: PageCtx = Depends(page_ctx)) -> Response:
    out = api_issuance.get_issuance(issuance_id, c)  # scope as the API's get_issuance

    def names(s: Session):
        return get_org(s, out.union_id).name, s.get(Program, out.program_id)

    union_name, prog = c.db.run(names)
    return _page(c, result=out, result_union=union_name, result_program=prog.name)


# --------------------------------------------------------------------------- programs

PROGRAM_KEY = r"^[a-z0-9][a-z0-9_-]*$"


@router.get("/programs", name="console_programs")
def programs_page(c: PageCtx = Depends(page_ctx)) -> Response:
    def run(s: Session) -> list[dict]:
        out = []
        for p in s.execute(select(Program).order_by(Program.id.desc())).scalars():
            products = products_of(s, p.id)
            out.append({"key": p.key, "name": p.name, "per_member_fen": p.per_member_fen,
                        "products": len(products),
                        "until": max((deadline_of(s, x) for x in products), default=None)})
        return out

    return render(c.request, "programs/programs.html.j2", title=N_("Programs"),
                  programs=c.db.run(run))


def _detail(s: Session, key: str) -> dict:
    p = get_program(s, key)
    products = [{"key": x.key, "name": x.name, "kind": x.kind, "face_value_fen": x.face_value_fen,
                 "denominations": list(x.denominations), "threshold_fen": x.threshold_fen,
                 "optional": x.optional, "valid_from": x.valid_from,
                 "expires_at": x.expires_at, "deadline": deadline_of(s, x)}
                for x in products_of(s, p.id)]
    exts = s.execute(select(Extension).where(Extension.program_id == p.id)
                     .order_by(Extension.id.desc())).scalars().all()
    return {"program": {"key": p.key, "name": p.name, "per_member_fen": p.per_member_fen,
                        "documents": list(p.documents)},
            "products": products,
            "extensions": [{"id": e.id, "new_expires_at": e.new_expires_at,
                            "vouchers": e.vouchers_extended, "actor": e.actor,
                            "reason": e.reason, "document": e.document,
                            "created_at": e.created_at, "program_wide": e.program_wide}
                           for e in exts]}


def _program_page(c: PageCtx, program: str, *, status: int = 200, **context) -> Response:
    data = c.db.run(lambda s: _detail(s, program))
    rule = rule_for("console_program_extend")
    context.setdefault("error", None)
    context.setdefault("error_code", None)
    context.setdefault("form", {"until": "", "reason": "", "document": ""})
    context.setdefault("key", str(uuid.uuid4()))
    context.setdefault("extended", None)
    return render(c.request, "programs/program.html.j2", status_code=status,
                  title=N_("Programs"), may_extend=c.principal.role in rule.roles,
                  **data, **context)


@router.get("/programs/{program}", name="console_program")
def program_page(program: str = Path(min_length=1, max_length=80, pattern=PROGRAM_KEY),
                 extended: int | None = None, c: PageCtx = Depends(page_ctx)) -> Response:
    return _program_page(c, program, extended=extended)


@router.post("/programs/{program}/extend", name="console_program_extend")
def program_extend(program: str = Path(min_length=1, max_length=80, pattern=PROGRAM_KEY),
                   until: str = Form("", max_length=40),
                   reason: str = Form("", max_length=500),
                   document: str = Form("", max_length=200),
                   idempotency_key: str = Form("", max_length=100),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    """Extend the program's deadline through the API's own handler, once per attempt key."""
    form = {"until": until, "reason": reason, "document": document}
    again = {"form": form, "key": idempotency_key or str(uuid.uuid4())}
    try:
        if not KEY_RE.fullmatch(idempotency_key or ""):
            raise ValidationError(N_("the page's attempt key is missing: reload the page"),
                                  field="idempotency_key", code="idempotency_key_missing")
        if not reason.strip():
            raise ValidationError(N_("an extension records who and why"), field="reason")
        try:
            body = ExtensionIn(program=program, new_expires_at=until.strip(),
                               reason=reason.strip(), document=document.strip() or None)
        except pydantic.ValidationError:
            raise ValidationError(N_("type the new last day as a date, e.g. 2020-07-31"),
                                  field="new_expires_at") from None
        c.request.state.idempotency_key = idempotency_key  # c.service_key derives the key
        out = api_runs.create_extension(body, c)
    except CivicVoucherError as exc:
        if not isinstance(exc, ValidationError):  # not found, a key reused: the error page
            raise
        return _program_page(c, program, status=exc.http_status, **again, **_error(c, exc))
    return RedirectResponse(f"/programs/{program}?extended={out.id}", status_code=303)
