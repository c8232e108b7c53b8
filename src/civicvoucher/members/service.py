"""Member registry use cases: bulk add, import from a file (and re-import with changes),
one member's status, phone or transfer, duplicate report.

A member is one row per (union, person): the person is the keyed ID hash. Leaving (离会) or
being suspended changes the row's status; a transfer (调出) marks the row ``transferred`` and
adds (or reactivates) the person's row in the new union, so each union's rows and counts stay
its own, the vouchers already issued stay with the union that issued them, and issuance
(active rows only, one entitlement per person and product province-wide) never issues the
person twice. Every change is audited through the caller's ``audit`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from civicvoucher import i18n
from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock
from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.errors import (
    Conflict,
    ImportRejected,
    InvalidTransition,
    NotFound,
    RowError,
    ValidationError,
)
from civicvoucher.i18n import N_, Msg, Term, Text, _, localize, msg, terms
from civicvoucher.members.models import Member
from civicvoucher.members.rules import (
    _MOBILE,
    MEMBER_ALIASES,
    MEMBER_STATUS_LABEL_ZH,
    MemberRow,
    MemberStatus,
    hash_id_number,
    mask_cell,
    mask_id_number,
    mask_phone,
    normalise_phone,
    status_change_problem,
    validate_member_rows,
)
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel

M = Member.__table__
BATCH = 5000
MEMBER_COLUMNS = ("union_id", "name", "id_hash", "id_masked", "phone_masked", "phone_hash",
                  "status", "region_code", "created_at")


@dataclass(frozen=True)
class CrossUnionDuplicate:
    """One person registered in more than one union: reported, never entitled twice."""

    id_masked: str
    union_ids: tuple[int, ...]


class AuditFn(Protocol):
    """How a service records what it did: the API passes its request's actor, the CLI its
    operator (``append`` of audit/service.py in the caller's transaction)."""

    def __call__(self, session: Session, action: str, target: str, detail: dict) -> object: ...


# Statuses that make a person a member of the union now (counted, listed as duplicates).
CURRENT = (MemberStatus.ACTIVE, MemberStatus.SUSPENDED)
REASON_MAX = 200


@dataclass(frozen=True)
class FieldChange:
    """One field of one member, as people see it: phones masked, statuses as values."""

    field: str  # name | phone | status
    old: str | None
    new: str | None

    def __str__(self) -> str:
        def shown(v: str | None) -> str:
            if v is None:
                return "（空）"
            if self.field == "status":
                return f"{MEMBER_STATUS_LABEL_ZH[MemberStatus(v)]}({v})"
            return v

        return f"{self.field}: {shown(self.old)} → {shown(self.new)}"

    @property
    def message(self) -> Msg:
        """The change for a person: 状态：在职 → 离会 / status: active → left."""
        def shown(v: str | None):
            if v is None:
                return msg("(empty)")
            return Term(v, "member_status") if self.field == "status" else v

        return msg("{field}: {old} → {new}", field=Term(self.field, "member_field"),
                   old=shown(self.old), new=shown(self.new))


terms.register("member_field", {"name": "姓名", "phone": "手机号", "status": "状态"})


@dataclass(frozen=True)
class MemberChange:
    """What an update does to one member row; ``problem`` says why it may not be applied."""

    member_id: int
    union_id: int
    id_masked: str
    name: str
    changes: tuple[FieldChange, ...]
    values: dict  # the columns to write
    expect: dict  # the columns as read: the update applies only if they are still so
    row: int | None = None  # the roster row it came from
    problem: str | None = None  # a Msg

    def audit_detail(self, source: str) -> dict:
        # names are not copied into the (unerasable) audit log: that a name changed is enough
        return {"source": source, "row": self.row, "changes": [
            {"field": c.field, "changed": True} if c.field == "name"
            else {"field": c.field, "from": c.old, "to": c.new} for c in self.changes]}


@dataclass
class ImportResult:
    rows: int
    imported: int
    unchanged: int
    rejected: list[RowError] = field(default_factory=list)
    reject_file: Path | None = None
    duplicates: list[CrossUnionDuplicate] = field(default_factory=list)
    changes: list[MemberChange] = field(default_factory=list)  # rows that differ from the registry
    updated: int = 0  # of those, applied (with update=True)
    dry_run: bool = False


def add_members(
    session: Session,
    rows: Sequence[tuple[int, MemberRow]],
    *,
    key: bytes,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, list[RowError], set[str]]:
    """Insert members in batches; a row whose union is unknown becomes a RowError.

    Returns (inserted, unchanged, errors, hashes). Re-importing the same person into the same
    union changes nothing (unique on union and ID hash).
    """
    unions = dict(
        session.execute(
            select(Org.uscc, Org.id).where(Org.level == OrgLevel.UNION)
        ).all()
    )
    regions = dict(session.execute(select(Org.id, Org.region_code)).all())
    errors: list[RowError] = []
    records = []
    now = db_datetime(session, clock.now())
    for row_no, r in rows:
        union_id = unions.get(r.union)
        if union_id is None:
            errors.append(RowError(row_no, "union",
                                   msg("no grassroots union with code {code}", code=r.union)))
            continue
        records.append((
            union_id, r.name, hash_id_number(r.id_number, key=key), mask_id_number(r.id_number),
            mask_phone(r.phone) if r.phone else None,
            hash_id_number(r.phone, key=key) if r.phone else None,
            str(r.status), regions[union_id], now,
        ))
    if errors:
        return 0, 0, errors, set()
    inserted = 0
    hashes = {rec[2] for rec in records}
    for i in range(0, len(records), BATCH):
        chunk = records[i : i + BATCH]
        existing = set(
            session.execute(
                select(M.c.union_id, M.c.id_hash).where(M.c.id_hash.in_([c[2] for c in chunk]))
            ).all()
        )
        fresh = [c for c in chunk if (c[0], c[2]) not in existing]
        inserted += bulk_insert(session, "member", MEMBER_COLUMNS, fresh)
        if progress:
            progress(len(chunk))
    return inserted, len(records) - inserted, [], hashes


def cross_union_duplicates(
    session: Session, hashes: set[str] | None = None
) -> list[CrossUnionDuplicate]:
    """People who are members (active or suspended) of more than one union (optionally only
    among ``hashes``). A row left behind by leaving or a transfer is not a registration."""
    current = M.c.status.in_([str(c) for c in CURRENT])
    q = (
        select(M.c.id_hash)
        .where(current)
        .group_by(M.c.id_hash)
        .having(func.count(func.distinct(M.c.union_id)) > 1)
    )
    dup_hashes = [h for h in session.execute(q).scalars() if hashes is None or h in hashes]
    out = []
    for i in range(0, len(dup_hashes), BATCH):
        chunk = dup_hashes[i : i + BATCH]
        rows = session.execute(
            select(M.c.id_hash, M.c.id_masked, M.c.union_id)
            .where(M.c.id_hash.in_(chunk), current).order_by(M.c.id_hash, M.c.union_id)
        ).all()
        grouped: dict[str, tuple[str, list[int]]] = {}
        for h, masked, union_id in rows:
            grouped.setdefault(h, (masked, []))[1].append(union_id)
        out += [CrossUnionDuplicate(m, tuple(u)) for m, u in grouped.values()]
    return out


def import_members(
    session: Session,
    *,
    path: Path,
    key: bytes,
    reject_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
    update: bool = False,
    dry_run: bool = False,
    audit: AuditFn | None = None,
    min_age: int | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Import a CSV/XLSX roster. One bad row imports nothing and names row, column and reason;
    with ``reject_path`` the good rows are imported and the bad ones written there.

    A row for a person already registered in that union changes nothing, unless ``update``:
    then its name, phone and status are set from the file (an empty phone or status cell
    leaves it as it is), each change audited. ``result.changes`` lists the differences either
    way (field, from, to). With ``dry_run`` nothing is written: the result is the preview.
    A status change the rules refuse (离会 → 停用) is a bad row.
    """
    if update and audit is None and not dry_run:
        raise ValueError("an import with update=True needs an audit function")
    table = read_table(path, aliases=MEMBER_ALIASES)
    good, errors = validate_member_rows(table, min_age=min_age)
    bad_rows = {e.row for e in errors}
    good_numbered = [(n, r) for n, r in good if n not in bad_rows]
    union_errors = _union_errors(session, good_numbered)
    errors = sorted(errors + union_errors, key=lambda e: (e.row, e.field))
    if errors and reject_path is None:
        raise ImportRejected(errors, total_rows=len(table.rows))
    bad_rows |= {e.row for e in union_errors}
    good_numbered = [(n, r) for n, r in good_numbered if n not in bad_rows]

    existing, changes = plan_member_updates(session, good_numbered, key=key)
    if update:
        refused = [RowError(c.row or 0, table.label("status"), c.problem)
                   for c in changes if c.problem]
        if refused and reject_path is None:
            raise ImportRejected(refused, total_rows=len(table.rows))
        if refused:
            errors = sorted(errors + refused, key=lambda e: (e.row, e.field))
            gone = {e.row for e in refused}
            good_numbered = [(n, r) for n, r in good_numbered if n not in gone]
            changes = [c for c in changes if c.row not in gone]
            existing -= len(gone)

    result = ImportResult(rows=len(table.rows), imported=len(good_numbered) - existing,
                          unchanged=existing - (len(changes) if update else 0),
                          changes=changes, dry_run=dry_run)
    if not dry_run:
        inserted, _, _, hashes = add_members(session, good_numbered, key=key, progress=progress)
        result.imported = inserted
        if update and changes:
            assert audit is not None
            result.updated = apply_member_changes(session, changes, audit=audit,
                                                  source="import", now=now)
        result.duplicates = cross_union_duplicates(session, hashes)
    if errors and reject_path is not None:
        if not dry_run:
            _write_rejects(reject_path, table, errors)
        result.rejected = errors
        result.reject_file = None if dry_run else reject_path
    return result


def _union_errors(session: Session, rows: Sequence[tuple[int, MemberRow]]) -> list[RowError]:
    unions = set(session.execute(
        select(Org.uscc).where(Org.level == OrgLevel.UNION,
                               Org.uscc.in_({r.union for _, r in rows}))).scalars())
    return [RowError(n, "union", msg("no grassroots union with code {code}", code=r.union))
            for n, r in rows if r.union not in unions]


def plan_member_updates(
    session: Session, rows: Sequence[tuple[int, MemberRow]], *, key: bytes
) -> tuple[int, list[MemberChange]]:
    """For the rows of people already registered in their union: how many there are, and
    what an update from the file would change (name; phone if given; status if given)."""
    unions = dict(session.execute(
        select(Org.uscc, Org.id).where(Org.level == OrgLevel.UNION,
                                       Org.uscc.in_({r.union for _, r in rows}))).all())
    keyed = [(n, r, unions[r.union], hash_id_number(r.id_number, key=key))
             for n, r in rows if r.union in unions]
    existing, changes = 0, []
    for i in range(0, len(keyed), BATCH):
        chunk = keyed[i : i + BATCH]
        found = {
            (m.union_id, m.id_hash): m
            for m in session.execute(
                select(M.c.id, M.c.union_id, M.c.id_hash, M.c.id_masked, M.c.name,
                       M.c.phone_hash, M.c.phone_masked, M.c.status)
                .where(M.c.id_hash.in_([c[3] for c in chunk]))
            ).all()
        }
        for n, r, union_id, h in chunk:
            m = found.get((union_id, h))
            if m is None:
                continue
            existing += 1
            new_phone = ({"phone_hash": hash_id_number(r.phone, key=key),
                          "phone_masked": mask_phone(r.phone)} if r.phone else None)
            change = _diff(m, name=r.name, phone=new_phone,
                           status=r.status if r.status_given else None, row=n)
            if change is not None:
                changes.append(change)
    return existing, changes


def _diff(m, *, name: str | None, phone: dict | None, status: str | None,
          row: int | None = None, clear_phone: bool = False) -> MemberChange | None:
    fields: list[FieldChange] = []
    values: dict = {}
    expect: dict = {}
    if name is not None and name != m.name:
        fields.append(FieldChange("name", m.name, name))
        values["name"], expect["name"] = name, m.name
    if phone is not None and phone["phone_hash"] != m.phone_hash:
        fields.append(FieldChange("phone", m.phone_masked, phone["phone_masked"]))
        values.update(phone)
        expect["phone_hash"] = m.phone_hash
    elif clear_phone and m.phone_hash is not None:
        fields.append(FieldChange("phone", m.phone_masked, None))
        values.update(phone_hash=None, phone_masked=None)
        expect["phone_hash"] = m.phone_hash
    problem = None
    if status is not None and str(status) != m.status:
        fields.append(FieldChange("status", m.status, str(status)))
        values["status"], expect["status"] = str(status), m.status
        problem = status_change_problem(m.status, status)
    if not fields:
        return None
    return MemberChange(member_id=m.id, union_id=m.union_id, id_masked=m.id_masked, name=m.name,
                        changes=tuple(fields), values=values, expect=expect, row=row,
                        problem=problem)


def apply_member_changes(session: Session, changes: Sequence[MemberChange], *, audit: AuditFn,
                         source: str, reason: str | None = None,
                         now: datetime | None = None) -> int:
    """Write the changes, each only if the member is still as it was read (else Conflict:
    the caller's transaction rolls back, nothing is half applied); one audit entry each."""
    bad = next((c for c in changes if c.problem), None)
    if bad is not None:
        raise InvalidTransition(bad.problem or N_("invalid status change"),
                                code="invalid_transition")
    when = clock.naive_utc(now or clock.now())
    for c in changes:
        values = dict(c.values)
        if "status" in values:
            values.update(status_changed_at=when, status_reason=reason)
            if values["status"] != MemberStatus.TRANSFERRED:
                values["transferred_to_id"] = None
        cond = [M.c.id == c.member_id, *(M.c[k].is_(None) if v is None else M.c[k] == v
                                          for k, v in c.expect.items())]
        done = session.execute(update(M).where(*cond).values(**values)).rowcount
        if done != 1:
            raise Conflict(msg("member {id} changed meanwhile; run again", id=c.member_id),
                           code="member_changed")
        detail = c.audit_detail(source)
        if reason:
            detail["reason"] = reason
        audit(session, "member.update", f"member:{c.member_id}", detail)
    return len(changes)


def get_member_for_update(session: Session, member_id: int) -> Member:
    # populate_existing: a row the session read before the lock is read again under it
    m = session.execute(
        select(Member).where(Member.id == member_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if m is None:
        raise NotFound(msg("no member {id}", id=member_id), code="member_not_found")
    return m


def _check_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > REASON_MAX:
        raise ValidationError(msg("reason is longer than {max} characters", max=REASON_MAX),
                              field="reason")
    return reason


def change_member(
    session: Session,
    member_id: int,
    *,
    key: bytes,
    audit: AuditFn,
    status: str | None = None,
    phone: str | None = None,
    clear_phone: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> tuple[Member, MemberChange | None]:
    """Change one member's status and/or phone; returns the member and what changed (None:
    it already was so, nothing written or audited). Status ``transferred`` without a target
    union marks the person as gone to a union not in this registry; use
    :func:`transfer_member` to move them to one that is."""
    reason = _check_reason(reason)
    new_status = None
    if status is not None:
        try:
            new_status = MemberStatus(status)
        except ValueError:
            raise ValidationError(msg("unknown status {value!r}; use active, suspended, left or"
                                      " transferred", value=status), field="status") from None
    new_phone = None
    if phone is not None:
        number = normalise_phone(phone)
        if not _MOBILE.fullmatch(number):
            raise ValidationError(msg("{phone!r} is not a mainland mobile number"
                                      " (11 digits, 1…)", phone=number), field="phone")
        new_phone = {"phone_hash": hash_id_number(number, key=key),
                     "phone_masked": mask_phone(number)}
    if new_status is None and new_phone is None and not clear_phone:
        raise ValidationError(N_("nothing to change: give a status or a phone"),
                              field="status")
    m = get_member_for_update(session, member_id)
    change = _diff(m, name=None, phone=new_phone, status=new_status, clear_phone=clear_phone)
    if change is None:
        return m, None
    if change.problem:
        raise InvalidTransition(change.problem)
    apply_member_changes(session, [change], audit=audit, source="change", reason=reason,
                         now=now)
    session.refresh(m)
    return m, change


@dataclass(frozen=True)
class Transfer:
    old: Member  # the row in the union the person left: status transferred
    new: Member  # the person's row in the new union
    created: bool  # a new row (False: an existing row of the person there was used)
    changed: bool  # False: already transferred there, nothing done


def transfer_member(
    session: Session,
    member_id: int,
    *,
    to_union_id: int,
    audit: AuditFn,
    reason: str | None = None,
    now: datetime | None = None,
) -> Transfer:
    """Move a member to another union (调出 → 调入).

    The old row becomes ``transferred`` (pointing at the new row); the new union gets a row
    for the same person with the same standing (active or suspended). If the person already
    has a row there (registered twice, or a member there before), that row is used, and
    reactivated if it had left: one row per union and person stays true. Vouchers already
    issued stay the old union's; the entitlement is per person, so the new union's issuance
    does not entitle the person again for a product they already have.
    """
    reason = _check_reason(reason)
    now = now or clock.now()
    m = get_member_for_update(session, member_id)
    target = session.get(Org, to_union_id)
    if target is None or target.level != OrgLevel.UNION:
        raise ValidationError(msg("organisation {id} is not a grassroots union", id=to_union_id),
                              field="to_union_id")
    if target.id == m.union_id:
        raise ValidationError(N_("the member is already in this union"),
                              field="to_union_id")
    if m.status == MemberStatus.TRANSFERRED and m.transferred_to_id is not None:
        there = session.get(Member, m.transferred_to_id)
        if there is not None and there.union_id == target.id:
            return Transfer(m, there, created=False, changed=False)
    if m.status not in CURRENT:
        raise InvalidTransition(
            msg("a member who is {status} cannot be transferred; make them active first",
                status=Term(m.status, "member_status")))
    when = clock.naive_utc(now)
    standing = m.status
    new = session.execute(
        select(Member).where(Member.union_id == target.id, Member.id_hash == m.id_hash)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    created = new is None
    if new is None:
        new = Member(union_id=target.id, name=m.name, id_hash=m.id_hash, id_masked=m.id_masked,
                     phone_masked=m.phone_masked, phone_hash=m.phone_hash, status=standing,
                     region_code=target.region_code, created_at=when, status_reason=reason)
        session.add(new)
        session.flush()
    elif new.status not in CURRENT:
        before = new.status
        new.status, new.status_changed_at, new.status_reason = standing, when, reason
        new.transferred_to_id = None
        audit(session, "member.update", f"member:{new.id}",
              {"source": "transfer", "changes": [{"field": "status", "from": before,
                                                  "to": standing}]})
    done = session.execute(
        update(M).where(M.c.id == m.id, M.c.status == m.status)
        .values(status=str(MemberStatus.TRANSFERRED), transferred_to_id=new.id,
                status_changed_at=when, status_reason=reason)
    ).rowcount
    if done != 1:
        raise Conflict(msg("member {id} changed meanwhile; run again", id=m.id),
                       code="member_changed")
    detail = {"from_union_id": m.union_id, "to_union_id": target.id, "from_status": standing,
              "new_member_id": new.id, "created": created}
    if reason:
        detail["reason"] = reason
    audit(session, "member.transfer", f"member:{m.id}", detail)
    session.refresh(m)
    return Transfer(m, new, created=created, changed=True)


def _write_rejects(path: Path, table, errors: list[RowError]) -> int:
    """The bad rows as the user wrote them: the file's own headers and cells (ID numbers
    masked: the file leaves the system), then the row number and every reason of the row, in
    the reader's language. Returns the number of rows (not errors) written."""
    reasons: dict[int, list[str]] = {}
    for e in errors:
        reasons.setdefault(e.row, []).append(localize(msg(
            "{column}: {reason}", column=table.labels.get(e.field, e.field),
            reason=Text(e.reason))))
    header = [table.labels.get(h, h) for h in table.header] + [_("row"), _("error")]
    sep = "；" if i18n.current() == i18n.ZH else "; "
    rows = [[*(mask_cell(cells.get(h, "")) if h == "id_number" and cells.get(h)
               else cells.get(h, "") for h in table.header), n, sep.join(reasons[n])]
            for n, cells in table.rows if n in reasons]
    write_table(path, header, rows)
    return len(rows)
