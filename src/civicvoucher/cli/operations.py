"""fund / program / issue / redeem / hold / capture / void / refund / expire / extend / settle."""

from __future__ import annotations

from pathlib import Path

import typer

from civicvoucher.cli.common import (
    audit,
    cli_actor,
    console,
    database,
    key_or_new,
    parse_deadline,
    parse_when,
    parse_yuan,
    run_audited,
)
from civicvoucher.core.clock import format_local
from civicvoucher.core.money import format_cn, format_yuan

fund_app = typer.Typer(help="Union fund accounts.", no_args_is_help=True)
program_app = typer.Typer(help="Programs and their voucher products.", no_args_is_help=True)

KEY = typer.Option(None, "--key", help="idempotency key: a retry with the same key does nothing new")
DECIDE_KEY = typer.Option(None, "--key", help="accepted like every command's key; a decision "
                          "is idempotent by the request's state: deciding again, with any key, "
                          "changes nothing")


@fund_app.command("deposit")
def fund_deposit(
    org: str = typer.Argument(..., help="division code, USCC or id"),
    amount: str = typer.Argument(..., help="yuan, e.g. 150000 or 1,234.50"),
    source: str = typer.Option("dues", help="dues, fiscal, or transfer (from a federation)"),
    from_org: str = typer.Option(None, "--from", help="the paying federation, for a transfer"),
    key: str = KEY,
) -> None:
    """Deposit into an organisation's fund. Fiscal money, transfers and dues above
    CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE yuan (default 100,000) become a request that another
    person approves (fund approve); nothing moves until then."""
    from civicvoucher.funds.approvals import REASON_ZH, request_deposit
    from civicvoucher.funds.service import Deposit
    from civicvoucher.orgs.service import find_org

    k = key_or_new(key, "deposit")
    with database().session() as s:
        payer = find_org(s, from_org).id if from_org else None
        org_id = find_org(s, org).id

    def work(s):
        r = request_deposit(s, org_id=org_id, amount_fen=parse_yuan(amount, "amount"),
                            source=source, from_org_id=payer, idem_key=k, maker=operator())
        if r.replayed:
            return r
        if isinstance(r, Deposit):
            audit(s, "fund.deposit", f"org:{r.org_id}",
                  {"amount_fen": r.amount_fen, "source": r.source, "from_org_id": payer,
                   "transfer_id": r.transfer_id})
        else:
            q = r.request
            audit(s, "fund.deposit.request", f"deposit_request:{q.id}",
                  {"org_id": q.org_id, "amount_fen": q.amount_fen, "source": q.source,
                   "from_org_id": q.from_org_id, "reason": q.reason})
        return r

    r = database().run(work)
    note = " (replayed: nothing new)" if r.replayed else ""
    if isinstance(r, Deposit):
        console.print(f"deposited {format_yuan(r.amount_fen)}; fund now "
                      f"{format_yuan(r.balance_fen)}{note}")
        return
    q = r.request
    console.print(f"[yellow]需要复核[/yellow]：{format_yuan(q.amount_fen)}"
                  f"（{REASON_ZH.get(q.reason, q.reason)}）须由另一位上级管理员批准后才入账，"
                  f"尚未动用任何资金。申请编号 #{q.id}，状态 {q.status}{note}\n"
                  f"needs a second person: request #{q.id} waits for approval, no money moved "
                  f"yet (civicvoucher fund approve {q.id})")


def operator():
    """The CLI operator as a maker or checker: the OS login (``cli:<user>``), above every
    organisation (funds/approvals.py)."""
    from civicvoucher.funds.approvals import Person

    return Person.operator(cli_actor().name)


@fund_app.command("pending")
def fund_pending(status: str = typer.Option("pending", help="pending, approved or rejected")
                 ) -> None:
    """List deposit requests (pending unless told otherwise), oldest first."""
    from civicvoucher.funds.approvals import describe, requests_query
    from civicvoucher.funds.models import DepositRequest
    from civicvoucher.orgs.models import Org

    with database().session() as s:
        rows = s.execute(requests_query(status=status).add_columns(Org.name)
                         .order_by(DepositRequest.id).limit(500)).all()
        if not rows:
            console.print(f"没有{'待复核的' if status == 'pending' else ''}存入申请 / no {status} "
                          "deposit requests")
        for q, name in rows:
            console.print(describe(q, name))


@fund_app.command("approve")
def fund_approve(request_id: int = typer.Argument(..., help="the request's number"),
                 key: str = DECIDE_KEY) -> None:
    """Approve a deposit request (not your own): its money moves now, once."""
    from civicvoucher.funds.approvals import approve

    d = run_audited(approve, "fund.deposit.approve", lambda d: f"deposit_request:{d.request.id}",
                    _decision_detail, request_id=request_id, checker=operator())
    q = d.request
    console.print(f"已批准 #{q.id}：{format_yuan(q.amount_fen)} 已入账，基金余额 "
                  f"{format_yuan(d.balance_fen)}（申请人 {q.maker_name}，批准人 {q.checker_name}）"
                  + ("（此前已批准，未重复入账）" if d.replayed else "")
                  + f"\napproved #{q.id}: deposited {format_yuan(q.amount_fen)}"
                  + (" (approved before: nothing new)" if d.replayed else ""))


@fund_app.command("reject")
def fund_reject(request_id: int = typer.Argument(..., help="the request's number"),
                reason: str = typer.Option(None, help="why (kept with the request)"),
                key: str = DECIDE_KEY) -> None:
    """Reject a deposit request (not your own): nothing moves."""
    from civicvoucher.funds.approvals import reject

    d = run_audited(reject, "fund.deposit.reject", lambda d: f"deposit_request:{d.request.id}",
                    _decision_detail, request_id=request_id, checker=operator(), note=reason)
    q = d.request
    console.print(f"已驳回 #{q.id}：{format_yuan(q.amount_fen)} 未入账"
                  + ("（此前已驳回）" if d.replayed else "") + f"\nrejected #{q.id}")


def _decision_detail(d) -> dict:
    q = d.request
    return {"org_id": q.org_id, "amount_fen": q.amount_fen, "source": q.source,
            "from_org_id": q.from_org_id, "maker": q.maker, "maker_name": q.maker_name,
            "transfer_id": q.transfer_id, "note": q.note}


@fund_app.command("balance")
def fund_balance_cmd(org: str) -> None:
    """Show an organisation's fund balance."""
    from civicvoucher.funds.service import fund_balance
    from civicvoucher.orgs.service import find_org

    with database().session() as s:
        o = find_org(s, org)
        console.print(f"{o.name}: {format_yuan(fund_balance(s, o.id))}")


@program_app.command("create")
def program_create(file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Create a program from its TOML file (running it again changes nothing)."""
    from civicvoucher.programs.service import create_program
    from civicvoucher.programs.spec import load_program_spec

    spec = load_program_spec(file)
    with database().session() as s:
        program, created = create_program(s, spec=spec)
        if created:
            audit(s, "program.create", f"program:{program.id}", {"key": program.key})
    verb = "created" if created else "exists already, unchanged:"
    console.print(f"program {program.key} {verb} ({format_yuan(program.per_member_fen)} per member)")


def issue(
    union: str = typer.Argument(..., help="the grassroots union's USCC or id"),
    program: str = typer.Argument(..., help="program key"),
    product: list[str] = typer.Option(None, help="product keys (default: all non-optional)"),
    form: str = typer.Option("digital", help="digital or paper"),
    partial: bool = typer.Option(False, help="if funds fall short, issue as far as they go"),
    funded_by: str = typer.Option(None, help="a federation paying from its own fund"),
    key: str = KEY,
) -> None:
    """Issue a program's entitlement to a union's active members."""
    from civicvoucher.orgs.service import find_org
    from civicvoucher.vouchers.issuance import issue as do_issue

    k = key_or_new(key, "issue")
    with database().session() as s:
        union_id = find_org(s, union).id
        funder = find_org(s, funded_by).id if funded_by else None
    r = run_audited(do_issue, "issuance.create", lambda r: f"issuance:{r.issuance.id}",
                    lambda r: {"union_id": union_id, "status": r.issuance.status,
                               "amount_fen": r.issuance.amount_fen,
                               "vouchers": r.issuance.vouchers_issued},
                    union_id=union_id, program=program, products=product or None, form=form,
                    mode="partial" if partial else "all_or_nothing", funding_org_id=funder,
                    idem_key=k, actor=cli_actor().name)
    i = r.issuance
    console.print(f"{i.status}: {i.members_issued}/{i.members_eligible} members, "
                  f"{i.vouchers_issued} vouchers, {format_cn(i.amount_fen)}; "
                  f"shortfall {format_cn(i.shortfall_fen)}"
                  + (f"; {i.members_duplicate} entitled via another union" if i.members_duplicate else "")
                  + (" (replayed)" if r.replayed else ""))
    if i.status == "refused":
        raise typer.Exit(1)


def redeem(
    code: str,
    merchant: str = typer.Option(..., help="merchant USCC or id"),
    order: str = typer.Option(..., help="order amount in yuan"),
    channel: str = typer.Option("offline", help="offline, online, takeaway or groupbuy"),
    hold: bool = typer.Option(False, help="online order: hold until capture or void"),
    key: str = KEY,
) -> None:
    """Spend a voucher at a merchant."""
    from civicvoucher.merchants.service import find_merchant
    from civicvoucher.vouchers.redemption import redeem as do_redeem

    k = key_or_new(key, "redeem")
    db = database()
    with db.session() as s:
        merchant_id = find_merchant(s, merchant).id
    r = run_audited(do_redeem, "redemption.create", lambda r: f"redemption:{r.redemption.id}",
                    lambda r: {"merchant_id": merchant_id, "amount_fen": r.redemption.amount_fen,
                               "order_amount_fen": r.redemption.order_amount_fen,
                               "status": r.redemption.status, "by": "code"},
                    code=code, merchant_id=merchant_id, order_amount_fen=parse_yuan(order, "order"),
                    channel=channel, hold=hold, idem_key=k)
    red = r.redemption
    console.print(f"redemption {red.id} {red.status}: voucher {format_yuan(red.amount_fen)} "
                  f"on an order of {format_yuan(red.order_amount_fen)}"
                  + (" (replayed)" if r.replayed else ""))


def _resolved(fn, redemption: int, action: str):
    """Capture or void, audited when the state changed (both are idempotent by state)."""
    from civicvoucher.vouchers.models import Redemption

    def work(s):
        before = s.get(Redemption, redemption)
        was = before.status if before is not None else None
        red = fn(s, redemption_id=redemption)
        if red.status != was:
            audit(s, action, f"redemption:{red.id}", {"status": red.status})
        return red

    return database().run(work)


def capture(redemption: int) -> None:
    """Post a held online order."""
    from civicvoucher.vouchers.redemption import capture as do_capture

    red = _resolved(do_capture, redemption, "redemption.capture")
    console.print(f"redemption {red.id} {red.status}")


def void(redemption: int) -> None:
    """Release a held online order."""
    from civicvoucher.vouchers.redemption import void as do_void

    red = _resolved(do_void, redemption, "redemption.void")
    console.print(f"redemption {red.id} {red.status}")


def refund(redemption: int, reason: str = typer.Option(None), key: str = KEY) -> None:
    """Refund a redemption: the voucher comes back, or after its deadline the union's fund."""
    from civicvoucher.vouchers.redemption import refund as do_refund

    r = run_audited(do_refund, "redemption.refund", lambda r: f"redemption:{redemption}",
                    lambda r: {"outcome": r.refund.outcome, "amount_fen": r.refund.amount_fen},
                    redemption_id=redemption, reason=reason, idem_key=key_or_new(key, "refund"))
    console.print(f"refunded {format_yuan(r.refund.amount_fen)}: {r.refund.outcome}"
                  + (" (replayed)" if r.replayed else ""))


WHEN_HELP = ("local time (CIVICVOUCHER_TIMEZONE, default Asia/Shanghai) unless an offset is "
             "given; a bare date is its 00:00")


def expire(as_of: str = typer.Option(None, help=f"default: now (decided by the first run of "
                                                 f"a --key); {WHEN_HELP}"),
           key: str = KEY) -> None:
    """Expire vouchers past their deadline; their value goes back to the unions' funds."""
    from civicvoucher.vouchers.lifecycle import expire as do_expire

    # No --as-of: None, so the service fixes "now" once, on the key's first run; a retry with
    # the same key then replays instead of differing by the time it ran.
    when = parse_when(as_of, "as_of")
    r = run_audited(do_expire, "expiry.run", lambda r: f"expiry_run:{r.run.id}",
                    lambda r: {"as_of": r.run.as_of, "vouchers": r.run.vouchers_expired,
                               "amount_fen": r.run.amount_fen},
                    as_of=when, idem_key=key_or_new(key, "expire"))
    console.print(f"expired {r.run.vouchers_expired} vouchers as of {format_local(r.run.as_of)}, "
                  f"{format_cn(r.run.amount_fen)} back to union funds; {r.run.holds_voided} "
                  "stale holds voided" + (" (replayed)" if r.replayed else ""))


def extend(
    program: str,
    until: str = typer.Option(..., help="the new last day, e.g. 2020-07-31 = spendable through "
                                        "the end of 2020-07-31 (a time, e.g. 2020-08-01T00:00, "
                                        "is exclusive); local time unless an offset is given"),
    by: str = typer.Option(..., help="who decided"),
    reason: str = typer.Option(..., help="why (e.g. the notice delaying the deadline)"),
    document: str = typer.Option(None, help="the notice's title or number"),
    product: str = typer.Option(None),
    union: list[str] = typer.Option(None, help="only these unions (USCC or id)"),
    region: str = typer.Option(None, help="only unions in this division-code prefix"),
    form: str = typer.Option(None, help="only digital or paper vouchers"),
    key: str = KEY,
) -> None:
    """Extend the deadline of a program's unspent vouchers (all, or some)."""
    from civicvoucher.orgs.service import find_org
    from civicvoucher.vouchers.lifecycle import extend as do_extend

    db = database()
    with db.session() as s:
        union_ids = [find_org(s, u).id for u in union] if union else None
    r = run_audited(do_extend, "extension.create", lambda r: f"extension:{r.extension.id}",
                    lambda r: {"program_id": r.extension.program_id,
                               "new_expires_at": r.extension.new_expires_at,
                               "vouchers": r.extension.vouchers_extended, "reason": reason},
                    program=program, new_expires_at=parse_deadline(until, "until"), actor=by,
                    reason=reason, document=document, product=product, union_ids=union_ids,
                    region_prefix=region, form=form, idem_key=key_or_new(key, "extend"))
    console.print(f"extended {r.extension.vouchers_extended} vouchers to "
                  f"{format_local(r.extension.new_expires_at)} (exclusive)"
                  + (" (replayed)" if r.replayed else ""))


def settle(cutoff: str = typer.Option(None, help="default: now (decided by the first run of a "
                                                 f"--key); {WHEN_HELP}"),
           key: str = KEY,
           show: bool = typer.Option(False, help="list each batch's redemptions")) -> None:
    """Settle posted redemptions up to a cut-off: one payout batch per merchant."""
    from sqlalchemy import select

    from civicvoucher.settlement.models import SettlementBatch
    from civicvoucher.settlement.service import batch_redemptions
    from civicvoucher.settlement.service import settle as do_settle

    db = database()
    # No --cutoff: None, so "now" is decided once by the key's first run (see expire).
    r = run_audited(do_settle, "settlement.run", lambda r: f"settlement_run:{r.run.id}",
                    lambda r: {"cutoff": r.run.cutoff, "batches": r.run.batches,
                               "amount_fen": r.run.amount_fen},
                    cutoff=parse_when(cutoff, "cutoff"), idem_key=key_or_new(key, "settle"))
    console.print(f"settlement run {r.run.id} up to {format_local(r.run.cutoff)}: "
                  f"{r.run.batches} batches, {r.run.redemptions} "
                  f"redemptions, {format_yuan(r.run.amount_fen)}"
                  + (f", {format_yuan(r.run.recovered_fen)} kept back for refunds after earlier "
                     f"payouts, {format_yuan(r.run.amount_fen - r.run.recovered_fen)} paid out"
                     if r.run.recovered_fen else "")
                  + (" (replayed)" if r.replayed else ""))
    if show:
        with db.session() as s:
            for b in s.execute(select(SettlementBatch).where(SettlementBatch.run_id == r.run.id)).scalars():
                ids = [str(x.id) for x in batch_redemptions(s, b.id)]
                kept = f", {format_yuan(b.recovered_fen)} kept back" if b.recovered_fen else ""
                console.print(f"  batch {b.id} merchant {b.merchant_id}: {format_yuan(b.amount_fen)}{kept} "
                              f"({b.redemption_count}): redemptions {', '.join(ids)}")
