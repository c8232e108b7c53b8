"""Settlement in the console: runs, a run's batches, a batch's review, the bank's payout file.

* **Runs** (``/settlement``): every settlement run, newest first (the province admin and the
  auditor, as the API's ``list_settlement_runs``). The province admin runs one from the page:
  the cut-off is read as the command line reads it (``cli.common.parse_cutoff``: a bare date
  is through the end of that local day, blank is now, a cut still to come is refused), and
  the run is the API's own (``settlement.service.settle`` with the key ``Ctx.service_key``
  derives from the form's attempt key, audited ``settlement.run``): a double submit is the
  service's replay, the same run.
* **A run** (``/settlement/runs/{id}``): what it settled, kept back and paid, and its batches
  with the payees (account numbers masked).
* **A batch** (``/settlement/batches/{id}``): its redemptions and their totals.
* **The bank's file** (``/settlement/runs/{id}/bank.xlsx`` and ``.csv``): the province admin
  only, for the merchants of their region; ``settlement.export`` builds it (the same function
  as ``civicvoucher settlement export``). It opens the sealed account
  numbers, so each download is audited ``settlement.bank_export`` (lines and total, never a
  number).
"""

from __future__ import annotations

import re
import uuid

from fastapi import APIRouter, Depends, Form, Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from civicvoucher.api.routers.runs import settlement_out
from civicvoucher.auth import scope
from civicvoucher.auth.policy import Rule, rule_for
from civicvoucher.cli.common import parse_cutoff
from civicvoucher.console import nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.errors import CivicVoucherError, NotFound, ValidationError
from civicvoucher.i18n import N_, msg
from civicvoucher.merchants.models import Merchant
from civicvoucher.settlement import export as bank
from civicvoucher.settlement.models import SettlementBatch, SettlementRun
from civicvoucher.settlement.service import batch_redemptions, settle

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
nav.register(nav.Link("console_settlement", "/settlement", N_("Settlement")))

KEY_RE = re.compile(r"^[\x21-\x7e]{1,100}$")
PAGE_SIZE = 50
RunId = Path(ge=1, le=2_147_483_647)


def _may(c: PageCtx, route: str) -> bool:
    rule = rule_for(route)
    return isinstance(rule, Rule) and c.principal.role in rule.roles


def _mine(c: PageCtx):
    """The merchants whose payouts the user may see (a run is province-wide; its batches are
    shown and exported for the user's region, as the API's list_settlement_batches)."""
    return scope.merchant_condition(c.principal, Merchant.id, Merchant.county_code)


def _runs_page(c: PageCtx, *, page: int = 1, status: int = 200, **context) -> Response:
    def run(s: Session):
        total = s.execute(select(func.count()).select_from(SettlementRun)).scalar()
        rows = s.execute(select(SettlementRun).order_by(SettlementRun.id.desc())
                         .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).scalars()
        return total, [settlement_out(x) for x in rows]

    total, runs = c.db.run(run)
    context.setdefault("error", None)
    context.setdefault("error_code", None)
    context.setdefault("cutoff", "")
    context.setdefault("key", str(uuid.uuid4()))
    return render(c.request, "settlepage/runs.html.j2", status_code=status,
                  title=N_("Settlement"), runs=runs, total=total, page=page,
                  pages=max(1, -(-total // PAGE_SIZE)),
                  may_run=_may(c, "console_settlement_run"), **context)


@router.get("/settlement", name="console_settlement")
def runs_page(page: int = Query(1, ge=1, le=100_000),
              c: PageCtx = Depends(page_ctx)) -> Response:
    return _runs_page(c, page=page)


@router.post("/settlement/run", name="console_settlement_run")
def run_settlement(cutoff: str = Form("", max_length=40),
                   idempotency_key: str = Form("", max_length=100),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    """Settle up to the cut-off, once per attempt key (the API's service, key and audit)."""
    try:
        if not KEY_RE.fullmatch(idempotency_key or ""):
            raise ValidationError(N_("the page's attempt key is missing: reload the page"),
                                  field="idempotency_key", code="idempotency_key_missing")
        when = parse_cutoff(cutoff.strip() or None, "cutoff")
    except ValidationError as exc:
        return _runs_page(c, status=exc.http_status, error=exc.localized(c.lang),
                          error_code=exc.code, cutoff=cutoff, key=idempotency_key or None)
    c.request.state.idempotency_key = idempotency_key  # c.service_key derives the service's

    def run(s: Session) -> int:
        r = settle(s, cutoff=when, idem_key=c.service_key("settle"))
        x = r.run
        if not r.replayed:
            c.audit(s, "settlement.run", target=f"settlement_run:{x.id}",
                    detail={"cutoff": x.cutoff, "batches": x.batches,
                            "amount_fen": x.amount_fen, "recovered_fen": x.recovered_fen})
        return x.id

    try:
        run_id = c.db.run(run)
    except CivicVoucherError as exc:
        if exc.http_status >= 500:
            raise
        return _runs_page(c, status=exc.http_status, error=exc.localized(c.lang),
                          error_code=exc.code, cutoff=cutoff, key=str(uuid.uuid4()))
    return RedirectResponse(f"/settlement/runs/{run_id}?new=1", status_code=303)


def _get_run(s: Session, run_id: int) -> SettlementRun:
    x = s.get(SettlementRun, run_id)
    if x is None:
        raise NotFound(msg("no settlement run {id}", id=run_id), code="settlement_run_not_found")
    return x


@router.get("/settlement/runs/{run_id}", name="console_settlement_run_page")
def run_page(run_id: int = RunId, new: int | None = None,
             c: PageCtx = Depends(page_ctx)) -> Response:
    def run(s: Session):
        x = settlement_out(_get_run(s, run_id))
        rows = s.execute(
            select(SettlementBatch, Merchant).join(Merchant, Merchant.id == SettlementBatch.merchant_id)
            .where(SettlementBatch.run_id == run_id, _mine(c))
            .order_by(SettlementBatch.id)).all()
        batches = [{"id": b.id, "merchant_id": m.id, "merchant": m.name, "uscc": m.uscc,
                    "redemptions": b.redemption_count, "amount_fen": b.amount_fen,
                    "recovered_fen": b.recovered_fen, "payout_fen": b.amount_fen - b.recovered_fen,
                    "payee_name": m.payee_name, "bank_name": m.bank_name,
                    "account_masked": m.account_masked} for b, m in rows]
        return x, batches

    x, batches = c.db.run(run)
    missing = [b for b in batches if b["payout_fen"] > 0 and not b["account_masked"]]
    return render(c.request, "settlepage/run.html.j2", title=N_("Settlement"), run=x,
                  batches=batches, missing=missing, new=new,
                  may_export=_may(c, "console_settlement_export"))


@router.get("/settlement/batches/{batch_id}", name="console_settlement_batch")
def batch_page(batch_id: int = Path(ge=1, le=2_147_483_647), c: PageCtx = Depends(page_ctx)) -> Response:
    def run(s: Session):
        b = s.get(SettlementBatch, batch_id)
        if b is None:
            raise NotFound(msg("no settlement batch {id}", id=batch_id),
                           code="settlement_batch_not_found")
        m = scope.require_merchant(c.principal, s.get(Merchant, b.merchant_id))
        reds = [{"id": r.id, "voucher_id": r.voucher_id, "amount_fen": r.amount_fen,
                 "order_fen": r.order_amount_fen, "channel": r.channel,
                 "posted_at": r.posted_at, "status": r.status}
                for r in batch_redemptions(s, b.id)]
        cutoff = s.get(SettlementRun, b.run_id).cutoff
        return ({"id": b.id, "run_id": b.run_id, "cutoff": cutoff, "amount_fen": b.amount_fen,
                 "recovered_fen": b.recovered_fen, "payout_fen": b.amount_fen - b.recovered_fen,
                 "redemptions": b.redemption_count, "reference": bank.reference(b.run_id, b.id)},
                {"id": m.id, "name": m.name, "uscc": m.uscc, "payee_name": m.payee_name,
                 "bank_name": m.bank_name, "account_masked": m.account_masked}, reds)

    b, m, reds = c.db.run(run)
    return render(c.request, "settlepage/batch.html.j2", title=N_("Settlement"), b=b, m=m,
                  reds=reds, listed_fen=sum(r["amount_fen"] for r in reds))


@router.get("/settlement/runs/{run_id}/bank.{fmt}", name="console_settlement_export")
def bank_file(run_id: int = RunId, fmt: str = Path(pattern=r"^(xlsx|csv)$"),
              c: PageCtx = Depends(page_ctx)) -> Response:
    """The payout file for the bank; opening the account numbers is audited."""
    def run(s: Session) -> bytes:
        export = bank.payout_file(s, run_id, _mine(c))
        c.audit(s, "settlement.bank_export", target=f"settlement_run:{run_id}",
                detail={**bank.audit_detail(export, fmt), "via": "console"})
        return bank.render(export, fmt)

    data = c.db.run(run)
    media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
             if fmt == "xlsx" else "text/csv; charset=utf-8")
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{bank.filename(run_id, fmt)}"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


__all__ = ["router"]
