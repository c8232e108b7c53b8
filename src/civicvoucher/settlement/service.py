"""Settlement: posted redemptions up to a cut-off become one payout batch per merchant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.errors import IdempotencyConflict
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import AccountCode, TransferCode
from civicvoucher.settlement.models import SettlementBatch, SettlementRun
from civicvoucher.vouchers.models import Redemption
from civicvoucher.vouchers.redemption import payable_account
from civicvoucher.vouchers.rules import RedemptionStatus

R = Redemption.__table__


@dataclass(frozen=True)
class SettleResult:
    run: SettlementRun
    replayed: bool


def settle(session: Session, *, cutoff: datetime, idem_key: str,
           now: datetime | None = None) -> SettleResult:
    """Group every posted, unsettled redemption up to ``cutoff`` into one batch per merchant
    (merchant payable → settlement clearing). Redemptions are claimed by a conditional UPDATE,
    so two runs, or a run and a refund, never take the same redemption."""
    now = now or clock.now()
    found = session.execute(select(SettlementRun).where(SettlementRun.idem_key == idem_key)).scalar()
    if found is not None:
        if found.cutoff != cutoff:
            raise IdempotencyConflict(f"key {idem_key} was used for another settlement run")
        return SettleResult(found, True)
    run = SettlementRun(idem_key=idem_key, cutoff=cutoff, batches=0, redemptions=0,
                        amount_fen=0, created_at=now)
    session.add(run)
    session.flush()
    unsettled = (R.c.status == RedemptionStatus.POSTED, R.c.settlement_batch_id.is_(None),
                 R.c.posted_at <= cutoff)
    merchants = session.execute(
        select(R.c.merchant_id).where(*unsettled).distinct().order_by(R.c.merchant_id)
    ).scalars().all()
    for merchant_id in merchants:
        batch = SettlementBatch(run_id=run.id, merchant_id=merchant_id, amount_fen=0,
                                redemption_count=0, transfer_id="", created_at=now)
        session.add(batch)
        session.flush()
        claimed = session.execute(
            update(R).where(R.c.merchant_id == merchant_id, *unsettled)
            .values(settlement_batch_id=batch.id).returning(R.c.amount_fen)
        ).scalars().all()
        if not claimed:  # a concurrent run or refund took them first
            session.expunge(batch)
            session.execute(delete(SettlementBatch).where(SettlementBatch.id == batch.id))
            continue
        batch.amount_fen, batch.redemption_count = sum(claimed), len(claimed)
        batch.transfer_id = f"settle:{batch.id}"
        clearing = ledger.account_id(session, AccountCode.SETTLEMENT_CLEARING, batch.id)
        ledger.post_transfer(
            session, id=batch.transfer_id, debit_account_id=payable_account(session, merchant_id),
            credit_account_id=clearing, amount=batch.amount_fen, code=TransferCode.SETTLE, now=now,
        )
        run.batches += 1
        run.redemptions += len(claimed)
        run.amount_fen += batch.amount_fen
    session.flush()
    return SettleResult(run, False)


def batch_redemptions(session: Session, batch_id: int) -> list[Redemption]:
    return list(session.execute(
        select(Redemption).where(Redemption.settlement_batch_id == batch_id).order_by(Redemption.id)
    ).scalars())
