"""Spending: the cashier looks a voucher up, redeems it (scanned QR or typed code) and gets a
receipt; online orders hold, capture and void; refunds reverse a posted redemption."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api import qr
from civicvoucher.api.clientip import client_ip
from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import (
    CashierVoucherView,
    Receipt,
    RedeemIn,
    RefundIn,
    RefundOut,
    VoucherRef,
)
from civicvoucher.auth import ratelimit, scope
from civicvoucher.auth.ratelimit import bucket_key
from civicvoucher.errors import NotFound, ValidationError
from civicvoucher.i18n import N_, msg
from civicvoucher.merchants.service import find_merchant
from civicvoucher.orgs.models import Org
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import (
    capture,
    find_voucher,
    redeem,
    refund,
    spend_check,
    void,
)

router = make_router("/redemptions", "redemption")
vouchers = make_router("/vouchers", "redemption")
RedemptionId = Path(ge=1, le=2**53)


def receipt(r: Redemption) -> Receipt:
    from civicvoucher.core.clock import local_date  # the receipt's date is the local day

    return Receipt(
        receipt_id=f"R{local_date(r.created_at):%Y%m%d}-{r.id:08d}", id=r.id,
        merchant_id=r.merchant_id,
        union_id=r.union_id, program_id=r.program_id, channel=r.channel,
        order_amount_fen=r.order_amount_fen, amount_fen=r.amount_fen, status=r.status,
        hold_expires_at=r.hold_expires_at, created_at=r.created_at, posted_at=r.posted_at,
        settled=r.settlement_batch_id is not None)


def _code_buckets(c: Ctx) -> list[str]:
    """Count a typed code against the cashier and the terminal, which carry the load, and
    against the client's address, a backstop sized for a whole shop behind one NAT address
    (``code_per_ip``, ``CIVICVOUCHER_LIMIT_CODE_PER_IP``). The buckets that a wrong code
    counts a failure against are returned: the cashier's and the terminal's, never the
    address's, so one till's typos cannot lock its colleagues out."""
    lim, db = c.st.limits, c.db
    addr = ratelimit.address_key(client_ip(c.request))
    ratelimit.hit(db, bucket_key("code:ip", addr), limit=lim.code_per_ip, window=lim.window)
    buckets = [bucket_key("code:user", c.principal.user_id)]
    ratelimit.hit(db, buckets[0], limit=lim.code_per_user, window=lim.window)
    terminal = c.request.headers.get("x-terminal-id")
    if terminal:
        bucket = bucket_key("code:terminal", c.principal.merchant_id, terminal)
        ratelimit.hit(db, bucket, limit=lim.code_per_terminal, window=lim.window)
        buckets.append(bucket)
    return buckets


def _code_failed(c: Ctx, buckets: list[str]) -> None:
    lim = c.st.limits
    locked = [b for b in buckets if ratelimit.fail(c.db, b, threshold=lim.code_failures_to_lock,
                                                   lock_for=lim.lock_for, window=lim.window)]
    c.db.run(lambda s: c.audit(s, "voucher.code_unknown", outcome="refused",
                               detail={"locked": locked}))


def guarded(c: Ctx, ref: VoucherRef, fn, *, replay_key: str | None = None):
    """Run ``fn(session, voucher)`` for a scanned payload or a typed code (rate-limited).
    ``replay_key``: the service key of a redemption this request may be a retry of."""
    if (ref.payload is None) == (ref.code is None):
        raise ValidationError(N_("send either the scanned payload or the typed code"),
                              field="payload")
    buckets = _code_buckets(c) if ref.code is not None else []

    def run(s: Session):
        def replaying(v: Voucher) -> bool:
            return replay_key is not None and s.execute(select(Redemption.id).where(
                Redemption.idem_key == replay_key, Redemption.voucher_id == v.id)).first() is not None

        v = (qr.read_payload(s, c.st.qr_key, ref.payload, replaying=replaying)
             if ref.payload is not None else find_voucher(s, ref.code))  # type: ignore[arg-type]
        return fn(s, v)

    try:
        return c.db.run(run)
    except NotFound as exc:
        if buckets and exc.code == "voucher_not_found":
            _code_failed(c, buckets)
        raise


def own_merchant(s: Session, c: Ctx, merchant_id: int | None):
    mid = merchant_id or c.principal.merchant_id
    if mid is None:
        raise ValidationError(N_("say which merchant (merchant_id)"), field="merchant_id")
    return scope.require_merchant(c.principal, find_merchant(s, mid))


@vouchers.post("/lookup", response_model=CashierVoucherView, name="lookup_voucher")
def lookup_voucher(body: VoucherRef, c: Ctx = Depends(ctx)) -> CashierVoucherView:
    """What the cashier must know before redeeming: value, threshold, minimum order, window."""

    def show(s: Session, v: Voucher) -> CashierVoucherView:
        own_merchant(s, c, None)
        chk = spend_check(s, v)
        return CashierVoucherView(
            status=chk.status, amount_fen=chk.amount_fen, threshold_fen=chk.threshold_fen,
            min_order_fen=chk.min_order_fen, valid_from=chk.valid_from,
            expires_at=chk.expires_at, categories=sorted(chk.categories),
            channels=sorted(chk.channels), region_prefix=chk.region_prefix)

    return guarded(c, body, show)


@router.post("", response_model=Receipt, status_code=201, name="create_redemption")
def create_redemption(body: RedeemIn, c: Ctx = Depends(ctx)) -> Receipt:
    """Redeem a voucher for an order; the answer is the receipt. Exactly once per
    Idempotency-Key; a voucher is spent once whatever the keys."""

    def spend(s: Session, v: Voucher) -> Receipt:
        m = own_merchant(s, c, body.merchant_id)
        r = redeem(s, code=v.code, merchant_id=m.id, order_amount_fen=body.order_amount_fen,
                   channel=body.channel, hold=body.hold, idem_key=c.service_key("redeem"),
                   qr_exp=qr.payload_expiry(body.payload) if body.payload is not None else None)
        red = r.redemption
        if not r.replayed:
            c.audit(s, "redemption.create", target=f"redemption:{red.id}",
                    detail={"merchant_id": m.id, "amount_fen": red.amount_fen,
                            "order_amount_fen": red.order_amount_fen, "status": red.status,
                            "by": "code" if body.code else "qr"})
        return receipt(red)

    return guarded(c, body, spend, replay_key=c.service_key("redeem"))


@router.get("", response_model=Page[Receipt], name="list_redemptions")
def list_redemptions(merchant_id: int | None = Query(None, ge=1, le=2_147_483_647),
                     status: Literal["held", "posted", "voided", "refunded"] | None = None,
                     page: PageParams = Depends(page_params),
                     c: Ctx = Depends(ctx)) -> Page[Receipt]:
    def run(s: Session) -> Page[Receipt]:
        q = (select(Redemption).join(Org, Org.id == Redemption.union_id)
             .where(scope.redemption_condition(c.principal, Org.path, Redemption.merchant_id)))
        if merchant_id is not None:
            q = q.where(Redemption.merchant_id == merchant_id)
        if status:
            q = q.where(Redemption.status == status)
        return paginate(s, q, Redemption.id, page, receipt)

    return c.db.run(run)


def redemption_in_scope(s: Session, c: Ctx, redemption_id: int, *, moves_money: bool = False
                ) -> Redemption:
    red = s.get(Redemption, redemption_id)
    if red is None:
        raise NotFound(msg("no redemption {id}", id=redemption_id), code="redemption_not_found")
    scope.require_redemption(s, c.principal, red, moves_money=moves_money)
    return red


@router.get("/{redemption_id}", response_model=Receipt, name="get_redemption")
def get_redemption(redemption_id: int = RedemptionId, c: Ctx = Depends(ctx)) -> Receipt:
    return c.db.run(lambda s: receipt(redemption_in_scope(s, c, redemption_id)))


def _resolve(c: Ctx, redemption_id: int, fn, action: str) -> Receipt:
    def run(s: Session) -> Receipt:
        before = redemption_in_scope(s, c, redemption_id, moves_money=True).status
        red = fn(s, redemption_id=redemption_id)
        if red.status != before:
            c.audit(s, action, target=f"redemption:{red.id}", detail={"status": red.status})
        return receipt(red)

    return c.db.run(run)


@router.post("/{redemption_id}/capture", response_model=Receipt, name="capture_redemption")
def capture_redemption(redemption_id: int = RedemptionId, c: Ctx = Depends(ctx)) -> Receipt:
    """Post a held online order (before its hold times out)."""
    return _resolve(c, redemption_id, capture, "redemption.capture")


@router.post("/{redemption_id}/void", response_model=Receipt, name="void_redemption")
def void_redemption(redemption_id: int = RedemptionId, c: Ctx = Depends(ctx)) -> Receipt:
    """Release a held online order; the voucher can be spent again."""
    return _resolve(c, redemption_id, void, "redemption.void")


@router.post("/{redemption_id}/refund", response_model=RefundOut, status_code=201,
             name="refund_redemption")
def refund_redemption(body: RefundIn, redemption_id: int = RedemptionId,
                      c: Ctx = Depends(ctx)) -> RefundOut:
    """Reverse a posted redemption: the voucher is restored while still valid, else its value
    returns to the issuing union's fund. Once the merchant has been paid for it, the merchant
    owes it back and its next settlement keeps it from the payout."""

    def run(s: Session) -> RefundOut:
        # debits the merchant's payable (or, once settled, its receivable)
        redemption_in_scope(s, c, redemption_id, moves_money=True)
        r = refund(s, redemption_id=redemption_id, reason=body.reason,
                   idem_key=c.service_key("refund"))
        f = r.refund
        if not r.replayed:
            c.audit(s, "redemption.refund", target=f"redemption:{redemption_id}",
                    detail={"outcome": f.outcome, "amount_fen": f.amount_fen})
        return RefundOut(id=f.id, redemption_id=f.redemption_id, outcome=f.outcome,
                         amount_fen=f.amount_fen, created_at=f.created_at)

    return c.db.run(run)
