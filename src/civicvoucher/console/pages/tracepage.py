"""The voucher trace page (溯源): find a voucher by what a clerk has in hand (a receipt, a paper
code, a voucher id, the holder's ID number), then read its whole life on one page.

The service is ``vouchers.trace`` (``find_vouchers``, ``trace``); this module only asks it,
within the user's subtree, and audits the read. Both pages show personal data (masked), so
both are audited: a search as ``voucher.search`` with the *kind* of what was typed, never the
text itself (an ID number or a paper code is not written into the log), and the vouchers it
showed; a trace as ``voucher.trace`` on ``voucher:<id>``. The search is a POST, so that an ID
number never sits in a URL (access logs, history, Referer). A voucher outside the subtree is
the same not-found page as a missing one.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Form
from starlette.responses import Response

from civicvoucher.auth.errors import OutOfScope
from civicvoucher.auth.roles import ORG_ROLES
from civicvoucher.console.nav import Link, register
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core import ids
from civicvoucher.core.ids import normalise_code
from civicvoucher.errors import NotFound
from civicvoucher.i18n import N_, msg, terms
from civicvoucher.members.rules import normalise_id_number
from civicvoucher.vouchers.trace import find_vouchers, trace

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
register(Link("console_trace", "/trace", N_("Voucher trace")))

MAX_QUERY = 64  # find_vouchers finds nothing in anything longer

# what a search matched by, and what a step's outcome was (codes of vouchers.trace)
MATCHED_BY_ZH = {"voucher_id": "券编号", "redemption_id": "核销编号", "receipt_id": "小票号",
                 "code": "纸质券券码", "id_number": "身份证号"}
OUTCOME_ZH = {"voided": "已撤销", "timed_out": "超时作废", "restored": "券已恢复",
              "to_fund": "已退回基层工会资金", "on_refund": "退款时生效"}
terms.register("trace_match", MATCHED_BY_ZH)
terms.register("trace_outcome", OUTCOME_ZH)

NOTES = {"deadline_replay_mismatch": N_(
    "Replaying the program's extensions does not end on the voucher's stored deadline: the "
    "extension steps shown may be incomplete.")}

_RECEIPT = re.compile(r"R\d{8}-\d{1,12}")
_ID_NUMBER = re.compile(r"\d{17}[\dX]")
_CODE = re.compile(rf"[A-Z2-7]{{{ids.CODE_LENGTH}}}")
_VOUCHER_ID = re.compile(r"[0-9]{1,19}")


def query_kind(text: str) -> str:
    """What a typed query is, in the order ``find_vouchers`` tries it; this, not the query,
    is what the audit log keeps."""
    t = text.strip()
    if not t:
        return "empty"
    if len(t) > MAX_QUERY:
        return "too_long"
    if _RECEIPT.fullmatch(t.upper()):
        return "receipt_id"
    if t.isdigit() and len(t) < 18:
        return "number"
    if _ID_NUMBER.fullmatch(normalise_id_number(t)):
        return "id_number"
    if _CODE.fullmatch(normalise_code(t)):
        return "code"
    return "other"


def _subtree(c: PageCtx) -> str:
    """The user's subtree. Never None here: to the service None means everywhere."""
    p = c.principal
    if p.role not in ORG_ROLES or not p.org_path:
        raise OutOfScope(msg("organisation {id} is outside your scope", id=p.org_id),
                         target="trace")
    return p.org_path


def _search_page(c: PageCtx, *, q: str = "", hits=None, kind: str | None = None) -> Response:
    return render(c.request, "tracepage/search.html.j2", title=N_("Voucher trace"), q=q,
                  hits=hits, kind=kind, max_query=MAX_QUERY)


@router.get("/trace", name="console_trace")
def trace_search_form(c: PageCtx = Depends(page_ctx)) -> Response:
    _subtree(c)
    return _search_page(c)


@router.post("/trace", name="console_trace_search")
def trace_search(q: str = Form(""), c: PageCtx = Depends(page_ctx)) -> Response:
    path = _subtree(c)
    kind = query_kind(q)
    # an ID number or a paper code (a bearer value) is not written back into the page
    shown = "" if kind in ("id_number", "code") else q.strip()[:MAX_QUERY]
    if kind == "empty":
        return _search_page(c, q="", kind=kind)

    def run(s):
        hits = find_vouchers(s, query=q, org_path=path, key=c.st.secret_key)
        c.audit(s, "voucher.search", target=f"org:{c.principal.org_id}",
                detail={"kind": kind, "count": len(hits),
                        "voucher_ids": sorted({h.voucher_id for h in hits})})
        return hits

    return _search_page(c, q=shown, hits=c.db.run(run), kind=kind)


@router.get("/trace/{voucher_id}", name="console_trace_voucher")
def trace_voucher(voucher_id: str, c: PageCtx = Depends(page_ctx)) -> Response:
    path = _subtree(c)
    if not _VOUCHER_ID.fullmatch(voucher_id):  # the same page as a voucher that is missing
        raise NotFound(msg("no voucher {id}", id=voucher_id[:30]), code="voucher_not_found")

    def run(s):
        t = trace(s, int(voucher_id), org_path=path)
        c.audit(s, "voucher.trace", target=f"voucher:{t.voucher_id}",
                detail={"member_id": t.member_id, "steps": len(t.steps)})
        return t

    t = c.db.run(run)
    return render(c.request, "tracepage/trace.html.j2", title=N_("Voucher trace"), tr=t,
                  notes=[NOTES.get(n, n) for n in t.notes])
