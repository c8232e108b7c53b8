"""fund / program / issue / redeem / hold / capture / void / refund / expire / extend / settle."""

from __future__ import annotations

from pathlib import Path

import typer

from civicvoucher.cli.common import (
    AS,
    CUTOFF_HELP,
    audit,
    cli_actor,
    console,
    database,
    key_or_new,
    parse_cutoff,
    parse_deadline,
    parse_yuan,
    run_audited,
)
from civicvoucher.core.clock import format_local
from civicvoucher.i18n import Term, Yuan, localize, msg, nmsg, terms

# Codes these commands show, by name (the domains' own tables where they have one).
ISSUANCE_STATUS_ZH = {"completed": "已完成", "partial": "部分发放", "refused": "未发放",
                      "nothing_to_issue": "无可发放"}
REFUND_OUTCOME_ZH = {"restored": "券已恢复", "to_fund": "已退回基层工会资金"}
DEPOSIT_STATUS_ZH = {"pending": "待复核", "approved": "已批准", "rejected": "已驳回"}
terms.register("issuance_status", ISSUANCE_STATUS_ZH)
terms.register("refund_outcome", REFUND_OUTCOME_ZH)
terms.register("deposit_status", DEPOSIT_STATUS_ZH)

# "deposit_reason" and "redemption_status" are registered by their domains (funds.approvals,
# vouchers.rules) when the command that shows them imports its service: importing them here
# would load the database layer for every command, --help included.


def say(line, replayed: bool = False) -> None:
    """Print a message in the operator's language; a replay says that nothing new happened."""
    console.print(localize(msg("{line} (replayed)", line=line) if replayed else line),
                  markup=False)

fund_app = typer.Typer(help="Union fund accounts.", no_args_is_help=True)
program_app = typer.Typer(help="Programs and their voucher products.", no_args_is_help=True)

KEY = typer.Option(None, "--key", help="idempotency key: a retry with the same key does nothing new")
DECIDE_KEY = typer.Option(None, "--key", help="accepted like every command's key; a decision "
                          "is idempotent by the request's state: deciding again, with any key, "
                          "changes nothing")
STATE_KEY = typer.Option(None, "--key", help="accepted like every command's key; capture and "
                         "void are idempotent by the redemption's state: doing it again, with "
                         "any key, changes nothing")


@fund_app.command("deposit")
def fund_deposit(
    org: str = typer.Argument(..., help="division code, USCC or id"),
    amount: str = typer.Argument(..., help="yuan, e.g. 150000 or 1,234.50"),
    source: str = typer.Option("dues", help="dues, fiscal, or transfer (from a federation)"),
    from_org: str = typer.Option(None, "--from", help="the paying federation, for a transfer"),
    key: str = KEY,
    _as: str = AS,
) -> None:
    """Deposit into an organisation's fund. Fiscal money, transfers and dues above
    CIVICVOUCHER_DEPOSIT_APPROVAL_ABOVE yuan (default 100,000) become a request that another
    person approves (fund approve); nothing moves until then."""
    from civicvoucher.funds.approvals import request_deposit
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
    if isinstance(r, Deposit):
        say(msg("deposited {amount}; fund now {balance}", amount=Yuan(r.amount_fen),
                balance=Yuan(r.balance_fen)), r.replayed)
        return
    q = r.request
    say(msg("needs a second person: {amount} ({reason}) is deposited only once another "
            "administrator above the union approves it; no money moved yet. Request #{id}, "
            "{status} (civicvoucher fund approve {id})", amount=Yuan(q.amount_fen),
            reason=Term(q.reason, "deposit_reason"), id=q.id,
            status=Term(q.status, "deposit_status")), r.replayed)


def operator():
    """The CLI operator as a maker or checker: ``cli:<name>`` (``--as``, else
    CIVICVOUCHER_OPERATOR, else the OS login), above every organisation (funds/approvals.py)."""
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
            say(msg("no {status} deposit requests", status=Term(status, "deposit_status")))
        for q, name in rows:
            console.print(describe(q, name))


@fund_app.command("approve")
def fund_approve(request_id: int = typer.Argument(..., help="the request's number"),
                 key: str = DECIDE_KEY, _as: str = AS) -> None:
    """Approve a deposit request (not your own): its money moves now, once."""
    from civicvoucher.funds.approvals import approve

    d = run_audited(approve, "fund.deposit.approve", lambda d: f"deposit_request:{d.request.id}",
                    _decision_detail, request_id=request_id, checker=operator())
    q = d.request
    line = msg("approved #{id}: {amount} deposited, fund now {balance} (requested by {maker}, "
               "approved by {checker})", id=q.id, amount=Yuan(q.amount_fen),
               balance=Yuan(d.balance_fen), maker=q.maker_name, checker=q.checker_name)
    say(msg("{line} (approved before: nothing deposited again)", line=line) if d.replayed
        else line)


@fund_app.command("reject")
def fund_reject(request_id: int = typer.Argument(..., help="the request's number"),
                reason: str = typer.Option(None, help="why (kept with the request)"),
                key: str = DECIDE_KEY, _as: str = AS) -> None:
    """Reject a deposit request (not your own): nothing moves."""
    from civicvoucher.funds.approvals import reject

    d = run_audited(reject, "fund.deposit.reject", lambda d: f"deposit_request:{d.request.id}",
                    _decision_detail, request_id=request_id, checker=operator(), note=reason)
    q = d.request
    line = msg("rejected #{id}: {amount} not deposited", id=q.id, amount=Yuan(q.amount_fen))
    say(msg("{line} (rejected before)", line=line) if d.replayed else line)


def _decision_detail(d) -> dict:
    q = d.request
    return {"org_id": q.org_id, "amount_fen": q.amount_fen, "source": q.source,
            "from_org_id": q.from_org_id, "maker": q.maker, "maker_name": q.maker_name,
            "transfer_id": q.transfer_id, "note": q.note}


@fund_app.command("balance")
def fund_balance_cmd(org: str = typer.Argument(..., help="division code, USCC or id")) -> None:
    """Show an organisation's fund balance."""
    from civicvoucher.funds.service import fund_balance
    from civicvoucher.orgs.service import find_org

    with database().session() as s:
        o = find_org(s, org)
        say(msg("{org}: {balance}", org=o.name, balance=Yuan(fund_balance(s, o.id))))


@program_app.command("create")
def program_create(file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                               help="the program file (TOML)"),
                   _as: str = AS) -> None:
    """Create a program from its TOML file (running it again changes nothing)."""
    from civicvoucher.programs.service import create_program
    from civicvoucher.programs.spec import load_program_spec

    spec = load_program_spec(file)
    with database().session() as s:
        program, created = create_program(s, spec=spec)
        if created:
            audit(s, "program.create", f"program:{program.id}", {"key": program.key})
    amount = Yuan(program.per_member_fen)
    say(msg("program {key} created ({amount} per member)", key=program.key, amount=amount)
        if created else msg("program {key} exists already, unchanged ({amount} per member)",
                            key=program.key, amount=amount))


def issue(
    union: str = typer.Argument(..., help="the grassroots union's USCC or id"),
    program: str = typer.Argument(..., help="program key"),
    product: list[str] = typer.Option(None, help="product keys (default: all non-optional)"),
    form: str = typer.Option("digital", help="digital or paper"),
    partial: bool = typer.Option(False, help="if funds fall short, issue as far as they go"),
    funded_by: str = typer.Option(None, help="a federation paying from its own fund"),
    key: str = KEY,
    _as: str = AS,
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
    line = msg("{status}: {issued}/{eligible} members, {vouchers} vouchers, {amount}; "
               "shortfall {shortfall}", status=Term(i.status, "issuance_status"),
               issued=i.members_issued, eligible=i.members_eligible,
               vouchers=i.vouchers_issued, amount=Yuan(i.amount_fen),
               shortfall=Yuan(i.shortfall_fen))
    if i.members_duplicate:
        line = msg("{line}; {n} entitled via another union", line=line, n=i.members_duplicate)
    say(line, r.replayed)
    if i.status == "refused":
        raise typer.Exit(1)


def redeem(
    code: str = typer.Argument(..., help="the voucher's code"),
    merchant: str = typer.Option(..., help="merchant USCC or id"),
    order: str = typer.Option(..., help="order amount in yuan"),
    channel: str = typer.Option("offline", help="offline, online, takeaway or groupbuy"),
    hold: bool = typer.Option(False, help="online order: hold until capture or void"),
    key: str = KEY,
    _as: str = AS,
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
    say(msg("redemption {id} {status}: voucher {amount} on an order of {order}", id=red.id,
            status=Term(red.status, "redemption_status"), amount=Yuan(red.amount_fen),
            order=Yuan(red.order_amount_fen)), r.replayed)


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


REDEMPTION = typer.Argument(..., help="the redemption's number")


def capture(redemption: int = REDEMPTION, key: str = STATE_KEY, _as: str = AS) -> None:
    """Post a held online order."""
    from civicvoucher.vouchers.redemption import capture as do_capture

    red = _resolved(do_capture, redemption, "redemption.capture")
    say(msg("redemption {id} {status}", id=red.id, status=Term(red.status, "redemption_status")))


def void(redemption: int = REDEMPTION, key: str = STATE_KEY, _as: str = AS) -> None:
    """Release a held online order."""
    from civicvoucher.vouchers.redemption import void as do_void

    red = _resolved(do_void, redemption, "redemption.void")
    say(msg("redemption {id} {status}", id=red.id, status=Term(red.status, "redemption_status")))


def refund(redemption: int = REDEMPTION,
           reason: str = typer.Option(None, help="why (kept with the refund)"),
           key: str = KEY, _as: str = AS) -> None:
    """Refund a redemption: the voucher comes back, or after its deadline the union's fund."""
    from civicvoucher.vouchers.redemption import refund as do_refund

    r = run_audited(do_refund, "redemption.refund", lambda r: f"redemption:{redemption}",
                    lambda r: {"outcome": r.refund.outcome, "amount_fen": r.refund.amount_fen},
                    redemption_id=redemption, reason=reason, idem_key=key_or_new(key, "refund"))
    say(msg("refunded {amount}: {outcome}", amount=Yuan(r.refund.amount_fen),
            outcome=Term(r.refund.outcome, "refund_outcome")), r.replayed)


def expire(as_of: str = typer.Option(None, "--as-of", "--cutoff", help=CUTOFF_HELP),
           key: str = KEY, _as: str = AS) -> None:
    """Expire vouchers whose deadline has passed by the cut (default now); their value goes
    back to the unions' funds."""
    from civicvoucher.vouchers.lifecycle import expire as do_expire

    # No --as-of: None, so the service fixes "now" once, on the key's first run; a retry with
    # the same key then replays instead of differing by the time it ran.
    when = parse_cutoff(as_of, "as_of")
    r = run_audited(do_expire, "expiry.run", lambda r: f"expiry_run:{r.run.id}",
                    lambda r: {"as_of": r.run.as_of, "vouchers": r.run.vouchers_expired,
                               "amount_fen": r.run.amount_fen},
                    as_of=when, idem_key=key_or_new(key, "expire"))
    say(nmsg("expired {n} voucher as of {when}, {amount} back to union funds; {holds} stale "
             "holds voided", "expired {n} vouchers as of {when}, {amount} back to union funds; "
             "{holds} stale holds voided", r.run.vouchers_expired,
             when=format_local(r.run.as_of), amount=Yuan(r.run.amount_fen),
             holds=r.run.holds_voided), r.replayed)


def extend(
    program: str,
    until: str = typer.Option(..., help="the new last day, e.g. 2020-07-31 = spendable through "
                                        "the end of 2020-07-31 (a time, e.g. 2020-08-01T00:00, "
                                        "is exclusive); local time unless an offset is given"),
    by: str = typer.Option(..., help="who decided"),
    reason: str = typer.Option(..., help="why (e.g. the notice delaying the deadline)"),
    document: str = typer.Option(None, help="the notice's title or number"),
    product: str = typer.Option(None, help="only this product's vouchers (its key)"),
    union: list[str] = typer.Option(None, help="only these unions (USCC or id)"),
    region: str = typer.Option(None, help="only unions in this division-code prefix"),
    form: str = typer.Option(None, help="only digital or paper vouchers"),
    key: str = KEY,
    _as: str = AS,
) -> None:
    """Extend the deadline of a program's unspent vouchers (all, or some). The new deadline
    must be later than each voucher's current one: an earlier date is refused."""
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
    say(nmsg("extended {n} voucher to {until} (exclusive)",
             "extended {n} vouchers to {until} (exclusive)", r.extension.vouchers_extended,
             until=format_local(r.extension.new_expires_at)), r.replayed)


def settle(cutoff: str = typer.Option(None, "--cutoff", "--as-of", help=CUTOFF_HELP),
           key: str = KEY,
           show: bool = typer.Option(False, help="list each batch's redemptions"),
           _as: str = AS) -> None:
    """Settle posted redemptions up to a cut (default now): one payout batch per merchant."""
    from sqlalchemy import select

    from civicvoucher.settlement.models import SettlementBatch
    from civicvoucher.settlement.service import batch_redemptions
    from civicvoucher.settlement.service import settle as do_settle

    db = database()
    # No --cutoff: None, so "now" is decided once by the key's first run (see expire).
    r = run_audited(do_settle, "settlement.run", lambda r: f"settlement_run:{r.run.id}",
                    lambda r: {"cutoff": r.run.cutoff, "batches": r.run.batches,
                               "amount_fen": r.run.amount_fen},
                    cutoff=parse_cutoff(cutoff, "cutoff"), idem_key=key_or_new(key, "settle"))
    run = r.run
    line = msg("settlement run {id} up to {cutoff}: {batches} batches, {redemptions} "
               "redemptions, {amount}", id=run.id, cutoff=format_local(run.cutoff),
               batches=run.batches, redemptions=run.redemptions, amount=Yuan(run.amount_fen))
    if run.recovered_fen:
        line = msg("{line}, {kept} kept back for refunds after earlier payouts, {paid} paid out",
                   line=line, kept=Yuan(run.recovered_fen),
                   paid=Yuan(run.amount_fen - run.recovered_fen))
    say(line, r.replayed)
    if show:
        with db.session() as s:
            for b in s.execute(select(SettlementBatch).where(SettlementBatch.run_id == r.run.id)).scalars():
                ids = [str(x.id) for x in batch_redemptions(s, b.id)]
                params = dict(id=b.id, merchant=b.merchant_id, amount=Yuan(b.amount_fen),
                              kept=Yuan(b.recovered_fen), count=b.redemption_count, ids=ids)
                console.print("  " + localize(msg(
                    "batch {id}, merchant {merchant}: {amount}, {kept} kept back ({count}): "
                    "redemptions {ids}", **params) if b.recovered_fen else msg(
                    "batch {id}, merchant {merchant}: {amount} ({count}): redemptions {ids}",
                    **params)), markup=False)
