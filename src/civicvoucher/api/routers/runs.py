"""Province-wide runs: expiry (breakage), deadline extensions, settlement; ledger verify."""

from __future__ import annotations

from fastapi import Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import (
    ExpiryIn,
    ExpiryOut,
    ExtensionIn,
    ExtensionOut,
    LedgerProblem,
    LedgerVerifyOut,
    SettlementBatchOut,
    SettlementIn,
    SettlementOut,
)
from civicvoucher.auth import scope
from civicvoucher.merchants.models import Merchant
from civicvoucher.reconcile import verify
from civicvoucher.settlement.models import SettlementBatch, SettlementRun
from civicvoucher.settlement.service import settle
from civicvoucher.vouchers.lifecycle import expire, extend

router = make_router("", "runs")


@router.post("/expiry-runs", response_model=ExpiryOut, status_code=201, name="run_expiry")
def run_expiry(body: ExpiryIn, c: Ctx = Depends(ctx)) -> ExpiryOut:
    """Expire every unspent voucher whose deadline is at or before ``as_of``; the value goes
    back to each issuing union's fund (one transfer per union and program)."""

    def run(s: Session) -> ExpiryOut:
        r = expire(s, as_of=body.as_of, idem_key=c.service_key("expire"))
        x = r.run
        if not r.replayed:
            c.audit(s, "expiry.run", target=f"expiry_run:{x.id}",
                    detail={"as_of": x.as_of, "vouchers": x.vouchers_expired,
                            "amount_fen": x.amount_fen})
        return ExpiryOut(id=x.id, as_of=x.as_of, vouchers_expired=x.vouchers_expired,
                         amount_fen=x.amount_fen, holds_voided=x.holds_voided)

    return c.db.run(run)


@router.post("/extensions", response_model=ExtensionOut, status_code=201,
             name="create_extension")
def create_extension(body: ExtensionIn, c: Ctx = Depends(ctx)) -> ExtensionOut:
    """Move the deadline of unspent vouchers later, recording who and why."""

    def run(s: Session) -> ExtensionOut:
        r = extend(s, program=body.program, new_expires_at=body.new_expires_at,
                   actor=c.principal.username, reason=body.reason, product=body.product,
                   union_ids=body.union_ids, region_prefix=body.region_prefix, form=body.form,
                   document=body.document, idem_key=c.service_key("extend"))
        e = r.extension
        if not r.replayed:
            c.audit(s, "extension.create", target=f"extension:{e.id}",
                    detail={"program_id": e.program_id, "new_expires_at": e.new_expires_at,
                            "vouchers": e.vouchers_extended, "reason": e.reason})
        return ExtensionOut(id=e.id, program_id=e.program_id, new_expires_at=e.new_expires_at,
                            vouchers_extended=e.vouchers_extended, program_wide=e.program_wide)

    return c.db.run(run)


@router.post("/settlement-runs", response_model=SettlementOut, status_code=201,
             name="run_settlement")
def run_settlement(body: SettlementIn, c: Ctx = Depends(ctx)) -> SettlementOut:
    """Batch posted, unsettled redemptions up to ``cutoff`` into one payout per merchant;
    what a merchant owes back for refunds after an earlier payout is kept from its payout."""

    def run(s: Session) -> SettlementOut:
        r = settle(s, cutoff=body.cutoff, idem_key=c.service_key("settle"))
        x = r.run
        if not r.replayed:
            c.audit(s, "settlement.run", target=f"settlement_run:{x.id}",
                    detail={"cutoff": x.cutoff, "batches": x.batches,
                            "amount_fen": x.amount_fen, "recovered_fen": x.recovered_fen})
        return settlement_out(x)

    return c.db.run(run)


def settlement_out(x: SettlementRun) -> SettlementOut:
    return SettlementOut(id=x.id, cutoff=x.cutoff, batches=x.batches, redemptions=x.redemptions,
                         amount_fen=x.amount_fen, recovered_fen=x.recovered_fen,
                         payout_fen=x.amount_fen - x.recovered_fen)


@router.get("/settlement-runs", response_model=Page[SettlementOut], name="list_settlement_runs")
def list_settlement_runs(page: PageParams = Depends(page_params),
                         c: Ctx = Depends(ctx)) -> Page[SettlementOut]:
    """Settlement runs, oldest first: what each paid out and kept back."""
    return c.db.run(lambda s: paginate(s, select(SettlementRun), SettlementRun.id, page,
                                       settlement_out))


@router.get("/settlement-batches", response_model=Page[SettlementBatchOut],
            name="list_settlement_batches")
def list_settlement_batches(run_id: int | None = Query(None, ge=1, le=2_147_483_647),
                            merchant_id: int | None = Query(None, ge=1, le=2_147_483_647),
                            page: PageParams = Depends(page_params),
                            c: Ctx = Depends(ctx)) -> Page[SettlementBatchOut]:
    """Payout batches of the merchants you may see (merchant staff: their own), optionally of
    one run or one merchant."""

    def run(s: Session) -> Page[SettlementBatchOut]:
        B = SettlementBatch
        q = select(B).join(Merchant, Merchant.id == B.merchant_id).where(
            scope.merchant_condition(c.principal, Merchant.id, Merchant.county_code))
        if run_id is not None:
            q = q.where(B.run_id == run_id)
        if merchant_id is not None:
            q = q.where(B.merchant_id == merchant_id)
        return paginate(s, q, B.id, page, lambda b: SettlementBatchOut(
            id=b.id, run_id=b.run_id, merchant_id=b.merchant_id, redemptions=b.redemption_count,
            amount_fen=b.amount_fen, recovered_fen=b.recovered_fen,
            payout_fen=b.amount_fen - b.recovered_fen, created_at=b.created_at))

    return c.db.run(run)


@router.get("/ledger/verify", response_model=LedgerVerifyOut, name="verify_ledger")
def verify_ledger(c: Ctx = Depends(ctx)) -> LedgerVerifyOut:
    """Check every ledger invariant and the voucher reconciliation (read-only)."""
    with c.db.snapshot() as s:  # one consistent moment, even while redemptions commit
        problems = verify(s)
    return LedgerVerifyOut(ok=not problems, problems=[
        LedgerProblem(check=p.check, subject=p.subject, detail=p.detail) for p in problems[:500]])
