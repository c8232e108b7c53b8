"""The cashier's phone page (``/c``): enter a voucher (camera scan or typed), see what it is
worth and whether it can be spent here, type the order amount, confirm, show the receipt;
today's redemptions and totals; the merchant's settlement statements (merchant admins).

Nothing here decides a rule. The preview asks ``vouchers.rules.check_redeemable`` (the check
``redeem`` makes) with the voucher's own minimum order, and the confirmation calls the API's
``create_redemption`` handler itself (the same ``redeem`` service, the same scope, the same
audit entry, the same QR handling and rate limits on typed codes), with the page's idempotency
key: one key per attempt, drawn when the voucher is previewed and kept in a hidden field, so a
double tap or a retry after a flaky network replays the first receipt.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import pydantic
from fastapi import APIRouter, Depends, Form, Path
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from civicvoucher import i18n
from civicvoucher.api import qr
from civicvoucher.api.routers import redemptions as api_redemptions
from civicvoucher.api.schemas import Receipt, RedeemIn, VoucherRef
from civicvoucher.auth import scope
from civicvoucher.console import nav
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.core import clock
from civicvoucher.core.money import yuan_to_fen
from civicvoucher.errors import CivicVoucherError, ValidationError, VoucherNotRedeemable
from civicvoucher.i18n import N_
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product
from civicvoucher.settlement.models import SettlementBatch, SettlementRun
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import spend_check
from civicvoucher.vouchers.rules import RedemptionStatus, SpendCheck, check_redeemable

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
nav.register(nav.Link("console_cashier", "/c", N_("Cashier"), phone=True))
nav.register(nav.Link("console_cashier_settlement", "/c/settlement", N_("Settlement"),
                      phone=True))

TEMPLATE = "cashier/index.html.j2"
KEY_RE = re.compile(r"^[A-Za-z0-9-]{16,64}$")
PAYLOAD_PREFIXES = (qr.PREFIX + ".", qr.HANDOUT_PREFIX + ".")
TODAY_ROWS = 200


# --------------------------------------------------------------------------- reading input


def voucher_ref(text: str) -> VoucherRef:
    """What the cashier entered, as the API takes it: a scanned payload (``cv1.…``, or a
    hand-out claim the lookup refuses with its own reason) or a typed code."""
    text = (text or "").strip()
    if not text:
        raise ValidationError(N_("scan the voucher's QR code or type its code"),
                              field="voucher", code="voucher_missing")
    try:
        if text.startswith(PAYLOAD_PREFIXES):
            return VoucherRef(payload=text)
        return VoucherRef(code=text)
    except pydantic.ValidationError:
        raise ValidationError(N_("not a voucher code or QR code"), field="voucher",
                              code="voucher_not_found") from None


def order_fen(text: str) -> int:
    try:
        amount = yuan_to_fen(text or "")
    except ValueError as exc:
        raise ValidationError(exc.args[0], field="order_amount",
                              code="order_amount_invalid") from None
    if amount <= 0:
        raise ValidationError(N_("type the order amount in yuan, e.g. 120 or 120.50"),
                              field="order_amount", code="order_amount_invalid")
    return amount


def page_key(text: str | None) -> str:
    if text and KEY_RE.fullmatch(text):
        return text
    raise ValidationError(N_("the page's attempt key is missing: enter the voucher again"),
                          field="idempotency_key", code="idempotency_key_missing")


# --------------------------------------------------------------------------- the preview


@dataclass(frozen=True)
class Preview:
    """A voucher as the cashier sees it before confirming: its value and rules, and whether
    this merchant may take it (``refusal``: why not, from the same check ``redeem`` makes)."""

    rules: SpendCheck
    product: str
    form: str
    merchant_category: str
    merchant_county: str
    refusal: VoucherNotRedeemable | None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def preview(session: Session, v: Voucher, merchant: Merchant, *, channel: str = "offline",
            now: datetime | None = None) -> Preview:
    """Read-only: ``check_redeemable`` as ``redeem`` calls it, for an order of exactly the
    voucher's minimum (so only the voucher's own rules and this merchant can refuse it)."""
    rules = spend_check(session, v)
    refusal = None
    try:
        check_redeemable(rules, merchant_status=merchant.status,
                         merchant_category=merchant.category,
                         merchant_county=merchant.county_code,
                         merchant_channels=merchant.channel_set, channel=channel,
                         order_amount_fen=rules.min_order_fen, now=now or clock.now())
    except VoucherNotRedeemable as exc:
        refusal = exc
    product = session.get(Product, v.product_id)
    return Preview(rules, product.name if product else "", v.form, merchant.category,
                   merchant.county_code, refusal)


# --------------------------------------------------------------------------- today, statements


@dataclass(frozen=True)
class Today:
    rows: list[tuple[Receipt, str]]  # (receipt, status)
    count: int
    amount_fen: int
    order_fen: int
    held: int
    day: object


def today(session: Session, c: PageCtx, merchant: Merchant) -> Today:
    """The merchant's redemptions of the local day, newest first, and the day's totals
    (posted ones: what the merchant will be paid for)."""
    day = clock.local_date(clock.now())
    start, end = clock.start_of_day(day), clock.end_of_day(day)
    where = (scope.redemption_condition(c.principal, Org.path, Redemption.merchant_id),
             Redemption.merchant_id == merchant.id, Redemption.created_at >= start,
             Redemption.created_at < end)
    rows = session.execute(select(Redemption).join(Org, Org.id == Redemption.union_id)
                           .where(*where).order_by(Redemption.id.desc())
                           .limit(TODAY_ROWS)).scalars().all()
    totals = session.execute(
        select(Redemption.status, func.count(), func.coalesce(func.sum(Redemption.amount_fen), 0),
               func.coalesce(func.sum(Redemption.order_amount_fen), 0))
        .join(Org, Org.id == Redemption.union_id).where(*where)
        .group_by(Redemption.status)).all()
    by = {t[0]: t for t in totals}
    posted = by.get(RedemptionStatus.POSTED.value, (None, 0, 0, 0))
    held = by.get(RedemptionStatus.HELD.value, (None, 0, 0, 0))
    return Today([(api_redemptions.receipt(r), r.status) for r in rows], int(posted[1]),
                 int(posted[2]), int(posted[3]), int(held[1]), day)


def statements(session: Session, c: PageCtx, merchant: Merchant) -> dict:
    """The merchant's payout batches (as ``GET /settlement-batches`` scopes them), newest
    first, with their runs' cutoffs, and what is posted but not yet settled."""
    B = SettlementBatch
    rows = session.execute(
        select(B, SettlementRun.cutoff).join(SettlementRun, SettlementRun.id == B.run_id)
        .join(Merchant, Merchant.id == B.merchant_id)
        .where(scope.merchant_condition(c.principal, Merchant.id, Merchant.county_code),
               B.merchant_id == merchant.id)
        .order_by(B.id.desc()).limit(100)).all()
    pending = session.execute(
        select(func.count(), func.coalesce(func.sum(Redemption.amount_fen), 0))
        .where(Redemption.merchant_id == merchant.id,
               Redemption.status == RedemptionStatus.POSTED.value,
               Redemption.settlement_batch_id.is_(None))).one()
    return {"batches": [{"id": b.id, "run_id": b.run_id, "cutoff": cutoff,
                         "redemptions": b.redemption_count, "amount_fen": b.amount_fen,
                         "recovered_fen": b.recovered_fen,
                         "payout_fen": b.amount_fen - b.recovered_fen,
                         "created_at": b.created_at} for b, cutoff in rows],
            "pending_count": int(pending[0]), "pending_fen": int(pending[1])}


# --------------------------------------------------------------------------- pages


def _merchant(s: Session, c: PageCtx) -> Merchant:
    return api_redemptions.own_merchant(s, c, None)  # the API's: the caller's own, in scope


def _page(c: PageCtx, *, status: int = 200, **context) -> Response:
    def run(s: Session):
        m = _merchant(s, c)
        return m.name, today(s, c, m)

    name, day = c.db.run(run)
    context.setdefault("preview", None)
    context.setdefault("receipt", None)
    context.setdefault("error", None)
    context.setdefault("error_code", None)
    context.setdefault("error_field", None)
    context.setdefault("voucher", "")
    context.setdefault("order_amount", "")
    context.setdefault("key", "")
    context.setdefault("new", False)
    return render(c.request, TEMPLATE, status_code=status, title=N_("Cashier"), merchant=name,
                  today=day, **context)


def _error(c: PageCtx, exc: CivicVoucherError) -> dict:
    return {"error": exc.localized(c.lang), "error_code": exc.code,
            "error_field": getattr(exc, "field", None)}


@router.get("/c", name="console_cashier")
def cashier_page(c: PageCtx = Depends(page_ctx)) -> Response:
    return _page(c)


def _preview(c: PageCtx, ref: VoucherRef) -> Preview:
    def show(s: Session, v: Voucher) -> Preview:
        return preview(s, v, _merchant(s, c))

    return api_redemptions.guarded(c, ref, show)


@router.post("/c/preview", name="console_cashier_preview")
def cashier_preview(voucher: str = Form("", max_length=200),
                    c: PageCtx = Depends(page_ctx)) -> Response:
    """Look the voucher up (changes nothing) and draw this attempt's key."""
    try:
        pv = _preview(c, voucher_ref(voucher))
    except CivicVoucherError as exc:
        return _page(c, status=exc.http_status, voucher=voucher, **_error(c, exc))
    return _page(c, preview=pv, voucher=voucher.strip(), key=str(uuid.uuid4()))


@router.post("/c/redeem", name="console_cashier_redeem")
def cashier_redeem(voucher: str = Form("", max_length=200),
                   order_amount: str = Form("", max_length=40),
                   idempotency_key: str = Form("", max_length=100),
                   c: PageCtx = Depends(page_ctx)) -> Response:
    """Redeem through the API's own handler, exactly once per attempt key."""
    voucher = voucher.strip()
    try:
        ref = voucher_ref(voucher)
        key = page_key(idempotency_key)
    except CivicVoucherError as exc:
        return _page(c, status=exc.http_status, voucher=voucher, **_error(c, exc))
    try:
        amount = order_fen(order_amount)
        c.request.state.idempotency_key = key  # c.service_key derives the service's key
        body = RedeemIn(payload=ref.payload, code=ref.code, order_amount_fen=amount)
        out = api_redemptions.create_redemption(body, c)
    except CivicVoucherError as exc:
        pv = None
        if isinstance(exc, VoucherNotRedeemable) or getattr(exc, "field", None) == \
                "order_amount":  # the voucher again, with why it was refused, the same key
            try:
                pv = _preview(c, ref)
            except CivicVoucherError:
                pv = None
        return _page(c, status=exc.http_status, preview=pv, voucher=voucher,
                     order_amount=order_amount, key=key, **_error(c, exc))
    # the receipt at its own address: a reload or the language switch shows it, never resends
    return RedirectResponse(f"/c/receipts/{out.id}?new=1", status_code=303)


@router.get("/c/preview", name="console_cashier_back")
@router.get("/c/redeem", name="console_cashier_back")
def cashier_back() -> Response:
    """A form's address opened as a page (the language switch, a bookmark): the page."""
    return RedirectResponse("/c", status_code=303)


def _receipt_view(c: PageCtx, r: Receipt) -> dict:
    name = c.db.run(lambda s: _merchant(s, c).name)
    return {"r": r, "merchant": name}


@router.get("/c/receipts/{redemption_id}", name="console_cashier_receipt")
def cashier_receipt(redemption_id: int = Path(ge=1, le=2**53), new: bool = False,
                    c: PageCtx = Depends(page_ctx)) -> Response:
    """One receipt of this merchant's (another merchant's is refused as the API refuses it)."""
    r = c.db.run(lambda s: api_redemptions.receipt(
        api_redemptions.redemption_in_scope(s, c, redemption_id)))
    return _page(c, receipt=_receipt_view(c, r), new=new)


@router.get("/c/settlement", name="console_cashier_settlement")
def cashier_settlement(c: PageCtx = Depends(page_ctx)) -> Response:
    def run(s: Session):
        m = _merchant(s, c)
        return m.name, statements(s, c, m)

    name, st = c.db.run(run)
    return render(c.request, "cashier/settlement.html.j2", title=N_("Settlement"),
                  merchant=name, **st)


__all__ = ["i18n", "preview", "router", "voucher_ref"]
