"""Organisation use cases: create, import, subtree queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import String, cast, select, update
from sqlalchemy.orm import Session

from civicvoucher.bulk import bulk_insert, db_datetime
from civicvoucher.core import clock, ids
from civicvoucher.core.regions import region_prefix
from civicvoucher.errors import Conflict, ImportRejected, NotFound, RowError, ValidationError
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import (
    OrgLevel,
    OrgRow,
    UnitType,
    division_problem,
    level_problem,
)

PARENT_LEVELS = {
    OrgLevel.PROVINCE: (),
    OrgLevel.CITY: (OrgLevel.PROVINCE,),
    OrgLevel.COUNTY: (OrgLevel.CITY,),
    OrgLevel.UNION: (OrgLevel.PROVINCE, OrgLevel.CITY, OrgLevel.COUNTY),
}


def create_org(
    session: Session,
    *,
    level: str,
    name: str,
    parent_id: int | None = None,
    division_code: str | None = None,
    uscc: str | None = None,
    unit_type: str | None = None,
) -> Org:
    """Add one organisation under its parent; path and region code are derived here."""
    level = OrgLevel(level)
    parent = session.get(Org, parent_id) if parent_id is not None else None
    _check_parent(level, parent)
    if level != OrgLevel.UNION:
        _check_division(session, level, division_code, parent)
    if level == OrgLevel.UNION and not uscc:
        raise ValidationError(N_("a grassroots union needs its unified social credit code"),
                              field="uscc")
    if uscc and session.execute(select(Org.id).where(Org.uscc == uscc)).first():
        raise Conflict(msg("an organisation with USCC {uscc} exists already", uscc=uscc),
                       code="org_exists", field="uscc")
    org = Org(
        parent_id=parent_id, level=level, name=name, division_code=division_code, uscc=uscc,
        unit_type=unit_type, path="", created_at=clock.now(),
        region_code=division_code if level != OrgLevel.UNION else parent.region_code,  # type: ignore[union-attr]
    )
    session.add(org)
    session.flush()
    org.path = f"{parent.path if parent else '/'}{org.id}/"
    session.flush()
    return org


def _check_division(session: Session, level: OrgLevel, code: str | None,
                    parent: Org | None) -> None:
    """A federation's code has its level's shape and lies inside its parent's region: a city
    admin cannot mint a county of another city and so widen its own reach."""
    if not code:
        raise ValidationError(N_("a federation needs its division code"), field="division_code")
    problem = division_problem(code) or level_problem(code, level)
    if problem:
        raise ValidationError(problem, field="division_code")
    if parent is not None and not code.startswith(region_prefix(parent.region_code, "county")):
        raise ValidationError(
            msg("{code} is not inside {parent}'s region {region}", code=code,
                parent=parent.name, region=parent.region_code),
            field="division_code")
    if session.execute(select(Org.id).where(Org.division_code == code)).first():
        raise Conflict(msg("an organisation with division code {code} exists already", code=code),
                       code="org_exists", field="division_code")


def _check_parent(level: OrgLevel, parent: Org | None) -> None:
    allowed = PARENT_LEVELS[level]
    if not allowed:
        if parent is not None:
            raise ValidationError(N_("a province federation has no parent"), field="parent")
        return
    if parent is None:
        raise ValidationError(msg("a {level} organisation needs a parent",
                                  level=Term(level, "org_level")), field="parent")
    if parent.level not in allowed:
        raise ValidationError(
            msg("a {level} organisation cannot sit under a {parent}",
                level=Term(level, "org_level"), parent=Term(parent.level, "org_level")),
            field="parent",
        )


def import_orgs(session: Session, rows: Sequence[tuple[int, OrgRow]]) -> list[Org]:
    """Create validated rows in file order; parents may be earlier rows or already stored.

    All or nothing: any row that cannot be placed rejects the whole import.
    """
    errors: list[RowError] = []
    created: list[Org] = []
    by_code = {
        o.division_code: o
        for o in session.execute(select(Org).where(Org.division_code.is_not(None))).scalars()
    }
    known_uscc = set(
        session.execute(select(Org.uscc).where(Org.uscc.is_not(None))).scalars()
    )
    for row_no, r in rows:
        parent = by_code.get(r.parent) if r.parent else None
        if r.parent and parent is None:
            errors.append(RowError(row_no, "parent",
                                   msg("no federation with code {code}", code=r.parent)))
            continue
        if r.division_code and r.division_code in by_code:
            errors.append(RowError(row_no, "division_code",
                                   msg("{code} exists already", code=r.division_code)))
            continue
        if r.uscc and r.uscc in known_uscc:
            errors.append(RowError(row_no, "uscc", msg("{code} exists already", code=r.uscc)))
            continue
        try:
            org = create_org(
                session, level=r.level, name=r.name, parent_id=parent.id if parent else None,
                division_code=r.division_code, uscc=r.uscc, unit_type=r.unit_type,
            )
        except ValidationError as exc:
            errors.append(RowError(row_no, exc.field or "level", exc.message))
            continue
        if org.division_code:
            by_code[org.division_code] = org
        if org.uscc:
            known_uscc.add(org.uscc)
        created.append(org)
    if errors:
        raise ImportRejected(errors, total_rows=len(rows))
    return created


def get_org(session: Session, org_id: int) -> Org:
    org = session.get(Org, org_id)
    if org is None:
        raise NotFound(msg("organisation {id} does not exist", id=org_id), code="org_not_found")
    return org


def find_org(session: Session, ref: str | int) -> Org:
    """By id, division code or USCC: what a person types on the command line."""
    s = str(ref).strip()
    q = select(Org).where((Org.division_code == s) | (Org.uscc == s.upper()))
    org = session.execute(q).scalar_one_or_none()
    if org is None and len(s) != 6 and (oid := ids.as_id(s)) is not None:
        org = session.get(Org, oid)
    if org is None:
        raise NotFound(msg("no organisation {ref}", ref=s), code="org_not_found")
    return org


def subtree(session: Session, org: Org, *, level: str | None = None) -> list[Org]:
    """The organisation and everything under it: one indexed prefix query."""
    q = select(Org).where(Org.path.startswith(org.path)).order_by(Org.path)
    if level:
        q = q.where(Org.level == level)
    return list(session.execute(q).scalars())


def is_within(org: Org, ancestor: Org) -> bool:
    return org.path.startswith(ancestor.path)


def add_unions(session: Session, rows: Sequence[tuple[int, str, str, str]]) -> dict[str, int]:
    """Bulk-create grassroots unions: (parent federation id, name, USCC, unit type) each.

    One batch insert, then one UPDATE derives every path from its parent's. Returns USCC → id.
    """
    parents = {o.id: o for o in session.execute(
        select(Org).where(Org.id.in_({r[0] for r in rows}))).scalars()}
    now = db_datetime(session, clock.now())
    records = []
    for parent_id, name, uscc, unit_type in rows:
        parent = parents.get(parent_id)
        if parent is None or parent.level == OrgLevel.UNION:
            raise ValidationError(msg("union {uscc} needs a federation as parent", uscc=uscc),
                                  field="parent")
        records.append((parent_id, str(OrgLevel.UNION), name, uscc, str(UnitType(unit_type)), "",
                        parent.region_code, now))
    bulk_insert(session, "org", ("parent_id", "level", "name", "uscc", "unit_type", "path",
                                 "region_code", "created_at"), records)
    org, parent = Org.__table__, Org.__table__.alias("parent")
    parent_path = select(parent.c.path).where(parent.c.id == org.c.parent_id).scalar_subquery()
    session.execute(
        update(org).where(org.c.path == "")
        .values(path=parent_path + cast(org.c.id, String) + "/")
    )
    codes = [r[2] for r in rows]
    found: dict[str, int] = {}
    for i in range(0, len(codes), 10_000):  # PostgreSQL takes at most 65,535 parameters
        found.update(session.execute(
            select(Org.uscc, Org.id).where(Org.uscc.in_(codes[i : i + 10_000]))).all())
    return found
