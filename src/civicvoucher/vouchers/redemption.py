"""Spending a voucher: redeem, hold/capture/void for online orders, refund.

Exactly once under any concurrency: the voucher moves with one conditional UPDATE
(``... WHERE status = 'issued'``), and the caller's key is claimed by inserting the redemption
row, so a retried or duplicated request finds the first result instead of running again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from civicvoucher.core import clock, ids
from civicvoucher.core.money import fen
from civicvoucher.core.regions import region_prefix
from civicvoucher.db import once
from civicvoucher.errors import (
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    RedemptionNotRefundable,
    VoucherNotRedeemable,
)
from civicvoucher.funds.service import fund_account
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import AccountCode, TransferCode, TransferFlags
from civicvoucher.merchants.models import Merchant
from civicvoucher.programs.models import Product
from civicvoucher.programs.service import lock_program
from civicvoucher.vouchers.issuance import outstanding_account
from civicvoucher.vouchers.models import Extension, Redemption, Refund, Voucher
from civicvoucher.vouchers.rules import (
    RedemptionStatus,
    SpendCheck,
    VoucherStatus,
    check_redeemable,
    request_hash,
    status_error,
    transition,
)

V = Voucher.__table__
R = Redemption.__table__
DEFAULT_HOLD = timedelta(minutes=15)


@dataclass(frozen=True)
class RedeemResult:
    redemption: Redemption
    replayed: bool


def payable_account(session: Session, merchant_id: int) -> int:
    return ledger.account_id(session, AccountCode.MERCHANT_PAYABLE, merchant_id,
                             merchant_id=merchant_id)


def receivable_account(session: Session, merchant_id: int) -> int:
    """What the merchant owes back (refunds of redemptions it was already paid for)."""
    return ledger.account_id(session, AccountCode.MERCHANT_RECEIVABLE, merchant_id,
                             merchant_id=merchant_id)


def find_voucher(session: Session, code: str) -> Voucher:
    v = session.execute(select(Voucher).where(Voucher.code == ids.normalise_code(code))).scalar()
    if v is None:
        raise NotFound(N_("no voucher with this code"), code="voucher_not_found")
    return v


def spend_check(session: Session, v: Voucher) -> SpendCheck:
    """The voucher's spending rules, as a cashier would be shown them."""
    from civicvoucher.orgs.models import Org

    return spend_rules(v, session.get(Product, v.product_id), session.get(Org, v.union_id).region_code)


def spend_rules(v: Voucher, product: Product, union_region: str) -> SpendCheck:
    return SpendCheck(
        status=v.status, amount_fen=v.amount_fen, threshold_fen=v.threshold_fen,
        valid_from=v.valid_from, expires_at=v.expires_at, categories=frozenset(product.categories),
        channels=frozenset(product.channels),
        region_prefix=region_prefix(union_region, product.region_scope),
    )


def _replay(session: Session, idem_key: str, rh: str) -> Redemption | None:
    found = session.execute(select(Redemption).where(Redemption.idem_key == idem_key)).scalar()
    if found is not None and found.request_hash != rh:
        raise IdempotencyConflict(msg("key {key} was used for another redemption", key=idem_key))
    return found


def redeem(
    session: Session,
    *,
    code: str,
    merchant_id: int,
    order_amount_fen: int,
    idem_key: str,
    channel: str = "offline",
    hold: bool = False,
    hold_for: timedelta = DEFAULT_HOLD,
    qr_exp: int | None = None,
    now: datetime | None = None,
) -> RedeemResult:
    """Spend a voucher at a merchant for an order. ``hold=True`` (online orders) reserves it
    as a pending transfer until ``capture`` or ``void``; holds time out after ``hold_for``.
    ``qr_exp``: the voucher was presented as a QR payload with this expiry (epoch seconds);
    that payload is spent with it (``qr_already_used`` the next time)."""
    fen(order_amount_fen)
    now = now or clock.now()
    code = ids.normalise_code(code)
    rh = request_hash(code=code, merchant_id=merchant_id, order=order_amount_fen,
                      channel=channel, hold=hold)

    def spend() -> Redemption:
        v = find_voucher(session, code)
        merchant = session.get(Merchant, merchant_id)
        if merchant is None:
            raise NotFound(msg("no merchant {id}", id=merchant_id), code="merchant_not_found")
        if v.status == VoucherStatus.HELD and release_stale_holds(session, [v.id], now=now):
            session.refresh(v)
        check_redeemable(
            spend_check(session, v), merchant_status=merchant.status,
            merchant_category=merchant.category, merchant_county=merchant.county_code,
            merchant_channels=merchant.channel_set, channel=channel,
            order_amount_fen=order_amount_fen, now=now,
        )
        frm, to = transition(v.status, "hold" if hold else "redeem")
        transfer_id = f"redeem:{idem_key}"
        red = Redemption(
            idem_key=idem_key, request_hash=rh, voucher_id=v.id, merchant_id=merchant.id,
            union_id=v.union_id, program_id=v.program_id, channel=channel,
            order_amount_fen=order_amount_fen, amount_fen=v.amount_fen,
            status=RedemptionStatus.HELD if hold else RedemptionStatus.POSTED,
            transfer_id=transfer_id, hold_expires_at=now + hold_for if hold else None,
            created_at=now, posted_at=None if hold else now, region_code=v.region_code,
        )
        session.add(red)
        session.flush()  # claims the key: a concurrent duplicate waits here, then fails
        if qr_exp is not None:
            _spend_qr(session, v.id, qr_exp)
        moved = session.execute(
            update(V).where(V.c.id == v.id, V.c.status == frm).values(status=to)
        ).rowcount
        if moved != 1:
            current = session.execute(select(V.c.status).where(V.c.id == v.id)).scalar_one()
            raise status_error(current)
        ledger.post_transfer(
            session, id=transfer_id,
            debit_account_id=outstanding_account(session, v.union_id, v.program_id),
            credit_account_id=payable_account(session, merchant.id), amount=v.amount_fen,
            code=TransferCode.HOLD if hold else TransferCode.REDEEM,
            flags=TransferFlags.PENDING if hold else TransferFlags.NONE, now=now,
        )
        return red

    red, replayed = once(session, "redeem", lambda: _replay(session, idem_key, rh), spend)
    return RedeemResult(red, replayed)


def _spend_qr(session: Session, voucher_id: int, qr_exp: int) -> None:
    """A scanned QR payload is single-use: the voucher remembers the newest payload spent on
    it (by its expiry second), and a payload no newer than that is refused, so a payload used
    once cannot redeem the voucher again after a refund restores it, even inside its window."""
    moved = session.execute(
        update(V).where(V.c.id == voucher_id,
                        or_(V.c.qr_used_exp.is_(None), V.c.qr_used_exp < qr_exp))
        .values(qr_used_exp=qr_exp)
    ).rowcount
    if moved != 1:
        raise VoucherNotRedeemable(N_("this QR code was used already; ask the member to refresh it"),
                                   code="qr_already_used")


def _get_redemption(session: Session, redemption_id: int) -> Redemption:
    red = session.get(Redemption, redemption_id, populate_existing=True)
    if red is None:
        raise NotFound(msg("no redemption {id}", id=redemption_id), code="redemption_not_found")
    return red


def _resolve_hold(session: Session, red: Redemption, *, capture: bool, now: datetime) -> None:
    """Post or void a hold: the redemption, the voucher and the pending transfer move together
    or not at all (every conditional UPDATE must touch its row, or the transaction fails)."""
    new = RedemptionStatus.POSTED if capture else RedemptionStatus.VOIDED
    moved = session.execute(
        update(R).where(R.c.id == red.id, R.c.status == RedemptionStatus.HELD)
        .values(status=new, posted_at=now if capture else None)
    ).rowcount
    if moved != 1:
        raise InvalidTransition(msg("redemption {id} is no longer held", id=red.id),
                                code="hold_not_active")
    frm, to = transition(VoucherStatus.HELD, "capture" if capture else "void")
    moved = session.execute(
        update(V).where(V.c.id == red.voucher_id, V.c.status == frm).values(status=to)
    ).rowcount
    if moved != 1:
        raise InvalidTransition(msg("the voucher of redemption {id} is not held", id=red.id),
                                code="voucher_not_held")
    ledger.post_transfer(
        session, id=f"{'capture' if capture else 'void'}:{red.id}",
        debit_account_id=outstanding_account(session, red.union_id, red.program_id),
        credit_account_id=payable_account(session, red.merchant_id), amount=red.amount_fen,
        code=TransferCode.CAPTURE if capture else TransferCode.VOID,
        flags=TransferFlags.POST_PENDING if capture else TransferFlags.VOID_PENDING,
        pending_id=red.transfer_id, now=now,
    )
    session.expire(red)


def _resolve(session: Session, redemption_id: int, *, capture: bool, now: datetime
             ) -> Redemption:
    """Capture or void, idempotently: the state asked for is the first result, so a duplicate
    that finds it (before or after racing the first) returns it instead of failing."""
    done = RedemptionStatus.POSTED if capture else RedemptionStatus.VOIDED
    replay = (RedemptionStatus.POSTED, RedemptionStatus.REFUNDED) if capture else (done,)

    def find() -> Redemption | None:
        red = _get_redemption(session, redemption_id)
        return red if red.status in replay else None

    def work() -> Redemption:
        red = _get_redemption(session, redemption_id)
        if red.status != RedemptionStatus.HELD:
            raise InvalidTransition(msg("redemption {id} is {status}", id=red.id,
                                        status=Term(red.status, "redemption_status")),
                                    code="hold_not_active")
        if capture and red.hold_expires_at is not None and now >= red.hold_expires_at:
            raise InvalidTransition(msg("the hold expired at {at}",
                                        at=clock.format_local(red.hold_expires_at)),
                                    code="hold_expired")
        _resolve_hold(session, red, capture=capture, now=now)
        return red

    once(session, "capture" if capture else "void", find, work)
    return _get_redemption(session, redemption_id)


def capture(session: Session, *, redemption_id: int, now: datetime | None = None) -> Redemption:
    """Post a held online order. Capturing twice returns the posted redemption; a hold past
    its time cannot be captured (it is voided when its voucher is next presented, or by
    ``void_expired_holds`` in the expiry run)."""
    return _resolve(session, redemption_id, capture=True, now=now or clock.now())


def void(session: Session, *, redemption_id: int, now: datetime | None = None) -> Redemption:
    """Release a held online order; the voucher can be spent again. Voiding twice is harmless."""
    return _resolve(session, redemption_id, capture=False, now=now or clock.now())


def release_stale_holds(session: Session, voucher_ids: list[int], *, now: datetime) -> int:
    """Void the timed-out holds on these vouchers, so they can be spent again at once rather
    than at the next expiry run; returns how many."""
    return _void_stale(session, now, Redemption.voucher_id.in_(voucher_ids))


def void_expired_holds(session: Session, *, now: datetime | None = None) -> int:
    """Void every hold whose time is up; returns how many."""
    return _void_stale(session, now or clock.now())


def _void_stale(session: Session, now: datetime, *where) -> int:
    """Void timed-out holds, each in its own savepoint: one that someone else resolved
    meanwhile (a cashier's void, a redemption releasing it) is left to them, and one that
    fails part-way leaves nothing behind, while the others go on."""
    stale = session.execute(
        select(Redemption).where(
            *where, Redemption.status == RedemptionStatus.HELD, Redemption.hold_expires_at <= now,
        ).order_by(Redemption.id)
    ).scalars().all()
    released = 0
    for red in stale:
        savepoint = session.begin_nested()
        try:
            _resolve_hold(session, red, capture=False, now=now)
        except InvalidTransition:
            savepoint.rollback()
            continue
        savepoint.commit()
        released += 1
    return released


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    replayed: bool


def refund(
    session: Session,
    *,
    redemption_id: int,
    idem_key: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> RefundResult:
    """Reverse a posted redemption with a new transfer (never an edit).

    While the voucher is still valid it is restored and can be spent again; after its
    deadline the value goes back to the issuing union's fund. The money comes from the
    merchant's payable while the redemption is unsettled; once the merchant has been paid
    for it, from the merchant's receivable, which its next settlement nets from the payout.
    """
    now = now or clock.now()

    def find() -> Refund | None:
        found = session.execute(select(Refund).where(Refund.idem_key == idem_key)).scalar()
        if found is not None and found.redemption_id != redemption_id:
            raise IdempotencyConflict(msg("key {key} was used for another refund", key=idem_key))
        return found

    def work() -> Refund:
        red = _get_redemption(session, redemption_id)
        # Shared, like issuance: an extension (exclusive) either sees this voucher restored
        # or has committed before we read the extensions below.
        lock_program(session, red.program_id, exclusive=False)
        if red.status == RedemptionStatus.REFUNDED:
            raise RedemptionNotRefundable(N_("already refunded"), code="redemption_already_refunded")
        if red.status != RedemptionStatus.POSTED:
            raise RedemptionNotRefundable(msg("redemption is {status}",
                                              status=Term(red.status, "redemption_status")))
        # The claim re-reads the row: whether a settlement run took it meanwhile decides whose
        # account the money comes from.
        claimed = session.execute(
            update(R).where(R.c.id == red.id, R.c.status == RedemptionStatus.POSTED)
            .values(status=RedemptionStatus.REFUNDED).returning(R.c.settlement_batch_id)
        ).first()
        if claimed is None:
            raise RedemptionNotRefundable(N_("the redemption changed meanwhile; look again"))
        settled = claimed.settlement_batch_id is not None
        v = session.get(Voucher, red.voucher_id, populate_existing=True)
        # Extensions made while the voucher was spent passed it by: it comes back with the
        # deadline it would have had, had it never been spent.
        expires_at = current_deadline(session, v, spent_at=red.created_at)
        still_valid = now < expires_at
        frm, to = transition(v.status, "refund" if still_valid else "refund_after_expiry")
        moved = session.execute(
            update(V).where(V.c.id == v.id, V.c.status == frm)
            .values(status=to, expires_at=expires_at)
        ).rowcount
        if moved != 1:
            raise RedemptionNotRefundable(N_("the voucher changed meanwhile; look again"))
        credit = (outstanding_account(session, v.union_id, v.program_id) if still_valid
                  else fund_account(session, v.union_id))
        transfer_id = f"refund:{red.id}"
        ledger.post_transfer(
            session, id=transfer_id,
            debit_account_id=(receivable_account if settled else payable_account)(
                session, red.merchant_id),
            credit_account_id=credit, amount=red.amount_fen, code=TransferCode.REFUND, now=now,
        )
        rf = Refund(idem_key=idem_key, redemption_id=red.id, outcome="restored" if still_valid
                    else "to_fund", amount_fen=red.amount_fen, transfer_id=transfer_id,
                    reason=reason, created_at=now)
        session.add(rf)
        session.flush()
        return rf

    rf, replayed = once(session, "refund", find, work)
    return RefundResult(rf, replayed)


def current_deadline(session: Session, v: Voucher, *, spent_at: datetime) -> datetime:
    """The deadline the voucher would have now had it never been spent: each extension made
    since it was spent (``spent_at``; earlier ones moved it already, or were made before it
    existed) that covers it, in the order they were made, moves it if it was still running
    at the time (an extension never revives a voucher whose deadline had passed)."""
    deadline = v.expires_at
    for e in session.execute(
            select(Extension).where(Extension.program_id == v.program_id,
                                    Extension.created_at >= spent_at,
                                    Extension.new_expires_at > v.expires_at)
            .order_by(Extension.created_at, Extension.id)).scalars():
        if extension_covers(e, v) and e.created_at < deadline < e.new_expires_at:
            deadline = e.new_expires_at
    return deadline


def extension_covers(e: Extension, v: Voucher) -> bool:
    """Would extension ``e`` move voucher ``v`` (its product, union, region and form filters)?"""
    scope = e.scope or {}
    return ((e.product_id is None or e.product_id == v.product_id)
            and (not scope.get("union_ids") or v.union_id in scope["union_ids"])
            and (not scope.get("region_prefix")
                 or v.region_code.startswith(scope["region_prefix"]))
            and (not scope.get("form") or v.form == scope["form"]))


def redemption_by_key(session: Session, idem_key: str) -> Redemption:
    red = session.execute(select(Redemption).where(Redemption.idem_key == idem_key)).scalar()
    if red is None:
        raise NotFound(msg("no redemption with key {key}", key=idem_key),
                       code="redemption_not_found")
    return red
