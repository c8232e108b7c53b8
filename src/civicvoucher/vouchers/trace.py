"""A voucher's whole life, for the console's trace page (溯源): find a voucher, then read it as
ordered steps, each with the ledger transfer and the audit entry behind it.

What links the data holds, and what this module does where it holds none:

- issued: ``voucher.issuance_id`` → ``issuance`` (funder, mode, ``actor``); transfers
  ``issue:<issuance>:reserve`` (funder's ``union.fund`` → ``program.reserve``) and
  ``issue:<issuance>:issue``, both for the whole issuance (``transfer_shared``); audit
  ``issuance.create`` on ``issuance:<id>``.
- pushed / printed: the voucher's form. No delivery or printing event is stored (a paper
  export is audited per organisation, not per voucher), so the step sits at the issuance
  instant with no transfer and no audit entry.
- held, redeemed, voided: ``redemption`` rows (``transfer_id`` ``redeem:<key>``, the capture
  ``capture:<id>``, the void ``void:<id>``, whose ``created_at`` is the only record of when a
  hold was voided); audit ``redemption.create`` / ``channel.redeem`` / ``redemption.capture`` /
  ``redemption.void`` on ``redemption:<id>``. A hold that timed out is voided without an
  audit entry (by the next presentation or the expiry run): ``outcome="timed_out"``.
- refunded: ``refund`` (``refund:<redemption>``); audit ``redemption.refund`` /
  ``channel.refund``.
- settled: ``redemption.settlement_batch_id`` → batch → run; transfer ``settle:<batch>`` (the
  merchant's whole payout); audit ``settlement.run`` on ``settlement_run:<id>``.
- expired: no column says which expiry run expired a voucher. The run is derived from the
  rules (``lifecycle.expire`` expires every issued voucher whose deadline is at or before
  ``as_of``): the first run made after the voucher last became spendable whose ``as_of`` is
  at or after its deadline, and only if that run's transfer for the voucher's union and
  program (``expire:<run>:<union>:<program>``) exists; the step says ``derived=True``. None
  when no run fits. A refund after the deadline expires the voucher by itself (the refund
  step, ``outcome="to_fund"``), with no run.
- extended: no per-voucher record either; each extension of the program is replayed against
  the voucher's history with the rules of ``lifecycle.extend`` and
  ``redemption.current_deadline`` (``derived=True``). If the replay does not end on the
  stored deadline, the trace says so in ``notes`` (``deadline_replay_mismatch``).

Scope: only vouchers whose issuing union lies under ``org_path``; anything else is the same
NotFound as a missing voucher. Digital codes are secrets (``api/routers/me.py`` shows none,
``voucher list --codes`` prints paper codes only): only a paper voucher is found by its code,
and results show a code's last four characters for paper vouchers only. Pure reads: auditing
a search or a trace (they show personal data, masked) is the door's business.

Cost: a trace is five queries whatever the voucher's history (the voucher with its union,
member, product and issuance; its redemptions with refunds and settlement; the program's
extensions; the transfers; the audit entries), six for an expired voucher (its candidate
expiry runs). The audit query filters ``audit_entry.target``, which has no index in this
tree (only ``action``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, column, select, table
from sqlalchemy.orm import Session, aliased

from civicvoucher.audit.models import AuditEntry
from civicvoucher.core import clock, ids
from civicvoucher.core.ids import normalise_code
from civicvoucher.errors import NotFound
from civicvoucher.i18n import msg, terms
from civicvoucher.ledger.models import Account, Transfer
from civicvoucher.members.models import Member
from civicvoucher.members.rules import hash_id_number, normalise_id_number
from civicvoucher.merchants.models import Merchant
from civicvoucher.orgs.models import Org
from civicvoucher.programs.models import Product, Program
from civicvoucher.vouchers.listing import mask_name
from civicvoucher.vouchers.models import ExpiryRun, Extension, Issuance, Redemption, Refund, Voucher
from civicvoucher.vouchers.redemption import extension_covers
from civicvoucher.vouchers.rules import RedemptionStatus, VoucherForm, VoucherStatus

# settlement sits above vouchers in the layers: its two tables are named here, not imported
_BATCH = table("settlement_batch", column("id", Integer), column("run_id", Integer),
               column("transfer_id", String), column("created_at", DateTime))


class StepCode:
    ISSUED = "issued"
    PUSHED = "pushed"
    PRINTED = "printed"
    HELD = "held"
    VOIDED = "voided"
    REDEEMED = "redeemed"
    REFUNDED = "refunded"
    SETTLED = "settled"
    EXPIRED = "expired"
    EXTENDED = "extended"


TRACE_STEP_LABEL_ZH = {
    StepCode.ISSUED: "发放",
    StepCode.PUSHED: "推送电子券",
    StepCode.PRINTED: "印制纸质券",
    StepCode.HELD: "预占（待确认）",
    StepCode.VOIDED: "撤销预占",
    StepCode.REDEEMED: "核销",
    StepCode.REFUNDED: "退款",
    StepCode.SETTLED: "结算",
    StepCode.EXPIRED: "过期",
    StepCode.EXTENDED: "延期",
}
terms.register("trace_step", TRACE_STEP_LABEL_ZH)  # Term(step.code, "trace_step") on the page


@dataclass(frozen=True)
class Step:
    """One thing that happened to the voucher. Times naive UTC (``when_local`` for people);
    money in fen. A link the data does not hold is None."""

    code: str  # StepCode; Term(code, "trace_step")
    at: datetime
    when_local: str
    amount_fen: int | None = None
    actor: str | None = None  # the audit entry's actor (issuance: its recorded actor if none)
    audit_seq: int | None = None
    transfer_id: str | None = None  # only if the transfer is in the ledger
    transfer_amount_fen: int | None = None
    transfer_shared: bool = False  # the transfer carries other vouchers too (issue, settle, expire)
    debit_account: str | None = None  # account keys: 'union.fund:12'
    credit_account: str | None = None
    derived: bool = False  # the link is reasoned from the rules, not stored (expiry, extension)
    issuance_id: int | None = None
    fund_org_id: int | None = None  # issued: whose union fund paid
    fund_org_name: str | None = None
    fund_transfer_id: str | None = None  # issued: union.fund → program.reserve
    fund_account: str | None = None  # issued: the key of the union.fund it came from
    form: str | None = None
    redemption_id: int | None = None
    receipt_id: str | None = None
    merchant_id: int | None = None
    merchant_name: str | None = None
    channel: str | None = None
    order_amount_fen: int | None = None
    refund_id: int | None = None
    outcome: str | None = None  # refunded: restored | to_fund; voided: voided | timed_out
    reason: str | None = None
    settlement_run_id: int | None = None
    settlement_batch_id: int | None = None
    expiry_run_id: int | None = None
    extension_id: int | None = None
    expires_before: datetime | None = None  # extended: the deadline it moved
    expires_after: datetime | None = None
    document: str | None = None


@dataclass(frozen=True)
class Trace:
    voucher_id: int
    code_hint: str | None  # paper only: the code's last four characters
    form: str
    status: str
    amount_fen: int
    threshold_fen: int
    program_id: int
    program_key: str
    product_name: str
    union_id: int
    union_name: str
    member_id: int
    member_name: str  # masked
    member_id_masked: str
    issued_at: datetime
    valid_from: datetime
    expires_at: datetime
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = field(default=())  # e.g. deadline_replay_mismatch


def receipt_id(created_at: datetime, redemption_id: int) -> str:
    """The receipt number a cashier's receipt shows (``api/routers/redemptions.py``)."""
    return f"R{clock.local_date(created_at):%Y%m%d}-{redemption_id:08d}"


def _code_hint(v: Voucher) -> str | None:
    return v.code[-4:] if v.form == VoucherForm.PAPER else None


def _not_found(voucher_id: object) -> NotFound:
    return NotFound(msg("no voucher {id}", id=voucher_id), code="voucher_not_found")


# --- search ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoucherHit:
    voucher_id: int
    matched_by: str  # voucher_id | redemption_id | receipt_id | code | id_number
    form: str
    status: str
    amount_fen: int
    code_hint: str | None
    program_key: str
    product_name: str
    union_id: int
    union_name: str
    member_name: str  # masked
    member_id_masked: str
    issued_at: datetime
    expires_at: datetime
    redemption_id: int | None = None  # the redemption the query named


_RECEIPT = re.compile(r"R(\d{8})-(\d{1,12})")
_ID_NUMBER = re.compile(r"\d{17}[\dX]")
_CODE = re.compile(rf"[A-Z2-7]{{{ids.CODE_LENGTH}}}")


def find_vouchers(session: Session, *, query: str, org_path: str | None, limit: int = 20,
                  key: bytes | None = None) -> list[VoucherHit]:
    """Vouchers in ``org_path``'s subtree (None: everywhere) matching ``query``, which is one of:

    - a receipt number ``R20200501-00000012`` (its date must be the redemption's local day);
    - a number: a voucher id or a redemption id (both looked for);
    - an 18-character ID-card number: the member's vouchers, by the keyed hash (``key``, the
      deployment's ID-hash key; without it an ID number finds nothing);
    - a voucher code, typed as people type it: paper vouchers only (a digital code is the
      member's secret and the console is no oracle for it).

    Anything else finds nothing. Members are shown masked."""
    text = query.strip()
    if not text or len(text) > 64:
        return []
    base = (select(Voucher, Org.name, Member.name, Member.id_masked, Program.key, Product.name)
            .join(Org, Org.id == Voucher.union_id)
            .join(Member, Member.id == Voucher.member_id)
            .join(Program, Program.id == Voucher.program_id)
            .join(Product, Product.id == Voucher.product_id))
    if org_path:
        base = base.where(Org.path.startswith(org_path))
    hits: list[VoucherHit] = []

    def run(stmt, matched_by: str, redemption_of=None) -> None:
        for v, union_name, name, id_masked, program_key, product_name in session.execute(
                stmt.order_by(Voucher.id).limit(limit)):
            hits.append(VoucherHit(
                voucher_id=v.id, matched_by=matched_by, form=v.form, status=v.status,
                amount_fen=v.amount_fen, code_hint=_code_hint(v), program_key=program_key,
                product_name=product_name, union_id=v.union_id, union_name=union_name,
                member_name=mask_name(name), member_id_masked=id_masked, issued_at=v.issued_at,
                expires_at=v.expires_at, redemption_id=redemption_of))

    upper = text.upper()
    if (m := _RECEIPT.fullmatch(upper)) is not None:
        rid = int(m.group(2))
        red = session.execute(select(Redemption.voucher_id, Redemption.created_at)
                              .where(Redemption.id == rid)).first()
        if red is not None and f"{clock.local_date(red.created_at):%Y%m%d}" == m.group(1):
            run(base.where(Voucher.id == red.voucher_id), "receipt_id", rid)
        return hits
    if text.isdigit() and len(text) < 18:
        n = int(text)
        if n > 2**63 - 1:
            return []
        run(base.where(Voucher.id == n), "voucher_id")
        red_voucher = select(Redemption.voucher_id).where(Redemption.id == n).scalar_subquery()
        run(base.where(Voucher.id == red_voucher), "redemption_id", n)
        return hits[:limit]
    number = normalise_id_number(text)
    if _ID_NUMBER.fullmatch(number):
        if key:
            people = select(Member.id).where(Member.id_hash == hash_id_number(number, key=key))
            run(base.where(Voucher.member_id.in_(people)), "id_number")
        return hits
    code = normalise_code(text)
    if _CODE.fullmatch(code):
        run(base.where(Voucher.code == code, Voucher.form == VoucherForm.PAPER), "code")
    return hits


# --- trace -------------------------------------------------------------------------------------

_AUDIT_STEP = {  # action → the step it records
    "issuance.create": "issued",
    "redemption.create": "spent", "channel.redeem": "spent",
    "redemption.capture": "captured",
    "redemption.void": "voided",
    "redemption.refund": "refunded", "channel.refund": "refunded",
    "settlement.run": "settled",
    "expiry.run": "expired",
    "extension.create": "extended",
}

# events at the same instant, in the order they can happen
_RANK = {"issued": 0, "held": 1, "redeemed": 2, "voided": 2, "settled": 3, "refunded": 4,
         "extension": 5, "expired": 6}


def trace(session: Session, voucher_id: int, *, org_path: str | None) -> Trace:
    """One voucher's life as ordered steps. Outside ``org_path``'s subtree (None: everywhere)
    or missing: NotFound ``voucher_not_found``, the same either way."""
    funder = aliased(Org)
    stmt = (select(Voucher, Org.name, Member.name, Member.id_masked, Program.key, Product,
                   Issuance, funder.name)
            .join(Org, Org.id == Voucher.union_id)
            .join(Member, Member.id == Voucher.member_id)
            .join(Program, Program.id == Voucher.program_id)
            .join(Product, Product.id == Voucher.product_id)
            .join(Issuance, Issuance.id == Voucher.issuance_id)
            .join(funder, funder.id == Issuance.funding_org_id)
            .where(Voucher.id == voucher_id))
    if org_path:
        stmt = stmt.where(Org.path.startswith(org_path))
    row = session.execute(stmt).first() if 0 < voucher_id < 2**63 else None
    if row is None:
        raise _not_found(voucher_id)
    v, union_name, member_name, id_masked, program_key, product, iss, funder_name = row

    reds = session.execute(
        select(Redemption, Merchant.name, Refund, _BATCH.c.run_id, _BATCH.c.transfer_id,
               _BATCH.c.created_at)
        .join(Merchant, Merchant.id == Redemption.merchant_id)
        .outerjoin(Refund, Refund.redemption_id == Redemption.id)
        .outerjoin(_BATCH, _BATCH.c.id == Redemption.settlement_batch_id)
        .where(Redemption.voucher_id == v.id).order_by(Redemption.id)).all()
    exts = list(session.execute(
        select(Extension).where(Extension.program_id == v.program_id)
        .order_by(Extension.created_at, Extension.id)).scalars())

    # Candidate expiry runs: made after the voucher last became spendable (issued, restored
    # by a refund, or a hold voided: a void's instant is only on its transfer, read below, so
    # the hold's creation bounds it here) with an as_of at or after its deadline.
    expired_by_refund = any(rf is not None and rf.outcome == "to_fund" for _r, _m, rf, *_b in reds)
    runs: list[ExpiryRun] = []
    if v.status == VoucherStatus.EXPIRED and not expired_by_refund:
        since = max([v.issued_at]
                    + [r.created_at for r, *_x in reds if r.status == RedemptionStatus.VOIDED]
                    + [rf.created_at for _r, _m, rf, *_x in reds
                       if rf is not None and rf.outcome == "restored"])
        runs = list(session.execute(
            select(ExpiryRun).where(ExpiryRun.as_of >= v.expires_at,
                                    ExpiryRun.created_at >= since)
            .order_by(ExpiryRun.created_at, ExpiryRun.id).limit(16)).scalars())

    # every transfer that may belong to this voucher, with its accounts' keys: one query
    wanted = [f"issue:{iss.id}:reserve", f"issue:{iss.id}:issue"]
    for red, _m, rf, _run, batch_tid, _at in reds:
        wanted += [red.transfer_id, f"capture:{red.id}", f"void:{red.id}"]
        if rf is not None:
            wanted.append(rf.transfer_id)
        if batch_tid:
            wanted.append(batch_tid)
    wanted += [f"expire:{x.id}:{v.union_id}:{v.program_id}" for x in runs]
    debit, credit = aliased(Account), aliased(Account)
    transfers = {t.id: (t, dk, ck) for t, dk, ck in session.execute(
        select(Transfer, debit.key, credit.key)
        .join(debit, debit.id == Transfer.debit_account_id)
        .join(credit, credit.id == Transfer.credit_account_id)
        .where(Transfer.id.in_(wanted)))}

    run_ids = {r for _x, _m, _f, r, *_y in reds if r is not None}
    targets = ([f"issuance:{iss.id}"] + [f"redemption:{r.id}" for r, *_x in reds]
               + [f"settlement_run:{r}" for r in sorted(run_ids)]
               + [f"expiry_run:{x.id}" for x in runs] + [f"extension:{e.id}" for e in exts])
    audits: dict[tuple[str, str], AuditEntry] = {}
    for a in session.execute(
            select(AuditEntry).where(AuditEntry.target.in_(targets),
                                     AuditEntry.action.in_(list(_AUDIT_STEP)),
                                     AuditEntry.outcome == "ok")
            .order_by(AuditEntry.seq)).scalars():
        audits.setdefault((a.target, _AUDIT_STEP[a.action]), a)

    def link(tid: str | None) -> dict:
        found = transfers.get(tid) if tid else None
        if found is None:
            return {}
        t, dk, ck = found
        return dict(transfer_id=t.id, transfer_amount_fen=t.amount, debit_account=dk,
                    credit_account=ck)

    def who(target: str, kind: str) -> dict:
        a = audits.get((target, kind))
        return {} if a is None else dict(actor=a.actor, audit_seq=a.seq)

    events: list[tuple[datetime, int, int, dict]] = []  # (at, rank, order, step fields)

    def add(rank_key: str, at: datetime, **fields) -> None:
        events.append((at, _RANK[rank_key], len(events), dict(at=at, **fields)))

    issued = dict(code=StepCode.ISSUED, amount_fen=v.amount_fen, issuance_id=iss.id,
                  fund_org_id=iss.funding_org_id, fund_org_name=funder_name, form=v.form,
                  actor=iss.actor, **link(f"issue:{iss.id}:issue"), transfer_shared=True)
    issued.update(who(f"issuance:{iss.id}", "issued"))  # the audit's actor, if audited
    reserve = transfers.get(f"issue:{iss.id}:reserve")
    if reserve is not None:
        issued.update(fund_transfer_id=reserve[0].id, fund_account=reserve[1])
    add("issued", v.issued_at, **issued)
    add("issued", v.issued_at,
        code=StepCode.PRINTED if v.form == VoucherForm.PAPER else StepCode.PUSHED, form=v.form)

    for red, merchant_name, rf, run_id, batch_tid, batch_at in reds:
        target = f"redemption:{red.id}"
        common = dict(amount_fen=red.amount_fen, redemption_id=red.id,
                      receipt_id=receipt_id(red.created_at, red.id), merchant_id=red.merchant_id,
                      merchant_name=merchant_name, channel=red.channel,
                      order_amount_fen=red.order_amount_fen)
        held = red.hold_expires_at is not None
        if held:
            add("held", red.created_at, code=StepCode.HELD, **common, **link(red.transfer_id),
                **who(target, "spent"))
            if red.posted_at is not None:
                add("redeemed", red.posted_at, code=StepCode.REDEEMED, **common,
                    **link(f"capture:{red.id}"), **who(target, "captured"))
            elif red.status == RedemptionStatus.VOIDED:
                vt = transfers.get(f"void:{red.id}")
                at = vt[0].created_at if vt is not None else red.hold_expires_at
                audited = who(target, "voided")
                add("voided", at, code=StepCode.VOIDED, **common, **link(f"void:{red.id}"),
                    **audited, outcome="voided" if audited or at < red.hold_expires_at
                    else "timed_out")
        else:
            add("redeemed", red.created_at, code=StepCode.REDEEMED, **common,
                **link(red.transfer_id), **who(target, "spent"))
        if run_id is not None:
            add("settled", batch_at, code=StepCode.SETTLED, **common,
                settlement_run_id=run_id, settlement_batch_id=red.settlement_batch_id,
                **link(batch_tid), transfer_shared=True,
                **who(f"settlement_run:{run_id}", "settled"))
        if rf is not None:
            add("refunded", rf.created_at, code=StepCode.REFUNDED, **common, refund_id=rf.id,
                outcome=rf.outcome, reason=rf.reason, **link(rf.transfer_id),
                **who(target, "refunded"))

    if runs:
        spendable_again = max([v.issued_at] + [f["at"] for _a, _r, _o, f in events
                                               if f["code"] == StepCode.VOIDED
                                               or f.get("outcome") == "restored"])
        for x in runs:
            tid = f"expire:{x.id}:{v.union_id}:{v.program_id}"
            if x.created_at >= spendable_again and tid in transfers:
                add("expired", x.created_at, code=StepCode.EXPIRED, amount_fen=v.amount_fen,
                    expiry_run_id=x.id, **link(tid), transfer_shared=True, derived=True,
                    **who(f"expiry_run:{x.id}", "expired"))
                break
        else:
            runs = []
    if v.status == VoucherStatus.EXPIRED and not expired_by_refund and not runs:
        add("expired", v.expires_at, code=StepCode.EXPIRED, amount_fen=v.amount_fen,
            derived=True)

    steps, notes = _with_extensions(v, product, exts, events, who)
    ordered = tuple(Step(when_local=clock.format_local(f["at"]), **f) for f in steps)
    return Trace(
        voucher_id=v.id, code_hint=_code_hint(v), form=v.form, status=v.status,
        amount_fen=v.amount_fen, threshold_fen=v.threshold_fen, program_id=v.program_id,
        program_key=program_key, product_name=product.name, union_id=v.union_id,
        union_name=union_name, member_id=v.member_id, member_name=mask_name(member_name),
        member_id_masked=id_masked, issued_at=v.issued_at, valid_from=v.valid_from,
        expires_at=v.expires_at, steps=ordered, notes=tuple(notes))


def _with_extensions(v: Voucher, product: Product, exts: list[Extension], events: list,
                     who) -> tuple[list[dict], list[str]]:
    """Merge the extensions that moved the voucher's deadline into its events, replaying
    ``lifecycle.extend`` (a running voucher, issued or held, is moved) and
    ``redemption.current_deadline`` (a refund applies those made while it was spent)."""
    deadline = product.expires_at
    for e in exts:  # the deadline it was issued with (issuance.deadline_of)
        if (e.program_wide and e.created_at <= v.issued_at
                and (e.product_id is None or e.product_id == v.product_id)):
            deadline = max(deadline, e.new_expires_at)
    later = [e for e in exts if e.created_at > v.issued_at]
    timeline = sorted(events + [(e.created_at, _RANK["extension"], -1, {"ext": e}) for e in later],
                      key=lambda t: (t[0], t[1], t[2]))
    out: list[dict] = []
    spent_since: datetime | None = None
    done = False  # expired, or refunded after its deadline

    def moved(e: Extension, at: datetime, **extra) -> dict:
        audit = who(f"extension:{e.id}", "extended")
        return dict(at=at, code=StepCode.EXTENDED, extension_id=e.id, expires_before=deadline,
                    expires_after=e.new_expires_at, reason=e.reason, document=e.document,
                    derived=True, actor=audit.get("actor", e.actor),
                    audit_seq=audit.get("audit_seq"), **extra)

    for at, _rank, _order, f in timeline:
        if "ext" in f:
            e = f["ext"]
            if (spent_since is None and not done and extension_covers(e, v)
                    and e.created_at < deadline < e.new_expires_at):
                out.append(moved(e, e.created_at))
                deadline = e.new_expires_at
            continue
        out.append(f)
        code = f["code"]
        if code == StepCode.REDEEMED:
            spent_since = _spent_at(events, f)
        elif code == StepCode.REFUNDED:
            for e in later:  # redemption.current_deadline
                if (spent_since is not None and spent_since <= e.created_at <= at
                        and extension_covers(e, v) and e.created_at < deadline < e.new_expires_at):
                    out.append(moved(e, at, outcome="on_refund"))
                    deadline = e.new_expires_at
            spent_since = None
            done = f.get("outcome") == "to_fund"
        elif code == StepCode.EXPIRED:
            done = True
    notes = [] if deadline == v.expires_at else ["deadline_replay_mismatch"]
    return out, notes


def _spent_at(events: list, redeemed: dict) -> datetime:
    """``redemption.created_at`` of a redeemed step (a captured hold: when it was held)."""
    for _at, _r, _o, f in events:
        if f.get("code") == StepCode.HELD and f.get("redemption_id") == redeemed["redemption_id"]:
            return f["at"]
    return redeemed["at"]
