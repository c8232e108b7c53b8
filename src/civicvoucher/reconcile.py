"""``ledger verify``: the invariants that must hold after every operation.

1-3. the ledger's own (``civicvoucher.ledger.verify``): well-formed transfers, a balanced
   ledger, stored totals equal to the transfers, no never-negative account below zero;
4. the voucher rows reconcile with vouchers.outstanding per union and program, held vouchers
   with the pending debits, redemptions with merchant payables, and refunds of settled
   redemptions (less what settlements netted) with merchant receivables, never above zero;
5. each voucher agrees with its redemptions (a redeemed voucher has exactly one posted
   redemption of its own amount, a held one exactly one hold, any other none), and each
   settlement batch with its redemptions and its transfer.

This module sits above the domains (vouchers, settlement) and the ledger, so that the ledger
imports no domain. On PostgreSQL run it in one snapshot (``Database.snapshot()``): otherwise a
redemption that commits between two of these queries shows up as a false mismatch.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import String, case, cast, func, literal, select
from sqlalchemy.orm import Session

from civicvoucher.core.money import format_yuan
from civicvoucher.ledger.models import Transfer
from civicvoucher.ledger.rules import AccountCode
from civicvoucher.ledger.verify import Problem, load_accounts, verify_ledger
from civicvoucher.settlement.models import SettlementBatch
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.rules import RedemptionStatus, VoucherStatus

__all__ = ["Problem", "verify"]


def verify(session: Session) -> list[Problem]:
    """All problems found; an empty list means the books are sound."""
    accounts = load_accounts(session)
    problems = verify_ledger(session, accounts)
    problems += _reconcile_vouchers(session, accounts)
    problems += _voucher_redemptions(session)
    problems += _settlement_batches(session)
    return problems


def _voucher_redemptions(session: Session) -> list[Problem]:
    V, R = Voucher.__table__, Redemption.__table__
    posted = func.sum(case((R.c.status == RedemptionStatus.POSTED, 1), else_=0))
    held = func.sum(case((R.c.status == RedemptionStatus.HELD, 1), else_=0))
    wrong_amount = func.sum(case((R.c.amount_fen != V.c.amount_fen, 1),
                                 (R.c.union_id != V.c.union_id, 1),
                                 (R.c.program_id != V.c.program_id, 1), else_=0))
    rows = session.execute(
        select(V.c.id, V.c.status, posted, held, wrong_amount)
        .select_from(V.outerjoin(R, (R.c.voucher_id == V.c.id) & R.c.status.in_(
            [RedemptionStatus.POSTED, RedemptionStatus.HELD])))
        .group_by(V.c.id, V.c.status)
        .having(
            (posted != case((V.c.status == VoucherStatus.REDEEMED, 1), else_=0))
            | (held != case((V.c.status == VoucherStatus.HELD, 1), else_=0))
            | (wrong_amount > 0)
        ).limit(100)
    ).all()
    return [Problem("voucher", f"voucher {vid}",
                    f"is {status} with {p or 0} posted and {h or 0} held redemptions"
                    + (" of another amount, union or program" if w else ""))
            for vid, status, p, h, w in rows]


def _settlement_batches(session: Session) -> list[Problem]:
    B, R, T = SettlementBatch.__table__, Redemption.__table__, Transfer.__table__
    Rec = T.alias("recover")
    paid = select(R.c.settlement_batch_id.label("bid"), func.sum(R.c.amount_fen).label("amt"),
                  func.count().label("n")).group_by(R.c.settlement_batch_id).subquery()
    recover_id = literal("recover:").concat(cast(B.c.id, String))
    rows = session.execute(
        select(B.c.id, B.c.amount_fen, B.c.redemption_count, paid.c.amt, paid.c.n, T.c.amount,
               B.c.recovered_fen, Rec.c.amount)
        .select_from(B.outerjoin(paid, paid.c.bid == B.c.id)
                     .outerjoin(T, T.c.id == B.c.transfer_id)
                     .outerjoin(Rec, Rec.c.id == recover_id))
        .where((B.c.amount_fen != func.coalesce(paid.c.amt, 0))
               | (B.c.redemption_count != func.coalesce(paid.c.n, 0))
               | (B.c.amount_fen != func.coalesce(T.c.amount, -1))
               | (B.c.recovered_fen != func.coalesce(Rec.c.amount, 0))
               | (B.c.recovered_fen > B.c.amount_fen))
    ).all()
    return [Problem("settlement", f"batch {bid}",
                    f"says {format_yuan(amount)} in {count} redemptions, {format_yuan(rec)} recovered; its "
                    f"redemptions total {amt or 0} in {n or 0}, its transfer {t}, its "
                    f"recovery transfer {rt or 0}")
            for bid, amount, count, amt, n, t, rec, rt in rows]


def _reconcile_vouchers(session: Session, accounts: dict) -> list[Problem]:
    problems = []
    V, R = Voucher.__table__, Redemption.__table__
    live = session.execute(
        select(V.c.union_id, V.c.program_id,
               func.sum(V.c.amount_fen),
               func.sum(case((V.c.status == VoucherStatus.HELD, V.c.amount_fen), else_=0)))
        .where(V.c.status.in_([VoucherStatus.ISSUED, VoucherStatus.HELD]))
        .group_by(V.c.union_id, V.c.program_id)
    ).all()
    expected = {(u, p): (int(s), int(h)) for u, p, s, h in live}
    for a in accounts.values():
        if a.code != AccountCode.VOUCHERS_OUTSTANDING:
            continue
        have = (a.credits_posted - a.debits_posted, a.debits_pending)
        want = expected.pop((a.org_id, a.program_id), (0, 0))
        if have != want:
            problems.append(Problem(
                "vouchers", a.key,
                f"account holds {format_yuan(have[0])} ({format_yuan(have[1])} on hold), "
                f"unspent vouchers total {format_yuan(want[0])} ({format_yuan(want[1])} on hold)",
            ))
    for (u, p), (s, _) in expected.items():
        problems.append(Problem("vouchers", f"union {u} program {p}", f"{format_yuan(s)} of vouchers with no outstanding account"))

    owed = session.execute(
        select(R.c.merchant_id, func.sum(R.c.amount_fen))
        .where(R.c.status == RedemptionStatus.POSTED, R.c.settlement_batch_id.is_(None))
        .group_by(R.c.merchant_id)
    ).all()
    owed_by = {m: int(s) for m, s in owed}
    for a in accounts.values():
        if a.code != AccountCode.MERCHANT_PAYABLE:
            continue
        want = owed_by.pop(a.merchant_id, 0)
        if a.credits_posted - a.debits_posted != want:
            problems.append(Problem(
                "payable", a.key,
                f"account holds {format_yuan(a.credits_posted - a.debits_posted)}, unsettled redemptions {format_yuan(want)}",
            ))
    for m, s in owed_by.items():
        problems.append(Problem("payable", f"merchant {m}", f"{format_yuan(s)} unsettled with no payable account"))
    return problems + _receivables(session, accounts)


def _receivables(session: Session, accounts: dict) -> list[Problem]:
    """A merchant's receivable = what settlements netted - refunds of settled redemptions."""
    R, B = Redemption.__table__, SettlementBatch.__table__
    want: dict[int, int] = defaultdict(int)
    for m, s in session.execute(
        select(R.c.merchant_id, func.sum(R.c.amount_fen))
        .where(R.c.status == RedemptionStatus.REFUNDED, R.c.settlement_batch_id.is_not(None))
        .group_by(R.c.merchant_id)
    ).all():
        want[m] -= int(s)
    for m, s in session.execute(
        select(B.c.merchant_id, func.sum(B.c.recovered_fen)).group_by(B.c.merchant_id)
    ).all():
        want[m] += int(s or 0)
    problems = []
    for a in accounts.values():
        if a.code != AccountCode.MERCHANT_RECEIVABLE:
            continue
        have = a.credits_posted - a.debits_posted
        expected = want.pop(a.merchant_id, 0)
        if have != expected or have > 0:
            problems.append(Problem(
                "receivable", a.key,
                f"account holds {format_yuan(have)}; refunds after settlement less recoveries say "
                f"{format_yuan(expected)} (never above zero)"))
    for m, s in want.items():
        if s:
            problems.append(Problem("receivable", f"merchant {m}",
                                    f"{format_yuan(s)} owed back with no receivable account"))
    return problems
