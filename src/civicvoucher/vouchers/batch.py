"""Bulk redemption: a channel's daily use-flow file, or the simulator's spending, in batches.

Same rules, same exactly-once guard and one transfer per voucher as ``redeem``; only the
transaction and the SQL statements are shared by the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock, ids
from civicvoucher.core.money import fen
from civicvoucher.errors import IdempotencyConflict, VoucherNotRedeemable
from civicvoucher.i18n import msg
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import TransferCode
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product
from civicvoucher.vouchers.issuance import outstanding_account
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import payable_account, release_stale_holds, spend_rules
from civicvoucher.vouchers.rules import (
    RedemptionStatus,
    VoucherStatus,
    check_redeemable,
    request_hash,
    status_error,
    transition,
)

V = Voucher.__table__
R = Redemption.__table__


@dataclass(frozen=True)
class SpendRequest:
    code: str
    merchant_id: int
    order_amount_fen: int
    idem_key: str
    channel: str = "offline"


@dataclass(frozen=True)
class BatchResult:
    redeemed: int
    replayed: int
    refused: list[tuple[int, str]]  # (index in the batch, error code)


def redeem_batch(session: Session, *, requests: list[SpendRequest], batch_key: str,
                 now: datetime | None = None) -> BatchResult:
    """Many redemptions in one transaction, for bulk feeds (a channel's daily use-flow file,
    the simulator). Every request passes the same ``check_redeemable`` as ``redeem``, moves
    its voucher with the same conditional UPDATE and gets its own ledger transfer, named as
    ``redeem`` names it; only the statements are shared (``ledger.post_batch``)."""
    now = now or clock.now()
    hashes = [request_hash(code=ids.normalise_code(r.code), merchant_id=r.merchant_id,
                           order=r.order_amount_fen, channel=r.channel, hold=False)
              for r in requests]
    seen = dict(session.execute(
        select(R.c.idem_key, R.c.request_hash).where(R.c.idem_key.in_([r.idem_key for r in requests]))
    ).all())
    refused: list[tuple[int, str]] = []
    replayed = 0
    todo: list[int] = []
    for i, r in enumerate(requests):
        fen(r.order_amount_fen)
        if r.idem_key in seen:  # sent before, or earlier in this very feed
            if seen[r.idem_key] != hashes[i]:
                raise IdempotencyConflict(msg("key {key} was used for another redemption",
                                              key=r.idem_key))
            replayed += 1
        else:
            seen[r.idem_key] = hashes[i]
            todo.append(i)
    codes = [ids.normalise_code(requests[i].code) for i in todo]
    vouchers = {v.code: v for v in session.execute(
        select(Voucher).where(Voucher.code.in_(codes))).scalars()}
    held = [v.id for v in vouchers.values() if v.status == VoucherStatus.HELD]
    if held and release_stale_holds(session, held, now=now):
        vouchers = {v.code: v for v in session.execute(
            select(Voucher).where(Voucher.code.in_(codes))
            .execution_options(populate_existing=True)).scalars()}
    products = {p.id: p for p in session.execute(select(Product).where(
        Product.id.in_({v.product_id for v in vouchers.values()}))).scalars()}
    regions = dict(session.execute(select(Org.id, Org.region_code).where(
        Org.id.in_({v.union_id for v in vouchers.values()}))).all())
    merchants = {m.id: m for m in session.execute(select(Merchant).where(
        Merchant.id.in_({requests[i].merchant_id for i in todo}))).scalars()}
    ok: dict[int, int] = {}  # voucher id -> request index
    for i, code in zip(todo, codes, strict=True):
        r, v = requests[i], vouchers.get(code)
        if v is None:
            refused.append((i, "voucher_not_found"))
            continue
        m = merchants.get(r.merchant_id)
        if m is None:
            refused.append((i, "merchant_not_found"))
            continue
        try:
            if v.id in ok:
                raise status_error(VoucherStatus.REDEEMED)
            rules = spend_rules(v, products[v.product_id], regions[v.union_id])
            check_redeemable(rules, merchant_status=m.status,
                             merchant_category=m.category, merchant_county=m.county_code,
                             merchant_channels=m.channel_set, channel=r.channel,
                             order_amount_fen=r.order_amount_fen, now=now)
        except VoucherNotRedeemable as exc:
            refused.append((i, exc.code))
            continue
        ok[v.id] = i
    frm, to = transition(VoucherStatus.ISSUED, "redeem")
    moved = set(session.execute(
        update(V).where(V.c.id.in_(list(ok)), V.c.status == frm).values(status=to)
        .returning(V.c.id)
    ).scalars()) if ok else set()
    refused += [(i, "voucher_already_redeemed") for vid, i in ok.items() if vid not in moved]
    by_id = {v.id: v for v in vouchers.values()}
    at = db_datetime(session, now)
    rows, transfers = [], []
    for vid in sorted(moved):
        i, v = ok[vid], by_id[vid]
        r = requests[i]
        transfer_id = f"redeem:{r.idem_key}"  # as redeem() names it: one transfer per voucher
        rows.append((r.idem_key, hashes[i], v.id, r.merchant_id, v.union_id, v.program_id,
                     r.channel, r.order_amount_fen, v.amount_fen, RedemptionStatus.POSTED.value,
                     transfer_id, at, at, v.region_code))
        transfers.append(ledger.TransferSpec(
            id=transfer_id, debit_account_id=outstanding_account(session, v.union_id, v.program_id),
            credit_account_id=payable_account(session, r.merchant_id), amount=v.amount_fen,
            code=TransferCode.REDEEM, memo=f"batch {batch_key}"))
    bulk_insert(session, "redemption", REDEMPTION_COLUMNS, rows)
    ledger.post_batch(session, transfers, now=now)
    return BatchResult(redeemed=len(moved), replayed=replayed, refused=sorted(refused))


REDEMPTION_COLUMNS = (
    "idem_key", "request_hash", "voucher_id", "merchant_id", "union_id", "program_id", "channel",
    "order_amount_fen", "amount_fen", "status", "transfer_id", "created_at", "posted_at",
    "region_code",
)
