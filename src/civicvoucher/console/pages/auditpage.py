"""The audit log viewer (审计日志): province admins and auditors, as the API's ``list_audit``.

``GET /audit`` lists entries newest first, filtered by action, actor, target, outcome and a
range of local calendar days, 50 a page (``?cursor=`` pages on); ``?seq=N`` shows one entry.
The scope is the API's: the province sees every entry, an auditor the entries of actors in
their subtree (``AuditEntry.scope`` under their organisation's path); an entry outside it is
the same not-found as a missing one. Each read is audited as the API audits it
(``audit.read`` with the count shown). Entries are shown as stored: personal data in them is
masked already when they are written.

``GET /audit/verify`` walks the whole hash chain (``audit.service.verify_now``, the API's
``verify_audit``): only when asked (a button; an HTMX fragment, or the page without script).
"""

from __future__ import annotations

import json
import re
from datetime import date

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from starlette.responses import Response

from civicvoucher.api import pagination
from civicvoucher.api.routers.audit import entry_out
from civicvoucher.audit.models import AuditEntry
from civicvoucher.audit.service import verify_now
from civicvoucher.console.nav import Link, register
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core import clock
from civicvoucher.errors import NotFound, ValidationError
from civicvoucher.i18n import N_, localize, msg

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
register(Link("console_audit", "/audit", N_("Audit log")))

PAGE_SIZE = 50
DETAIL_SHOWN = 160  # characters of an entry's detail in the list (all of it on ?seq=)
MAX_BREAKS = 500  # as the API
OUTCOMES = ("ok", "refused")
_ACTION = re.compile(r"[a-z_.]{1,80}")  # the API's pattern
_SEQ = re.compile(r"[0-9]{1,18}")


def _bad(field: str, text: str) -> ValidationError:
    err = ValidationError(text, field=field)
    err.http_status = 400
    return err


def _day(field: str, value: str) -> date | None:
    v = value.strip()
    if not v:
        return None
    d = clock.bare_date(v)
    if d is None:
        raise _bad(field, msg("{value} is not a date (YYYY-MM-DD)", value=v[:20]))
    return d


def compact(detail) -> str:
    return json.dumps(detail, ensure_ascii=False, separators=(", ", ": "), sort_keys=True,
                      default=str)


def _scoped(c: PageCtx, q):
    """The API's rule: the province everything, anyone else their subtree's actors."""
    p = c.principal
    if p.org_level != "province":
        q = q.where(AuditEntry.scope.startswith(f"org:{p.org_path}"))
    return q


def _row(e: AuditEntry) -> dict:
    out = entry_out(e)
    text = compact(out.detail)
    return {"e": out, "detail": text if len(text) <= DETAIL_SHOWN
            else text[:DETAIL_SHOWN - 1] + "…", "cut": len(text) > DETAIL_SHOWN}


@router.get("/audit", name="console_audit")
def audit_page(action: str = Query("", max_length=80), actor: str = Query("", max_length=100),
               target: str = Query("", max_length=200), outcome: str = Query("", max_length=20),
               date_from: str = Query("", alias="from", max_length=20),
               date_to: str = Query("", alias="to", max_length=20),
               cursor: str | None = Query(None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
               seq: str = Query("", max_length=20),
               c: PageCtx = Depends(page_ctx)) -> Response:
    f = {"action": action.strip(), "actor": actor.strip(), "target": target.strip(),
         "outcome": outcome.strip(), "from": date_from.strip(), "to": date_to.strip()}
    if seq.strip():
        return _one(c, seq.strip(), f)
    if f["action"] and not _ACTION.fullmatch(f["action"]):
        raise _bad("action", N_("an action is lower-case letters, dots and underscores, "
                                "e.g. fund.deposit"))
    if f["outcome"] and f["outcome"] not in OUTCOMES:
        raise _bad("outcome", N_("the outcome is ok or refused"))
    d_from, d_to = _day("from", f["from"]), _day("to", f["to"])
    if d_from and d_to and d_to < d_from:
        raise _bad("to", N_("the last day is before the first"))

    q = _scoped(c, select(AuditEntry))
    if f["action"]:
        q = q.where(AuditEntry.action == f["action"])
    if f["actor"]:
        q = q.where(AuditEntry.actor == f["actor"])
    if f["target"]:
        q = q.where(AuditEntry.target == f["target"])
    if f["outcome"]:
        q = q.where(AuditEntry.outcome == f["outcome"])
    if d_from:
        q = q.where(AuditEntry.created_at >= clock.start_of_day(d_from))
    if d_to:
        q = q.where(AuditEntry.created_at < clock.end_of_day(d_to))
    if cursor:
        q = q.where(AuditEntry.seq < pagination.decode(cursor))

    def run(s):
        rows = s.execute(q.order_by(AuditEntry.seq.desc()).limit(PAGE_SIZE + 1)).scalars().all()
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        c.audit(s, "audit.read", detail={"count": len(rows)})
        return [_row(e) for e in rows], (pagination.encode(rows[-1].seq) if more else None)

    rows, nxt = c.db.run(run)
    kept = {k: v for k, v in f.items() if v}
    return render(c.request, "auditpage/audit.html.j2", title=N_("Audit log"), f=f,
                  rows=rows, next_cursor=nxt, kept=kept, first_page=not cursor,
                  outcomes=OUTCOMES, entry=None, verification=None)


def _one(c: PageCtx, seq: str, f: dict) -> Response:
    if not _SEQ.fullmatch(seq):  # the same page as an entry that is missing
        raise NotFound(msg("no audit entry {seq}", seq=seq[:20]), code="audit_entry_not_found")

    def run(s):
        e = s.execute(_scoped(c, select(AuditEntry)).where(AuditEntry.seq == int(seq))) \
            .scalar_one_or_none()
        if e is None:
            raise NotFound(msg("no audit entry {seq}", seq=seq), code="audit_entry_not_found")
        c.audit(s, "audit.read", detail={"count": 1, "seq": e.seq})
        return entry_out(e)

    e = c.db.run(run)
    pretty = json.dumps(e.detail, ensure_ascii=False, indent=2, sort_keys=True, default=str)
    return render(c.request, "auditpage/audit.html.j2", title=N_("Audit log"), f=f, rows=[],
                  next_cursor=None, kept={}, first_page=True, outcomes=OUTCOMES,
                  entry={"e": e, "detail": pretty}, verification=None)


@router.get("/audit/verify", name="console_audit_verify")
def audit_verify(c: PageCtx = Depends(page_ctx)) -> Response:
    n, breaks = verify_now(c.db, key=c.st.audit_key)
    v = {"ok": not breaks, "entries": n, "more": max(0, len(breaks) - MAX_BREAKS),
         "breaks": [{"seq": b.seq, "reason": localize(b.reason)} for b in breaks[:MAX_BREAKS]]}
    if c.request.headers.get("hx-request") == "true":
        return render(c.request, "auditpage/_verify.html.j2", v=v)
    f = dict.fromkeys(("action", "actor", "target", "outcome", "from", "to"), "")
    return render(c.request, "auditpage/audit.html.j2", title=N_("Audit log"), f=f, rows=None,
                  next_cursor=None, kept={}, first_page=True, outcomes=OUTCOMES, entry=None,
                  verification=v)
