"""Aggregates for analysts and administrators: counts and sums, never a row about a person."""

from __future__ import annotations

from fastapi import Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import StatusTotal, SummaryReport
from civicvoucher.auth import scope
from civicvoucher.ledger.models import Account
from civicvoucher.ledger.rules import AccountCode
from civicvoucher.members.models import Member
from civicvoucher.orgs.models import Org
from civicvoucher.vouchers.models import Redemption, Voucher
from civicvoucher.vouchers.rules import RedemptionStatus

router = make_router("/reports", "reports")


@router.get("/summary", response_model=SummaryReport, name="summary_report")
def summary_report(org_id: int | None = Query(None, ge=1, le=2_147_483_647),
                   c: Ctx = Depends(ctx)) -> SummaryReport:
    """Totals over an organisation's subtree: unions, members, funds, vouchers by status,
    redemptions and the order amounts they came with."""

    def run(s: Session) -> SummaryReport:
        root = scope.scoped_root(s, c.principal, org_id)
        inside = Org.path.startswith(root.path)
        unions = s.execute(select(func.count()).select_from(Org)
                           .where(inside, Org.level == "union")).scalar_one()
        members = s.execute(select(func.count()).select_from(Member)
                            .join(Org, Org.id == Member.union_id)
                            .where(inside, Member.status.in_(("active", "suspended")))
                            ).scalar_one()  # not rows left behind by leaving or a transfer
        fund = s.execute(select(func.coalesce(func.sum(Account.credits_posted
                                                       - Account.debits_posted), 0))
                         .join(Org, Org.id == Account.org_id)
                         .where(inside, Account.code == str(AccountCode.UNION_FUND))).scalar_one()
        by_status = s.execute(
            select(Voucher.status, func.count(), func.coalesce(func.sum(Voucher.amount_fen), 0))
            .join(Org, Org.id == Voucher.union_id).where(inside)
            .group_by(Voucher.status).order_by(Voucher.status)).all()
        n, paid, orders = s.execute(
            select(func.count(), func.coalesce(func.sum(Redemption.amount_fen), 0),
                   func.coalesce(func.sum(Redemption.order_amount_fen), 0))
            .join(Org, Org.id == Redemption.union_id)
            .where(inside, Redemption.status == RedemptionStatus.POSTED)).one()
        return SummaryReport(
            org_id=root.id, unions=unions, members=members, fund_balance_fen=int(fund),
            vouchers=[StatusTotal(status=st, vouchers=k, amount_fen=int(a))
                      for st, k, a in by_status],
            redemptions=n, redeemed_fen=int(paid), order_total_fen=int(orders))

    return c.db.run(run)
