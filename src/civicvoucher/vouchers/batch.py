"""Bulk redemption: a channel's daily use-flow file, or the simulator's spending, in batches.

Same rules, same exactly-once guard as ``redeem``; only the transaction and the ledger
transfers are shared by the batch.
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
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import TransferCode
from civicvoucher.merchants.models import Merchant
from civicvoucher.vouchers.issuance import outstanding_account
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.redemption import payable_account, spend_check
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
    the simulator). Every request passes the same ``check_redeemable`` as ``redeem`` and
    moves its voucher with the same conditional UPDATE; the ledger gets one transfer per
    (union, program, merchant) in the batch instead of one per voucher."""
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
        if r.idem_key in seen:
            if seen[r.idem_key] != hashes[i]:
                raise IdempotencyConflict(f"key {r.idem_key} was used for another redemption")
            replayed += 1
        else:
            todo.append(i)
    codes = [ids.normalise_code(requests[i].code) for i in todo]
    vouchers = {v.code: v for v in session.execute(
        select(Voucher).where(Voucher.code.in_(codes))).scalars()}
    checks: dict[int, SpendCheck] = {}
    merchants: dict[int, Merchant | None] = {}
    ok: dict[int, int] = {}  # voucher id -> request index
    for i, code in zip(todo, codes, strict=True):
        r, v = requests[i], vouchers.get(code)
        if v is None:
            refused.append((i, "voucher_not_found"))
            continue
        if r.merchant_id not in merchants:
            merchants[r.merchant_id] = session.get(Merchant, r.merchant_id)
        m = merchants[r.merchant_id]
        if m is None:
            refused.append((i, "merchant_not_found"))
            continue
        if v.id not in checks:
            checks[v.id] = spend_check(session, v)
        try:
            if v.id in ok:
                raise status_error(VoucherStatus.REDEEMED)
            check_redeemable(checks[v.id], merchant_status=m.status,
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
    groups: dict[tuple[int, int, int], int] = {}
    rows = []
    at = db_datetime(session, now)
    for vid in sorted(moved):
        i, v = ok[vid], by_id[vid]
        r = requests[i]
        group = (v.union_id, v.program_id, r.merchant_id)
        groups[group] = groups.get(group, 0) + v.amount_fen
        rows.append((r.idem_key, hashes[i], v.id, r.merchant_id, v.union_id, v.program_id,
                     r.channel, r.order_amount_fen, v.amount_fen, RedemptionStatus.POSTED.value,
                     _batch_transfer_id(batch_key, group), at, at, v.region_code))
    bulk_insert(session, "redemption", REDEMPTION_COLUMNS, rows)
    for group, amount in sorted(groups.items()):
        union_id, program_id, merchant_id = group
        ledger.post_transfer(
            session, id=_batch_transfer_id(batch_key, group),
            debit_account_id=outstanding_account(session, union_id, program_id),
            credit_account_id=payable_account(session, merchant_id), amount=amount,
            code=TransferCode.REDEEM, now=now, memo=f"batch {batch_key}",
        )
    return BatchResult(redeemed=len(moved), replayed=replayed, refused=sorted(refused))


REDEMPTION_COLUMNS = (
    "idem_key", "request_hash", "voucher_id", "merchant_id", "union_id", "program_id", "channel",
    "order_amount_fen", "amount_fen", "status", "transfer_id", "created_at", "posted_at",
    "region_code",
)


def _batch_transfer_id(batch_key: str, group: tuple[int, int, int]) -> str:
    return f"redeem-batch:{batch_key}:{group[0]}:{group[1]}:{group[2]}"
