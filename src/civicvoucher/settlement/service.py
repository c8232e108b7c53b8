"""Settlement: posted redemptions up to a cut-off become one payout batch per merchant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from civicvoucher.core import clock
from civicvoucher.db import is_postgres, once
from civicvoucher.errors import IdempotencyConflict
from civicvoucher.i18n import msg
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.models import Account
from civicvoucher.ledger.rules import AccountCode, TransferCode
from civicvoucher.settlement.models import SettlementBatch, SettlementRun
from civicvoucher.vouchers.models import Redemption
from civicvoucher.vouchers.redemption import payable_account, receivable_account
from civicvoucher.vouchers.rules import RedemptionStatus

R = Redemption.__table__


@dataclass(frozen=True)
class SettleResult:
    run: SettlementRun
    replayed: bool


def settle(session: Session, *, cutoff: datetime | None, idem_key: str,
           now: datetime | None = None) -> SettleResult:
    """Group every posted, unsettled redemption up to ``cutoff`` into one batch per merchant
    (merchant payable → settlement clearing). Redemptions are claimed by a conditional UPDATE,
    so two runs, or a run and a refund, never take the same redemption.

    What a merchant owes back (refunds of redemptions it was already paid for) is netted from
    its payout, up to the payout (settlement clearing → merchant receivable); the rest waits
    for its next batch.

    ``cutoff=None`` means now, decided by the first request with this key: a retry without
    a cutoff returns the first run, whenever it comes."""
    now = now or clock.now()

    def find() -> SettlementRun | None:
        found = session.execute(
            select(SettlementRun).where(SettlementRun.idem_key == idem_key)).scalar()
        if found is not None and cutoff is not None and found.cutoff != cutoff:
            raise IdempotencyConflict(msg("key {key} was used for another settlement run",
                                          key=idem_key))
        return found

    run, replayed = once(session, "settle", find, lambda: _settle(
        session, cutoff=now if cutoff is None else cutoff, idem_key=idem_key, now=now))
    return SettleResult(run, replayed)


def _settle(session: Session, *, cutoff: datetime, idem_key: str, now: datetime
            ) -> SettlementRun:
    run = SettlementRun(idem_key=idem_key, cutoff=cutoff, batches=0, redemptions=0,
                        amount_fen=0, created_at=now)
    session.add(run)
    session.flush()
    unsettled = (R.c.status == RedemptionStatus.POSTED, R.c.settlement_batch_id.is_(None),
                 R.c.posted_at <= cutoff)
    merchants = session.execute(
        select(R.c.merchant_id).where(*unsettled).distinct().order_by(R.c.merchant_id)
    ).scalars().all()
    if merchants:
        B = SettlementBatch.__table__
        session.execute(insert(B), [
            dict(run_id=run.id, merchant_id=m, amount_fen=0, redemption_count=0, transfer_id="",
                 created_at=now) for m in merchants])
        batch_of = dict(session.execute(
            select(B.c.merchant_id, B.c.id).where(B.c.run_id == run.id)).all())
        # Claim every unsettled redemption for its merchant's batch in one statement (an
        # UPDATE ... FROM join: a per-row subquery made this quadratic at full scale); a
        # concurrent run or refund that got there first simply leaves it out.
        claimed = session.execute(
            update(R).where(*unsettled, B.c.run_id == run.id, B.c.merchant_id == R.c.merchant_id)
            .values(settlement_batch_id=B.c.id)
            .returning(R.c.merchant_id, R.c.amount_fen)
        ).all()
        totals: dict[int, list[int]] = {}
        for merchant_id, amount in claimed:
            t = totals.setdefault(merchant_id, [0, 0])
            t[0] += amount
            t[1] += 1
        empty = [batch_of[m] for m in merchants if m not in totals]
        if empty:
            session.execute(delete(B).where(B.c.id.in_(empty)))
        owed = _owed_back(session, set(totals))
        recovered = {m: min(owed[m], totals[m][0]) for m in owed}
        if totals:
            session.execute(
                update(B).where(B.c.id == bindparam("bid")).values(
                    amount_fen=bindparam("amount"), redemption_count=bindparam("n"),
                    transfer_id=bindparam("tid"), recovered_fen=bindparam("rec")),
                [dict(bid=batch_of[m], amount=a, n=n, tid=f"settle:{batch_of[m]}",
                      rec=recovered.get(m, 0))
                 for m, (a, n) in sorted(totals.items())])
        # One clearing account per run: the payout file's total; the batches split it.
        clearing = ledger.account_id(session, AccountCode.SETTLEMENT_CLEARING, f"run{run.id}")
        ledger.post_batch(session, [
            ledger.TransferSpec(id=f"settle:{batch_of[m]}",
                                debit_account_id=payable_account(session, m),
                                credit_account_id=clearing, amount=a, code=TransferCode.SETTLE)
            for m, (a, _) in sorted(totals.items())], now=now)
        if recovered:
            ledger.post_batch(session, [
                ledger.TransferSpec(id=f"recover:{batch_of[m]}", debit_account_id=clearing,
                                    credit_account_id=receivable_account(session, m),
                                    amount=r, code=TransferCode.RECOVER)
                for m, r in sorted(recovered.items())], now=now)
        run.recovered_fen = sum(recovered.values())
        run.batches = len(totals)
        run.redemptions = len(claimed)
        run.amount_fen = sum(t[0] for t in totals.values())
    session.flush()
    return run


def _owed_back(session: Session, merchants: set[int]) -> dict[int, int]:
    """What each of ``merchants`` owes back; only merchants that owe are returned.

    Read after the claim: a concurrent run that claimed this merchant's redemptions first has
    committed by now (the claim waited for its row locks), so its recovery is seen. The row
    lock (PostgreSQL) keeps that true even for a run that claimed none of the same rows."""
    A = Account.__table__
    q = (select(A.c.merchant_id, A.c.debits_posted - A.c.credits_posted)
         .where(A.c.code == AccountCode.MERCHANT_RECEIVABLE,
                A.c.debits_posted > A.c.credits_posted)
         .order_by(A.c.id))
    if is_postgres(session):
        q = q.with_for_update()
    return {m: int(d) for m, d in session.execute(q).all() if m in merchants}


def batch_redemptions(session: Session, batch_id: int) -> list[Redemption]:
    return list(session.execute(
        select(Redemption).where(Redemption.settlement_batch_id == batch_id).order_by(Redemption.id)
    ).scalars())
