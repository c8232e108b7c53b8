"""Member registry use cases: bulk add, import from a file, duplicate report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock
from civicvoucher.core.tabular import read_table, write_table
from civicvoucher.errors import ImportRejected, RowError
from civicvoucher.members.models import Member
from civicvoucher.members.rules import (
    MEMBER_ALIASES,
    MemberRow,
    hash_id_number,
    mask_id_number,
    mask_phone,
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


@dataclass
class ImportResult:
    rows: int
    imported: int
    unchanged: int
    rejected: list[RowError] = field(default_factory=list)
    reject_file: Path | None = None
    duplicates: list[CrossUnionDuplicate] = field(default_factory=list)


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
            errors.append(RowError(row_no, "union", f"no grassroots union with code {r.union}"))
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
    """People registered under more than one union (optionally only among ``hashes``)."""
    q = (
        select(M.c.id_hash)
        .group_by(M.c.id_hash)
        .having(func.count(func.distinct(M.c.union_id)) > 1)
    )
    dup_hashes = [h for h in session.execute(q).scalars() if hashes is None or h in hashes]
    out = []
    for i in range(0, len(dup_hashes), BATCH):
        chunk = dup_hashes[i : i + BATCH]
        rows = session.execute(
            select(M.c.id_hash, M.c.id_masked, M.c.union_id)
            .where(M.c.id_hash.in_(chunk)).order_by(M.c.id_hash, M.c.union_id)
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
) -> ImportResult:
    """Import a CSV/XLSX roster. One bad row imports nothing and names row, column and reason;
    with ``reject_path`` the good rows are imported and the bad ones written there."""
    table = read_table(path, aliases=MEMBER_ALIASES)
    good, errors = validate_member_rows(table)
    bad_rows = {e.row for e in errors}
    good_numbered = [(n, r) for n, r in good if n not in bad_rows]
    inserted, unchanged, union_errors, hashes = (0, 0, [], set())
    if not errors or reject_path is not None:
        inserted, unchanged, union_errors, hashes = add_members(
            session, good_numbered, key=key, progress=progress
        )
    errors = sorted(errors + union_errors, key=lambda e: (e.row, e.field))
    if errors and reject_path is None:
        raise ImportRejected(errors, total_rows=len(table.rows))
    if union_errors and reject_path is not None:
        # unknown unions were found only now: import the rest again without them
        bad_rows |= {e.row for e in union_errors}
        good_numbered = [(n, r) for n, r in good_numbered if n not in bad_rows]
        inserted, unchanged, _, hashes = add_members(session, good_numbered, key=key)
    result = ImportResult(rows=len(table.rows), imported=inserted, unchanged=unchanged)
    if errors and reject_path is not None:
        _write_rejects(reject_path, table, errors)
        result.rejected = errors
        result.reject_file = reject_path
    result.duplicates = cross_union_duplicates(session, hashes)
    return result


def _write_rejects(path: Path, table, errors: list[RowError]) -> None:
    reasons: dict[int, list[str]] = {}
    for e in errors:
        reasons.setdefault(e.row, []).append(f"{e.field}: {e.reason}")
    header = [*table.header, "row", "error"]
    rows = [
        [*(cells.get(h, "") for h in table.header), n, "; ".join(reasons[n])]
        for n, cells in table.rows
        if n in reasons
    ]
    write_table(path, header, rows)
