"""Issuance: a grassroots union issues its active members' entitlement for a program.

Funds are checked and moved in the same transaction (union fund → program reserve →
outstanding vouchers). The reserve account row is locked first, so two issuances for one
union and program queue; the fund row is locked next, so issuances drawing on one fund queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock, ids
from civicvoucher.db import once
from civicvoucher.errors import Conflict, IdempotencyConflict, ValidationError
from civicvoucher.funds.service import fund_account
from civicvoucher.i18n import N_, msg
from civicvoucher.ledger import service as ledger
from civicvoucher.ledger.rules import AccountCode, TransferCode
from civicvoucher.members.models import Member
from civicvoucher.members.rules import MemberStatus
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel
from civicvoucher.orgs.service import get_org, is_within
from civicvoucher.programs.models import Product, Program
from civicvoucher.programs.service import (
    get_program,
    lock_program,
    products_of,
    replace_definition,
    same_definition,
)
from civicvoucher.vouchers.models import Entitlement, Extension, Issuance
from civicvoucher.vouchers.rules import (
    IssuanceStatus,
    IssueMode,
    VoucherForm,
    VoucherStatus,
    request_hash,
)

VOUCHER_COLUMNS = (
    "code", "program_id", "product_id", "union_id", "member_id", "issuance_id", "amount_fen",
    "threshold_fen", "form", "status", "valid_from", "expires_at", "issued_at", "region_code",
)
ENTITLEMENT_COLUMNS = ("product_id", "person_hash", "member_id", "union_id", "issuance_id")


@dataclass(frozen=True)
class IssueResult:
    issuance: Issuance
    replayed: bool


def reserve_account(session: Session, union_id: int, program_id: int) -> int:
    return ledger.account_id(
        session, AccountCode.PROGRAM_RESERVE, union_id, program_id,
        org_id=union_id, program_id=program_id,
    )


def outstanding_account(session: Session, union_id: int, program_id: int) -> int:
    return ledger.account_id(
        session, AccountCode.VOUCHERS_OUTSTANDING, union_id, program_id,
        org_id=union_id, program_id=program_id,
    )


def deadline_of(session: Session, product: Product) -> datetime:
    """A product's deadline, moved by any program-wide extension of it."""
    later = session.execute(
        select(func.max(Extension.new_expires_at)).where(
            Extension.program_id == product.program_id,
            Extension.program_wide.is_(True),
            or_(Extension.product_id.is_(None), Extension.product_id == product.id),
        )
    ).scalar()
    return max(product.expires_at, later) if later else product.expires_at


def issue(
    session: Session,
    *,
    union_id: int,
    program: str | int,
    idem_key: str,
    products: list[str] | None = None,
    member_ids: list[int] | None = None,
    form: str = VoucherForm.DIGITAL,
    mode: str = IssueMode.ALL_OR_NOTHING,
    funding_org_id: int | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> IssueResult:
    """Issue the entitlement of a union's active members (or of ``member_ids`` among them).

    Nobody is issued a product twice: a person entitled through another union is counted as a
    duplicate and skipped. If funds fall short, ``all_or_nothing`` issues nothing (status
    refused) and ``partial`` issues to members in registry order as far as funds go; either
    way the shortfall is recorded.
    """
    now = now or clock.now()
    prog = get_program(session, program)
    params = dict(union_id=union_id, program=prog.key, products=products, form=str(form),
                  member_ids=member_ids, mode=str(mode), funding_org_id=funding_org_id)
    rh = request_hash(**params)

    def find() -> Issuance | None:
        found = session.execute(select(Issuance).where(Issuance.idem_key == idem_key)).scalar()
        if found is not None and found.request_hash != rh:
            raise IdempotencyConflict(msg("issuance key {key} was used for another request",
                                          key=idem_key))
        return found

    iss, replayed = once(session, "issue", find, lambda: _issue(
        session, prog=prog, union_id=union_id, idem_key=idem_key, rh=rh, products=products,
        member_ids=member_ids, form=form, mode=mode, funding_org_id=funding_org_id,
        actor=actor, now=now))
    return IssueResult(iss, replayed)


def _issue(session: Session, *, prog: Program, union_id: int, idem_key: str, rh: str,
           products: list[str] | None, member_ids: list[int] | None, form: str, mode: str,
           funding_org_id: int | None, actor: str | None, now: datetime) -> Issuance:
    lock_program(session, prog.id, exclusive=False)
    union = get_org(session, union_id)
    if union.level != OrgLevel.UNION:
        raise ValidationError(N_("only a grassroots union issues to members"), field="union")
    form, mode = VoucherForm(form), IssueMode(mode)
    chosen = _choose_products(session, prog, products)
    funder = union if funding_org_id is None else get_org(session, funding_org_id)
    if not is_within(union, funder):
        raise ValidationError(N_("a fund can pay only for unions in its own subtree"),
                              field="funding_org")
    deadlines = {p.id: deadline_of(session, p) for p in chosen}
    if any(d <= now for d in deadlines.values()):
        raise ValidationError(N_("the program's spending window has closed"), field="program",
                              code="program_closed")

    reserve = reserve_account(session, union.id, prog.id)
    ledger.lock_account(session, reserve)  # one issuance per union and program at a time
    planned = plan_issuance(session, prog=prog, union=union, chosen=chosen,
                            member_ids=member_ids)
    plan, eligible, duplicates = planned.items, planned.eligible, planned.duplicates
    total = planned.needed_fen

    fund = fund_account(session, funder.id)
    available = ledger.lock_account(session, fund).available
    if total == 0:
        status, issued = IssuanceStatus.NOTHING_TO_ISSUE, []
    elif available >= total:
        status, issued = IssuanceStatus.COMPLETED, plan
    elif mode == IssueMode.ALL_OR_NOTHING:
        status, issued = IssuanceStatus.REFUSED, []
    else:
        issued, spent = [], 0
        for item in plan:  # registry order: the order is recorded by the entitlement rows
            if spent + item[2] > available:
                break
            issued.append(item)
            spent += item[2]
        status = IssuanceStatus.PARTIAL if issued else IssuanceStatus.REFUSED
    amount = sum(cost for _, _, cost in issued)

    iss = Issuance(
        idem_key=idem_key, request_hash=rh, union_id=union.id, program_id=prog.id,
        products=[p.key for p in chosen], funding_org_id=funder.id, mode=mode, form=form,
        status=status, members_eligible=eligible, members_issued=len(issued),
        members_duplicate=duplicates, vouchers_issued=0, amount_fen=amount,
        shortfall_fen=total - amount, region_code=union.region_code, actor=actor, created_at=now,
    )
    session.add(iss)
    session.flush()
    if amount:
        outstanding = outstanding_account(session, union.id, prog.id)
        ledger.post_transfer(session, id=f"issue:{iss.id}:reserve", debit_account_id=fund,
                             credit_account_id=reserve, amount=amount, code=TransferCode.RESERVE,
                             now=now)
        ledger.post_transfer(session, id=f"issue:{iss.id}:issue", debit_account_id=reserve,
                             credit_account_id=outstanding, amount=amount,
                             code=TransferCode.ISSUE, now=now)
        iss.vouchers_issued = _write_vouchers(session, iss, union, issued, deadlines, form, now)
    session.flush()
    return iss


@dataclass(frozen=True)
class IssuancePlan:
    """What an issuance for a union would issue now, read without writing or locking: the
    products chosen, the members to receive (registry order, each with what they lack and its
    cost), the active members counted and those entitled through another union."""

    products: list[Product]
    items: list  # [(member row, [products], cost_fen)...]
    eligible: int
    duplicates: int

    @property
    def needed_fen(self) -> int:
        return sum(cost for _, _, cost in self.items)

    @property
    def first_fen(self) -> int:
        """The first member's cost: partial issuance stops at the first one that does not fit."""
        return self.items[0][2] if self.items else 0


def plan_issuance(session: Session, *, prog: Program, union: Org,
                  products: list[str] | None = None, member_ids: list[int] | None = None,
                  chosen: list[Product] | None = None) -> IssuancePlan:
    """The plan ``issue`` follows for ``union`` (its funding check), read-only. ``_issue``
    calls it holding its locks; a page calls it to show the check before confirming."""
    if chosen is None:
        chosen = _choose_products(session, prog, products)
    items, eligible, duplicates = _plan(session, union, chosen, member_ids)
    return IssuancePlan(list(chosen), items, eligible, duplicates)


def _choose_products(session: Session, prog: Program, keys: list[str] | None) -> list[Product]:
    all_products = products_of(session, prog.id)
    if keys is None:
        return [p for p in all_products if not p.optional]
    by_key = {p.key: p for p in all_products}
    missing = [k for k in keys if k not in by_key]
    if missing or not keys:
        raise ValidationError(msg("no product {products} in {program}", products=missing,
                                  program=prog.key) if missing else
                              msg("no product given for {program}", program=prog.key),
                              field="products")
    return [by_key[k] for k in dict.fromkeys(keys)]


def _plan(session: Session, union: Org, chosen: list[Product], member_ids: list[int] | None):
    """[(member_id, id_hash, [products to issue])...] in registry order, plus counts."""
    q = (
        select(Member.id, Member.id_hash)
        .where(Member.union_id == union.id, Member.status == MemberStatus.ACTIVE)
        .order_by(Member.id)
    )
    members = session.execute(q).all()
    if member_ids is not None:
        wanted = set(member_ids)
        members = [m for m in members if m.id in wanted]
    product_ids = [p.id for p in chosen]
    # Look the members' hashes up by the primary key (product, person) in chunks: a join or
    # subquery lets a planner with stale statistics walk every entitlement of the product
    # for each union (quadratic over a province's issuance; seen on PostgreSQL at scale).
    hashes = [m.id_hash for m in members]
    taken = []
    for i in range(0, len(hashes), 5000):
        taken += session.execute(
            select(Entitlement.product_id, Entitlement.person_hash, Entitlement.union_id).where(
                Entitlement.product_id.in_(product_ids),
                Entitlement.person_hash.in_(hashes[i : i + 5000]),
            )
        ).all()
    entitled = {(pid, h): u for pid, h, u in taken}
    every = (tuple(chosen), sum(p.face_value_fen for p in chosen))
    pairs = [(p.id, p) for p in chosen]
    plan, duplicates = [], 0
    for m in members:
        if not entitled:  # the common case: nobody here has anything yet
            plan.append((m, *every))
            continue
        todo = [p for pid, p in pairs if (pid, m.id_hash) not in entitled]
        if todo:
            plan.append((m, todo, sum(p.face_value_fen for p in todo)))
        elif any(entitled[(pid, m.id_hash)] != union.id for pid, _ in pairs):
            duplicates += 1
    return plan, len(members), duplicates


def _write_vouchers(session, iss, union, issued, deadlines, form, now) -> int:
    union_id, issuance_id = union.id, iss.id
    ents = ((p.id, m.id_hash, m.id, union_id, issuance_id) for m, todo, _ in issued for p in todo)
    bulk_insert(session, "entitlement", ENTITLEMENT_COLUMNS, ents)
    # Everything but the member and the code is the same for all vouchers of a product.
    issued_at = db_datetime(session, now)
    products = {p.id: p for _, todo, _ in issued for p in todo}
    shapes = {pid: _shape(session, p, union, form, deadlines, issued_at)
              for pid, p in products.items()}
    count = sum(len(shapes[p.id]) for _, todo, _ in issued for p in todo)
    codes = iter(ids.voucher_codes(count))
    rows = (
        (next(codes), pid, prod, uid, m.id, issuance_id, d, thr, frm, st, vf, exp, at, region)
        for m, todo, _ in issued
        for p in todo
        for (pid, prod, uid, d, thr, frm, st, vf, exp, at, region) in shapes[p.id]
    )
    return bulk_insert(session, "voucher", VOUCHER_COLUMNS, rows)


def _shape(session, p, union, form, deadlines, issued_at) -> list[tuple]:
    return [(p.program_id, p.id, union.id, d, p.threshold_fen, str(form),
             str(VoucherStatus.ISSUED), db_datetime(session, p.valid_from),
             db_datetime(session, deadlines[p.id]), issued_at, union.region_code)
            for d in p.denominations]


def revise_program(session: Session, *, spec) -> tuple[Program, bool]:
    """Change a program's definition (the file edited, the same key) until it is launched:
    before its first issuance and before any extension. The same definition again changes
    nothing (False); after launch the answer is ``program_launched`` (extend the deadline
    instead: an extension is recorded with who and why)."""
    prog = get_program(session, spec.key)
    lock_program(session, prog.id, exclusive=True)  # no issuance starts meanwhile
    if same_definition(session, prog, spec):
        return prog, False
    launched = session.execute(select(Issuance.id).where(Issuance.program_id == prog.id)
                               .limit(1)).first() or session.execute(
        select(Extension.id).where(Extension.program_id == prog.id).limit(1)).first()
    if launched:
        raise Conflict(msg("program {program} has been launched: its definition cannot change; "
                           "extend its deadline instead", program=prog.key),
                       code="program_launched")
    return replace_definition(session, prog, spec), True
