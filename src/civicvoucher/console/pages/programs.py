"""Programs and issuance in the console.

Programs: the list, a program's products with their current deadlines (moved by any
program-wide extension, as ``vouchers.issuance.deadline_of`` reads them) and its extensions;
the province admin extends a program's deadline with a reason through the API's own
``create_extension`` (``api/routers/runs.py``: the same service, audit and refusal of an
earlier date, ``extension_not_later``), once per attempt key.

The province admin also creates a program from a form with every key of a program file
(``programs/spec.py``: products of either kind, vouchers in yuan as people type them,
threshold, window, categories, channels, region, opt-in), validated by the spec itself with
each error shown by its field and product row, then stored through the API's own
``create_program_route``; and edits it before launch through ``update_program_route`` (after
launch the form says why not and points to the extension). Both once per attempt key (the
API's key table under a console prefix), audited there (``program.create``/``update``).

Issuance: choose a program and a union of the user's subtree, see the funding check (members
to receive, amount needed, the union fund's available balance, the shortfall) before anything
is written, then confirm through the API's own handler (``api.routers.issuance.
create_issuance``: the same scope checks, service and audit). Or choose a federation: the
check of every union under it with the totals, then a run that issues union by union through
the same handler, its progress polled by the page (see "a whole subtree" below).

The funding check is ``vouchers.issuance.plan_issuance``, the plan ``_issue`` itself follows,
read without locking or creating anything, with the fund's available balance as ``_issue``
reads it. The confirm form carries an attempt key made with the preview: a double submit is
the service's replay, issued once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pydantic
from fastapi import APIRouter, Depends, Form, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from civicvoucher import i18n
from civicvoucher.api.routers import issuance as api_issuance
from civicvoucher.api.routers import programs as api_programs
from civicvoucher.api.routers import runs as api_runs
from civicvoucher.api.schemas import ExtensionIn, IssueIn
from civicvoucher.auth import scope
from civicvoucher.auth.models import IdempotencyRecord
from civicvoucher.auth.policy import rule_for
from civicvoucher.console import attempts, nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core import clock
from civicvoucher.core.money import FEN_PER_YUAN, yuan_to_fen
from civicvoucher.core.regions import RegionScope
from civicvoucher.errors import CivicVoucherError, Conflict, NotFound, ValidationError
from civicvoucher.i18n import N_, gettext, localize, msg
from civicvoucher.ledger.models import Account
from civicvoucher.ledger.rules import AccountCode, account_key
from civicvoucher.merchants.rules import Category, Channel
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel
from civicvoucher.orgs.service import get_org
from civicvoucher.programs.models import ProductKind, Program
from civicvoucher.programs.service import get_program, products_of
from civicvoucher.programs.spec import ProgramSpec, problem
from civicvoucher.vouchers.issuance import deadline_of, plan_issuance
from civicvoucher.vouchers.models import Extension, Issuance
from civicvoucher.vouchers.rules import IssueMode

log = logging.getLogger("civicvoucher.console")
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
nav.register(nav.Link("console_programs", "/programs", N_("Programs")))
nav.register(nav.Link("console_issue", "/issue", N_("Issue vouchers")))

TEMPLATE = "programs/issue.html.j2"
MODES = [str(m) for m in IssueMode]
PROGRAM_KEY = r"^[a-z0-9][a-z0-9_-]*$"


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
    return _check_of(s, prog, union, mode)


def _check_of(s: Session, prog: Program, union: Org, mode: str) -> Check:
    plan = plan_issuance(s, prog=prog, union=union)
    now = clock.now()
    closed = any(deadline_of(s, p) <= now for p in plan.products)
    return Check(program=prog.key, program_name=prog.name, union_id=union.id,
                 union_name=union.name, mode=mode, eligible=plan.eligible,
                 to_receive=len(plan.items), duplicates=plan.duplicates,
                 needed_fen=plan.needed_fen, available_fen=_available(s, union.id),
                 first_fen=plan.first_fen, closed=closed)


def _choices(s: Session, c: PageCtx) -> dict:
    unions = s.execute(select(Org.id, Org.name).where(
        Org.level == OrgLevel.UNION, scope.org_path_condition(c.principal, Org.path))
        .order_by(Org.name, Org.id)).all()
    feds = s.execute(select(Org.id, Org.name, Org.level).where(
        Org.level != OrgLevel.UNION, scope.org_path_condition(c.principal, Org.path))
        .order_by(Org.path, Org.id)).all()
    programs = s.execute(select(Program.key, Program.name).order_by(Program.id.desc())).all()
    return {"unions": [dict(id=u.id, name=u.name) for u in unions],
            "federations": [dict(id=f.id, name=f.name, level=f.level) for f in feds],
            "programs": [dict(key=p.key, name=p.name) for p in programs]}


def _page(c: PageCtx, *, status: int = 200, **context) -> Response:
    choices = c.db.run(lambda s: _choices(s, c))
    for k in ("check", "subtree", "error", "error_code", "result", "key"):
        context.setdefault(k, None)
    context.setdefault("chosen", {"union_id": 0, "program": "", "mode": "all_or_nothing"})
    context["chosen"].setdefault("org_id", 0)
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
    if not attempts.KEY_RE.fullmatch(idempotency_key or ""):
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


# --------------------------------------------------------------------------- a whole subtree
#
# A federation's admin chooses a federation of their subtree: the funding check of every
# union under it (each union's own fund, as a union's issuance uses it), then a run that
# issues union by union through the API's create_issuance (scope, service, audit), each
# union under its own service key derived from the run's attempt key and the union: a
# resubmit, a resume or a second worker meets the issuance already made, never issues twice.
# The run's plan (which unions) is kept as the run key's answer in the API's key table
# (``api.idempotency``, under a console prefix, for its TTL); its progress is read from the
# issuances those keys made. The worker is a thread of the process that took the confirm; if
# the process stops, the run page offers to resume (the same keys: the rest only).

RUN_KIND = "issue-run"
RUN_PREFIX = f"console:{RUN_KIND}:"  # attempts.claim's key of a run


@dataclass(frozen=True)
class SubtreeCheck:
    org_id: int
    org_name: str
    program: str
    program_name: str
    mode: str
    checks: list[Check]

    @property
    def to_receive(self) -> int:
        return sum(x.to_receive for x in self.checks)

    @property
    def needed_fen(self) -> int:
        return sum(x.needed_fen for x in self.checks)

    @property
    def available_fen(self) -> int:
        return sum(x.available_fen for x in self.checks)

    @property
    def shortfall_fen(self) -> int:
        return sum(x.shortfall_fen for x in self.checks)

    @property
    def short_unions(self) -> int:
        return sum(1 for x in self.checks if x.shortfall_fen)

    @property
    def issues_something(self) -> bool:
        return any(x.issues_something for x in self.checks)


def _federation(s: Session, c: PageCtx, org_id: int) -> Org:
    org = scope.require_org(c.principal, get_org(s, org_id))
    if org.level == OrgLevel.UNION:
        raise ValidationError(N_("choose a federation: a union is issued on its own"),
                              field="org")
    return org


def _unions_under(s: Session, org: Org) -> list[Org]:
    return list(s.execute(select(Org).where(Org.level == OrgLevel.UNION,
                                            Org.path.startswith(org.path))
                          .order_by(Org.name, Org.id)).scalars())


def subtree_check(s: Session, c: PageCtx, *, org_id: int, program: str,
                  mode: str) -> SubtreeCheck:
    org = _federation(s, c, org_id)
    prog = get_program(s, program)
    checks = [_check_of(s, prog, u, mode) for u in _unions_under(s, org)]
    return SubtreeCheck(org.id, org.name, prog.key, prog.name, mode, checks)


@dataclass
class _UnionCtx(PageCtx):
    """The confirming user's context, with the service key of one union of a run."""

    attempt: str = ""

    def service_key(self, kind: str) -> str:
        return run_service_key(self.principal.user_id, self.attempt, kind)


def run_service_key(user_id: int, attempt: str, kind: str = "issue") -> str:
    digest = hashlib.sha256(attempt.encode()).hexdigest()[:32]
    return f"api:{kind}:{user_id}:{digest}"


def _union_attempt(run_key: str, union_id: int) -> str:
    return f"{RUN_PREFIX}{run_key}:{union_id}"


_RUNNING: dict[str, dict] = {}  # run key → {"thread": Thread, "errors": {union_id: text}}
_RUNNING_LOCK = threading.Lock()


def _work(c: PageCtx, run_key: str, plan: dict) -> None:
    state = _RUNNING[run_key]
    for union_id, _name in plan["unions"]:
        uc = _UnionCtx(request=c.request, st=c.st, principal=c.principal, lang=c.lang,
                       csrf=c.csrf, attempt=_union_attempt(run_key, union_id))
        try:
            with i18n.language(c.lang):
                api_issuance.create_issuance(IssueIn(union_id=union_id, program=plan["program"],
                                                     mode=plan["mode"]), uc)
        except CivicVoucherError as exc:  # this union only (closed, out of scope): the rest go on
            state["errors"][union_id] = f"{exc.localized(c.lang)} [{exc.code}]"
        except Exception as exc:  # a fault: logged; resume retries this union's key
            log.exception("issuance run %s: union %s failed", run_key, union_id, exc_info=exc)
            state["errors"][union_id] = gettext(N_("the server failed; resume to retry"),
                                                c.lang)


def start_run(c: PageCtx, run_key: str, plan: dict) -> bool:
    """Start the run's worker in this process unless one is running; False if one is."""
    with _RUNNING_LOCK:
        found = _RUNNING.get(run_key)
        if found is not None and found["thread"].is_alive():
            return False
        if len(_RUNNING) > 500:  # forget finished runs (their issuances are in the database)
            for k in [k for k, v in _RUNNING.items() if not v["thread"].is_alive()]:
                del _RUNNING[k]
        t = threading.Thread(target=_work, args=(c, run_key, plan), daemon=True,
                             name=f"issue-run-{run_key[:8]}")
        _RUNNING[run_key] = {"thread": t, "errors": {}}
        t.start()
    return True


def _run_plan(s: Session, c: PageCtx, run_key: str) -> dict:
    row = s.execute(select(IdempotencyRecord).where(
        IdempotencyRecord.user_id == c.principal.user_id,
        IdempotencyRecord.key == RUN_PREFIX + run_key,
        IdempotencyRecord.state == "done")).scalar()
    if row is None or not row.body:
        raise NotFound(N_("no such issuance run (runs are kept for a day)"),
                       code="issue_run_not_found")
    plan = json.loads(row.body)
    scope.require_org(c.principal, get_org(s, plan["org_id"]))
    return plan


def run_progress(s: Session, c: PageCtx, run_key: str) -> dict:
    plan = _run_plan(s, c, run_key)
    keys = {run_service_key(c.principal.user_id, _union_attempt(run_key, uid)): uid
            for uid, _ in plan["unions"]}
    found = {keys[i.idem_key]: i for i in s.execute(
        select(Issuance).where(Issuance.idem_key.in_(list(keys)))).scalars()} if keys else {}
    state = _RUNNING.get(run_key) or {}
    errors = state.get("errors", {})
    running = bool(state) and state["thread"].is_alive()
    lines = []
    for uid, name in plan["unions"]:
        i = found.get(uid)
        lines.append({"union_id": uid, "union_name": name, "issuance": i,
                      "error": errors.get(uid) if i is None else None})
    done = sum(1 for x in lines if x["issuance"] is not None)
    return {"run_key": run_key, "plan": plan, "lines": lines, "done": done,
            "total": len(lines), "running": running,
            "finished": done == len(lines) or (not running and done + sum(
                1 for x in lines if x["error"]) == len(lines)),
            "failed": sum(1 for x in lines if x["error"]),
            "issued_fen": sum(x["issuance"].amount_fen for x in lines if x["issuance"]),
            "vouchers": sum(x["issuance"].vouchers_issued for x in lines if x["issuance"]),
            "shortfall_fen": sum(x["issuance"].shortfall_fen for x in lines
                                 if x["issuance"])}


@router.post("/issue/subtree/preview", name="console_issue_subtree_preview")
def issue_subtree_preview(org_id: int = Form(0, ge=0, le=2_147_483_647),
                          program: str = Form("", max_length=80),
                          mode: str = Form("all_or_nothing", max_length=20),
                          c: PageCtx = Depends(page_ctx)) -> Response:
    """Every union's funding check under a federation: reads only; the confirm form it
    shows carries a fresh run key."""
    chosen = {"union_id": 0, "org_id": org_id, "program": program, "mode": mode}
    if not org_id or not program:
        exc = ValidationError(N_("choose a program and a federation"), field="org")
        return _page(c, status=400, chosen=chosen, **_error(c, exc))

    def run(s: Session) -> SubtreeCheck:
        try:
            return subtree_check(s, c, org_id=org_id, program=program, mode=_mode(mode))
        finally:
            s.rollback()

    try:
        sub = c.db.run(run)
    except ValidationError as exc:
        return _page(c, status=exc.http_status, chosen=chosen, **_error(c, exc))
    return _page(c, subtree=sub, chosen=chosen, key=str(uuid.uuid4()))


@router.post("/issue/subtree/confirm", name="console_issue_subtree_confirm")
def issue_subtree_confirm(org_id: int = Form(..., ge=1, le=2_147_483_647),
                          program: str = Form(..., max_length=80),
                          mode: str = Form("all_or_nothing", max_length=20),
                          idempotency_key: str = Form("", max_length=100),
                          c: PageCtx = Depends(page_ctx)) -> Response:
    """Start the run (once per run key: a resubmit shows the same run and issues nothing
    more), then show its progress."""
    chosen = {"union_id": 0, "org_id": org_id, "program": program, "mode": mode}
    try:
        if not attempts.KEY_RE.fullmatch(idempotency_key or ""):
            raise ValidationError(N_("the page's attempt key is missing: check the funding "
                                     "again"), field="idempotency_key",
                                  code="idempotency_key_missing")
        _mode(mode)
    except ValidationError as exc:
        return _page(c, status=400, chosen=chosen, **_error(c, exc))
    body = json.dumps({"org_id": org_id, "program": program, "mode": mode}).encode()
    claim = attempts.claim(c, RUN_KIND, idempotency_key, body)
    if claim.replay is not None:
        plan = json.loads(claim.replay.body)
    else:
        plan = None
        try:
            def run(s: Session) -> dict:
                sub = subtree_check(s, c, org_id=org_id, program=program, mode=mode)
                return {"org_id": sub.org_id, "org_name": sub.org_name,
                        "program": sub.program, "program_name": sub.program_name,
                        "mode": mode, "unions": [[x.union_id, x.union_name]
                                                 for x in sub.checks if x.to_receive]}

            plan = c.db.run(run)
        finally:
            attempts.finish(c, claim, plan)
    start_run(c, idempotency_key, plan)  # a resubmit of a stopped run resumes it
    return RedirectResponse(f"/issue/runs/{idempotency_key}", status_code=303)


RUN_KEY = r"^[\x21-\x7e]{1,100}$"


@router.get("/issue/runs/{run_key}", name="console_issue_run")
def issue_run_page(run_key: str = Path(min_length=1, max_length=100, pattern=RUN_KEY),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    got = c.db.run(lambda s: run_progress(s, c, run_key))
    return render(c.request, "programs/issue_run.html.j2", title=N_("Issue vouchers"), r=got)


@router.get("/issue/runs/{run_key}/progress", name="console_issue_run_progress")
def issue_run_progress(run_key: str = Path(min_length=1, max_length=100, pattern=RUN_KEY),
                       c: PageCtx = Depends(page_ctx)) -> Response:
    """The progress fragment the run page polls (HTMX) until the run has finished."""
    got = c.db.run(lambda s: run_progress(s, c, run_key))
    return render(c.request, "programs/_issue_run_progress.html.j2", r=got)


@router.post("/issue/runs/{run_key}/resume", name="console_issue_run_resume")
def issue_run_resume(run_key: str = Path(min_length=1, max_length=100, pattern=RUN_KEY),
                     c: PageCtx = Depends(page_ctx)) -> Response:
    """Issue the unions the run has not issued yet (their keys: the issued ones replay)."""
    plan = c.db.run(lambda s: _run_plan(s, c, run_key))
    start_run(c, run_key, plan)
    return RedirectResponse(f"/issue/runs/{run_key}", status_code=303)


# --------------------------------------------------------------------------- program form
#
# The form carries every key of a program file (``programs/spec.py``): the program's key,
# name and documents, and one row per product. Rows are parallel lists (``p_key``, ``p_name``,
# ...); a row's checkboxes send ``<row>:<value>`` so they stay with their row. Amounts are
# yuan as people type them (``core.money.yuan_to_fen``: 300, 1.5万, ¥1,000); a product's
# vouchers are written ``300``, ``50×6`` or ``100+50``. The spec itself then validates, and
# each error is shown by its field, naming the product row.

MAX_PRODUCTS = 20
KINDS = [str(k) for k in ProductKind]
CATEGORIES = [str(c) for c in Category]
CHANNELS = [str(c) for c in Channel]
REGIONS = [str(r) for r in RegionScope]
DENOM_SPLIT = re.compile(r"[+＋、;；\s]+")
DENOM_TIMES = re.compile(r"\s*[×xX*]\s*")

# the spec's keys as the form's fields: (input id suffix, the label people read)
SPEC_FIELDS = {
    "key": ("key", N_("Product key")), "kind": ("kind", N_("Kind")),
    "name": ("name", N_("Product name")),
    "denominations_yuan": ("denoms", N_("Vouchers (yuan)")),
    "threshold_yuan": ("threshold", N_("Threshold (yuan)")),
    "categories": ("categories", N_("Merchant categories")),
    "channels": ("channels", N_("Channels")), "region_scope": ("region", N_("Where it can be spent")),
    "valid_from": ("from", N_("First day")), "expires_at": ("until", N_("Last day")),
    "optional": ("optional", N_("Opt-in only")),
}
PROGRAM_FIELDS = {"key": N_("Program key"), "name": N_("Program name"),
                  "documents": N_("Notices"), "products": N_("Products")}


@dataclass
class ProductRow:
    """One product as the form shows it (text as typed)."""

    key: str = ""
    kind: str = "consumption"
    name: str = ""
    denoms: str = ""
    threshold: str = "0"
    categories: list[str] | None = None
    channels: list[str] | None = None
    region: str = "province"
    valid_from: str = ""
    until: str = ""
    optional: bool = False

    def __post_init__(self) -> None:
        if self.categories is None:
            self.categories = list(CATEGORIES)
        if self.channels is None:
            self.channels = ["offline"]

    @property
    def blank(self) -> bool:
        return not (self.key.strip() or self.name.strip() or self.denoms.strip())


@dataclass
class ProgramForm:
    key: str = ""
    name: str = ""
    documents: str = ""
    products: list[ProductRow] | None = None

    def __post_init__(self) -> None:
        if self.products is None:
            self.products = [ProductRow()]


def _ticked(values: list[str], n: int) -> list[list[str]]:
    """``["0:offline", "1:online"]`` → per row ``[["offline"], ["online"]]``."""
    out: list[list[str]] = [[] for _ in range(n)]
    for v in values:
        row, _, code = v.partition(":")
        if row.isdigit() and int(row) < n:
            out[int(row)].append(code)
    return out


def _row_value(values: list[str], i: int, default: str = "") -> str:
    return values[i] if i < len(values) else default


def read_form(*, key: str, name: str, documents: str, p_key: list[str], p_kind: list[str],
              p_name: list[str], p_denoms: list[str], p_threshold: list[str],
              p_region: list[str], p_from: list[str], p_until: list[str],
              p_categories: list[str], p_channels: list[str], p_optional: list[str],
              p_remove: list[str] = ()) -> ProgramForm:
    n = min(MAX_PRODUCTS, max(len(p_key), len(p_name), len(p_denoms)))
    cats, chans = _ticked(p_categories, n), _ticked(p_channels, n)
    opt = set(p_optional)
    rows = [ProductRow(key=_row_value(p_key, i), kind=_row_value(p_kind, i, "consumption"),
                       name=_row_value(p_name, i), denoms=_row_value(p_denoms, i),
                       threshold=_row_value(p_threshold, i, "0"),
                       categories=cats[i], channels=chans[i],
                       region=_row_value(p_region, i, "province"),
                       valid_from=_row_value(p_from, i), until=_row_value(p_until, i),
                       optional=str(i) in opt) for i in range(n)]
    gone = set(p_remove)
    rows = [r for i, r in enumerate(rows) if str(i) not in gone] or [ProductRow()]
    return ProgramForm(key=key, name=name, documents=documents, products=rows)


def _whole_yuan(text: str, *, allow_zero: bool) -> int:
    """Typed yuan (``core.money``) as whole yuan, as a program file takes them."""
    t = text.strip()
    if not t:
        if allow_zero:
            return 0
        raise ValueError(msg("is required"))
    try:
        fen = yuan_to_fen(t)
    except (ValueError, TypeError) as exc:
        raise ValueError(exc.args[0] if exc.args else msg("invalid value")) from None
    if fen % FEN_PER_YUAN:
        raise ValueError(msg("face values and thresholds are whole yuan: {text}", text=t))
    if fen == 0 and not allow_zero:
        raise ValueError(msg("must be greater than {limit}", limit=0))
    return fen // FEN_PER_YUAN


def parse_denominations(text: str) -> list[int]:
    """``300`` → [300]; ``50×6`` → [50]*6; ``100+50`` → [100, 50]; ``1.5万`` → [15000]."""
    body = DENOM_TIMES.sub("×", text.strip())
    if not body:
        raise ValueError(msg("is required"))
    out: list[int] = []
    for part in DENOM_SPLIT.split(body):
        if not part:
            continue
        amount, times, count = part.partition("×")
        n = 1
        if times:
            if not count.isdigit() or not 1 <= int(count) <= 100:
                raise ValueError(msg("write the vouchers like 300, 50×6 or 100+50"))
            n = int(count)
        out += [_whole_yuan(amount, allow_zero=False)] * n
    if not out:
        raise ValueError(msg("is required"))
    return out


def show_denominations(fen: list[int]) -> str:
    """The stored vouchers as the form writes them: [5000]*6 → ``50×6``."""
    parts, i = [], 0
    while i < len(fen):
        j = i
        while j < len(fen) and fen[j] == fen[i]:
            j += 1
        y = f"{fen[i] // FEN_PER_YUAN}"
        parts.append(y if j - i == 1 else f"{y}×{j - i}")
        i = j
    return "+".join(parts)


def _day_field(value: datetime, *, end: bool) -> str:
    """A stored instant as the form's day (the last day for an exclusive end), or a local
    time when it is not a day's edge (kept as it is)."""
    local = clock.to_local(value)
    day = (local - timedelta(microseconds=1)).date() if end else local.date()
    edge = clock.end_of_day(day) if end else clock.start_of_day(day)
    if edge == value:
        return day.isoformat()
    return local.replace(tzinfo=None).isoformat(timespec="minutes")


def form_of(s: Session, prog: Program) -> ProgramForm:
    rows = [ProductRow(key=x.key, kind=x.kind, name=x.name,
                       denoms=show_denominations(list(x.denominations)),
                       threshold=str(x.threshold_fen // FEN_PER_YUAN)
                       if x.threshold_fen % FEN_PER_YUAN == 0 else yuan_text(x.threshold_fen),
                       categories=list(x.categories), channels=list(x.channels),
                       region=x.region_scope, valid_from=_day_field(x.valid_from, end=False),
                       until=_day_field(x.expires_at, end=True), optional=bool(x.optional))
            for x in products_of(s, prog.id)]
    return ProgramForm(key=prog.key, name=prog.name, documents="\n".join(prog.documents),
                       products=rows or [ProductRow()])


def yuan_text(fen: int) -> str:
    return f"{fen // FEN_PER_YUAN}.{fen % FEN_PER_YUAN:02d}"


class FormErrors(dict):
    """Input id → the message shown by it (in the page's language), in the order found."""


def _label(i: int | None, field: str, lang: str) -> str:
    if i is None:
        return gettext(PROGRAM_FIELDS.get(field, field), lang)
    word = gettext(SPEC_FIELDS[field][1], lang) if field in SPEC_FIELDS else field
    return localize(msg("product {n}: {field}", n=i + 1, field=word), lang)


def _spec_data(form: ProgramForm, errors: FormErrors, lang: str) -> dict:
    """The form as a program file's data; what cannot be read is put in ``errors``."""
    def bad(where: str, label: str, problem_: object) -> None:
        errors.setdefault(where, localize(msg("{field}: {problem}", field=label,
                                              problem=problem_), lang))

    products = []
    for i, row in enumerate(form.products or []):
        if row.blank and len(form.products or []) > 1:
            continue
        p: dict = {"key": row.key.strip(), "kind": row.kind, "name": row.name.strip(),
                   "categories": row.categories, "channels": row.channels,
                   "region_scope": row.region, "optional": row.optional,
                   "valid_from": row.valid_from.strip() or None,
                   "expires_at": row.until.strip() or None}
        for k in ("valid_from", "expires_at"):
            if p[k] is None:
                bad(f"p{i}-{SPEC_FIELDS[k][0]}", _label(i, k, lang), msg("is required"))
        try:
            p["denominations_yuan"] = parse_denominations(row.denoms)
        except ValueError as exc:
            bad(f"p{i}-denoms", _label(i, "denominations_yuan", lang), exc.args[0])
        try:
            p["threshold_yuan"] = _whole_yuan(row.threshold, allow_zero=True)
        except ValueError as exc:
            bad(f"p{i}-threshold", _label(i, "threshold_yuan", lang), exc.args[0])
        products.append((i, p))
    docs = [d.strip() for d in form.documents.splitlines() if d.strip()]
    return {"data": {"key": form.key.strip(), "name": form.name.strip(), "documents": docs,
                     "products": [p for _, p in products]},
            "rows": [i for i, _ in products]}


def validate_form(form: ProgramForm, lang: str) -> tuple[ProgramSpec | None, FormErrors]:
    """The program the form describes, or every error by its field (nothing is written)."""
    errors = FormErrors()
    got = _spec_data(form, errors, lang)
    data, rows = got["data"], got["rows"]
    try:
        spec = ProgramSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        for err in exc.errors():
            loc = [p for p in err["loc"]]
            what = problem(err)
            if loc and loc[0] == "products" and len(loc) >= 2 and isinstance(loc[1], int):
                i = rows[loc[1]] if loc[1] < len(rows) else loc[1]
                field = str(loc[2]) if len(loc) > 2 else "expires_at"  # the window check
                where = f"p{i}-{SPEC_FIELDS.get(field, ('name',))[0]}"
                label = _label(i, field, lang)
            else:
                field = str(loc[0]) if loc else "products"
                where = f"f-{field}" if field in PROGRAM_FIELDS else "f-products"
                label = _label(None, field, lang)
            if where.endswith(("-denoms", "-threshold")) and where in errors:
                continue  # already said in the form's own words
            errors.setdefault(where, localize(msg("{field}: {problem}", field=label,
                                                  problem=what), lang))
        return None, errors
    if errors:
        return None, errors
    return spec, errors


def _launched(s: Session, prog: Program) -> bool:
    return bool(s.execute(select(Issuance.id).where(Issuance.program_id == prog.id)
                          .limit(1)).first() or s.execute(
        select(Extension.id).where(Extension.program_id == prog.id).limit(1)).first())


def _form_page(c: PageCtx, form: ProgramForm, *, editing: str | None, status: int = 200,
               errors: FormErrors | None = None, key: str | None = None,
               launched: bool = False, error_code: str | None = None) -> Response:
    return render(c.request, "programs/program_form.html.j2", status_code=status,
                  title=N_("Edit the program") if editing else N_("New program"),
                  form=form, editing=editing, errors=errors or FormErrors(),
                  key=key or str(uuid.uuid4()), launched=launched, error_code=error_code,
                  kinds=KINDS, categories=CATEGORIES, channels=CHANNELS, regions=REGIONS,
                  max_products=MAX_PRODUCTS)


def _save(c: PageCtx, form: ProgramForm, *, attempt: str, action: str | None,
          editing: str | None) -> Response:
    """Add a row (nothing written; rows ticked for removal go), or create/update through
    the API's routes."""
    rows = form.products or []
    if action == "add":
        if len(rows) < MAX_PRODUCTS:
            rows.append(ProductRow(valid_from=rows[-1].valid_from if rows else "",
                                   until=rows[-1].until if rows else ""))
        return _form_page(c, form, editing=editing, key=attempt or None)
    spec, errors = validate_form(form, c.lang)
    if spec is None:
        return _form_page(c, form, editing=editing, status=422, errors=errors, key=attempt)
    kind = "program-update" if editing else "program-create"
    claim = attempts.claim(c, kind, attempt, json.dumps(
        {"program": editing, "spec": spec.model_dump(mode="json")}, sort_keys=True,
        default=str).encode())
    if claim.replay is not None:
        answer = json.loads(claim.replay.body)
        return RedirectResponse(f"/programs/{answer['key']}?saved={answer['saved']}",
                                status_code=303)
    answer = None
    try:
        try:
            if editing:
                out = api_programs.update_program_route(spec, editing, c)
                saved = "updated" if out.updated else "unchanged"
            else:
                out = api_programs.create_program_route(spec, c)
                saved = "created" if out.created else "unchanged"
        except Conflict as exc:  # another definition under the key, or launched
            field = "f-key" if exc.code == "idempotency_key_reused" else "f-products"
            errors[field] = exc.localized(c.lang)
            return _form_page(c, form, editing=editing, status=409, errors=errors,
                              key=attempt, launched=exc.code == "program_launched",
                              error_code=exc.code)
        except ValidationError as exc:  # the key of another program in the body
            errors["f-key"] = exc.localized(c.lang)
            return _form_page(c, form, editing=editing, status=422, errors=errors, key=attempt)
        answer = {"key": out.key, "saved": saved}
    finally:
        attempts.finish(c, claim, answer)
    return RedirectResponse(f"/programs/{out.key}?saved={saved}", status_code=303)


def _form_params(p_key: list[str] = Form([]), p_kind: list[str] = Form([]),
                 p_name: list[str] = Form([]), p_denoms: list[str] = Form([]),
                 p_threshold: list[str] = Form([]), p_region: list[str] = Form([]),
                 p_from: list[str] = Form([]), p_until: list[str] = Form([]),
                 p_categories: list[str] = Form([]), p_channels: list[str] = Form([]),
                 p_optional: list[str] = Form([]), p_remove: list[str] = Form([]),
                 key: str = Form("", max_length=100), name: str = Form("", max_length=300),
                 documents: str = Form("", max_length=5000)) -> ProgramForm:
    def capped(values: list[str], n: int = 400) -> list[str]:
        return [v[:n] for v in values[: MAX_PRODUCTS * len(CATEGORIES)]]

    return read_form(key=key, name=name, documents=documents, p_key=capped(p_key),
                     p_kind=capped(p_kind), p_name=capped(p_name), p_denoms=capped(p_denoms),
                     p_threshold=capped(p_threshold), p_region=capped(p_region),
                     p_from=capped(p_from), p_until=capped(p_until),
                     p_categories=capped(p_categories), p_channels=capped(p_channels),
                     p_optional=capped(p_optional), p_remove=capped(p_remove))


@router.get("/programs/new", name="console_program_new")
def program_new(c: PageCtx = Depends(page_ctx)) -> Response:
    today = clock.to_local(clock.now()).date()
    form = ProgramForm(products=[ProductRow(valid_from=today.isoformat(),
                                            until=(today + timedelta(days=89)).isoformat())])
    return _form_page(c, form, editing=None)


@router.post("/programs/new", name="console_program_create")
def program_create(form: ProgramForm = Depends(_form_params),
                   action: str = Form("", max_length=10),
                   idempotency_key: str = Form("", max_length=100),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    """Create the program through the API's create_program_route (audited program.create),
    once per attempt key; the program key is itself idempotent."""
    return _save(c, form, attempt=idempotency_key, action=action or None, editing=None)


@router.get("/programs/{program}/edit", name="console_program_edit")
def program_edit(program: str = Path(min_length=1, max_length=80, pattern=PROGRAM_KEY),
                 c: PageCtx = Depends(page_ctx)) -> Response:
    def run(s: Session) -> tuple[ProgramForm, bool]:
        prog = get_program(s, program)
        return form_of(s, prog), _launched(s, prog)

    form, launched = c.db.run(run)
    return _form_page(c, form, editing=form.key, launched=launched)


@router.post("/programs/{program}/edit", name="console_program_update")
def program_update(program: str = Path(min_length=1, max_length=80, pattern=PROGRAM_KEY),
                   form: ProgramForm = Depends(_form_params),
                   action: str = Form("", max_length=10),
                   idempotency_key: str = Form("", max_length=100),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    """Change the program before launch through the API's update_program_route (audited
    program.update); after launch refused as the API refuses it (program_launched)."""
    current = c.db.run(lambda s: get_program(s, program).key)
    if not form.key:
        form.key = current
    return _save(c, form, attempt=idempotency_key, action=action or None, editing=current)


# --------------------------------------------------------------------------- programs



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

    rule = rule_for("console_program_create")
    return render(c.request, "programs/programs.html.j2", title=N_("Programs"),
                  programs=c.db.run(run), may_create=c.principal.role in rule.roles)


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
    def run(s: Session) -> dict:
        d = _detail(s, program)
        d["launched"] = _launched(s, get_program(s, program))
        return d

    data = c.db.run(run)
    rule = rule_for("console_program_extend")
    context.setdefault("error", None)
    context.setdefault("error_code", None)
    context.setdefault("form", {"until": "", "reason": "", "document": ""})
    context.setdefault("key", str(uuid.uuid4()))
    context.setdefault("extended", None)
    context.setdefault("saved", None)
    edit = rule_for("console_program_update")
    return render(c.request, "programs/program.html.j2", status_code=status,
                  title=N_("Programs"), may_extend=c.principal.role in rule.roles,
                  may_edit=c.principal.role in edit.roles, **data, **context)


@router.get("/programs/{program}", name="console_program")
def program_page(program: str = Path(min_length=1, max_length=80, pattern=PROGRAM_KEY),
                 extended: int | None = None,
                 saved: str | None = Query(None, pattern="^(created|updated|unchanged)$"),
                 c: PageCtx = Depends(page_ctx)) -> Response:
    return _program_page(c, program, extended=extended, saved=saved)


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
        if not attempts.KEY_RE.fullmatch(idempotency_key or ""):
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
