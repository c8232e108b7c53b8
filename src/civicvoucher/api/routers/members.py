"""The member registry: masked listings (every read audited), roster upload (with updates),
and one member's status, phone and transfer to another union (audited with the actor)."""

from __future__ import annotations

from typing import Literal

from fastapi import Body, Depends, File, Path, Query, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import (
    FieldChangeOut,
    MemberAdminView,
    MemberChangeOut,
    MemberImportOut,
    MemberPhoneIn,
    MemberRowChangeOut,
    MemberStatusIn,
    MemberTransferIn,
    MemberTransferOut,
    RowErrorOut,
)
from civicvoucher.api.uploads import read_upload, saved_upload
from civicvoucher.auth import scope
from civicvoucher.auth.errors import OutOfScope
from civicvoucher.errors import ImportRejected, NotFound, RowError
from civicvoucher.i18n import N_, localize, msg, nmsg
from civicvoucher.members.models import Member
from civicvoucher.members.rules import MEMBER_ALIASES, validate_member_rows
from civicvoucher.members.service import (
    MemberChange,
    change_member,
    import_members,
    transfer_member,
)
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel, normalise_code

router = make_router("/members", "members")
MemberId = Path(ge=1, le=2_147_483_647)
CHANGES_SHOWN = 1000


def member_view(m: Member) -> MemberAdminView:
    return MemberAdminView(id=m.id, union_id=m.union_id, name=m.name, id_masked=m.id_masked,
                           phone_masked=m.phone_masked, status=m.status)


@router.get("", response_model=Page[MemberAdminView], name="list_members")
def list_members(org_id: int | None = Query(None, ge=1, le=2_147_483_647,
                                            description="a union or federation in your scope"),
                 status: Literal["active", "suspended", "left", "transferred"] | None = None,
                 page: PageParams = Depends(page_params),
                 c: Ctx = Depends(ctx)) -> Page[MemberAdminView]:
    """Members of the unions under an organisation, masked. Every listing is audited."""

    def run(s: Session) -> Page[MemberAdminView]:
        root = scope.scoped_root(s, c.principal, org_id)
        q = (select(Member).join(Org, Org.id == Member.union_id)
             .where(Org.path.startswith(root.path)))
        if status:
            q = q.where(Member.status == status)
        result = paginate(s, q, Member.id, page, member_view)
        c.audit(s, "member.list", target=f"org:{root.id}",
                detail={"count": len(result.items), "member_ids": [m.id for m in result.items]})
        return result

    return c.db.run(run)


@router.get("/{member_id}", response_model=MemberAdminView, name="get_member")
def get_member(member_id: int = Path(ge=1, le=2_147_483_647),
               c: Ctx = Depends(ctx)) -> MemberAdminView:
    def run(s: Session) -> MemberAdminView:
        m = s.get(Member, member_id)
        if m is None:
            raise NotFound(msg("no member {id}", id=member_id), code="member_not_found")
        scope.require_member(s, c.principal, m)
        c.audit(s, "member.read", target=f"member:{m.id}")
        return member_view(m)

    return c.db.run(run)


@router.post("/import", response_model=MemberImportOut, name="import_members_upload",
             openapi_extra={"x-upload": "CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX roster"})
def import_members_upload(
    file: UploadFile = File(...),
    update: bool = Query(False, description="also apply the file's name, phone and status to "
                         "people already registered in that union (empty cells change nothing)"),
    dry_run: bool = Query(False, description="write nothing: the answer is the preview"),
    c: Ctx = Depends(ctx),
) -> MemberImportOut:
    """Import a member roster. All or nothing: one bad row imports nothing and the answer names
    every bad row. Every row's union must be in your scope. ``changes`` lists the registered
    members who differ from the file (field, from, to); they are changed only with
    ``update=true``, each change audited."""
    with saved_upload(file, "roster") as path:
        table = read_upload(path, MEMBER_ALIASES)
        good, errors = validate_member_rows(table)
        if errors:
            raise ImportRejected(errors, total_rows=len(table.rows))

        def run(s: Session) -> MemberImportOut:
            usccs = {r.union for _, r in good}
            unions = {o.uscc: o for o in s.execute(
                select(Org).where(Org.uscc.in_(usccs), Org.level == OrgLevel.UNION)).scalars()}
            bad = [RowError(n, "union", N_("this union is outside your scope"))
                   for n, r in good if normalise_code(r.union) in unions
                   and not scope.org_in_scope(c.principal, unions[normalise_code(r.union)])]
            if bad:
                raise OutOfScope(nmsg("{n} row names a union outside your scope (row {row})",
                                      "{n} rows name unions outside your scope (first: row "
                                      "{row})", len(bad), row=bad[0].row))
            res = import_members(s, path=path, key=c.st.secret_key, update=update,
                                 dry_run=dry_run, audit=_audit_with(c))
            if not dry_run:
                c.audit(s, "member.import", target=f"file:{file.filename or ''}"[:200],
                        detail={"rows": res.rows, "imported": res.imported,
                                "unchanged": res.unchanged, "updated": res.updated})
            return MemberImportOut(
                rows=res.rows, imported=res.imported, unchanged=res.unchanged,
                rejected=[RowErrorOut(row=e.row, field=e.field, reason=localize(e.reason))
                          for e in res.rejected],
                duplicates=len(res.duplicates), updated=res.updated, dry_run=dry_run,
                changes_total=len(res.changes),
                changes=[MemberRowChangeOut(row=ch.row, member_id=ch.member_id,
                                            id_masked=ch.id_masked, changes=_fields(ch))
                         for ch in res.changes[:CHANGES_SHOWN]])

        return c.db.run(run)


def _audit_with(c: Ctx):
    def audit(s: Session, action: str, target: str, detail: dict) -> int:
        return c.audit(s, action, target=target, detail=detail)

    return audit


def _fields(change: MemberChange | None) -> list[FieldChangeOut]:
    if change is None:
        return []
    return [FieldChangeOut(field=f.field, old=f.old, new=f.new)  # type: ignore[arg-type]
            for f in change.changes]


def _member_in_scope(s: Session, c: Ctx, member_id: int) -> Member:
    m = s.get(Member, member_id)
    if m is None:
        raise NotFound(msg("no member {id}", id=member_id), code="member_not_found")
    return scope.require_member(s, c.principal, m)


@router.post("/{member_id}/status", response_model=MemberChangeOut, name="set_member_status")
def set_member_status(body: MemberStatusIn, member_id: int = MemberId,
                      c: Ctx = Depends(ctx)) -> MemberChangeOut:
    """Change a member's status: 在职 active, 停用 suspended, 离会 left, 调出 transferred (to a
    union outside this registry). Only active members are issued vouchers. Audited."""

    def run(s: Session) -> MemberChangeOut:
        _member_in_scope(s, c, member_id)
        m, change = change_member(s, member_id, key=c.st.secret_key, audit=_audit_with(c),
                                  status=body.status, reason=body.reason)
        return MemberChangeOut(member=member_view(m), changed=change is not None,
                               changes=_fields(change))

    return c.db.run(run)


@router.post("/{member_id}/phone", response_model=MemberChangeOut, name="set_member_phone")
def set_member_phone(body: MemberPhoneIn = Body(...), member_id: int = MemberId,
                     c: Ctx = Depends(ctx)) -> MemberChangeOut:
    """Set (or, with null, remove) a member's mobile number; stored masked and hashed."""

    def run(s: Session) -> MemberChangeOut:
        _member_in_scope(s, c, member_id)
        m, change = change_member(s, member_id, key=c.st.secret_key, audit=_audit_with(c),
                                  phone=body.phone, clear_phone=body.phone is None)
        return MemberChangeOut(member=member_view(m), changed=change is not None,
                               changes=_fields(change))

    return c.db.run(run)


@router.post("/{member_id}/transfer", response_model=MemberTransferOut,
             name="transfer_member_route")
def transfer_member_route(body: MemberTransferIn, member_id: int = MemberId,
                          c: Ctx = Depends(ctx)) -> MemberTransferOut:
    """Transfer a member to another union (调出/调入). Both the member and the union they move
    to must be in your scope. The old row is marked transferred; the new union gets the
    person's row (an existing one is reused). Vouchers already issued stay with the union that
    issued them, and no product is issued to the person twice. Audited."""

    def run(s: Session) -> MemberTransferOut:
        _member_in_scope(s, c, member_id)
        scope.require_union_id(s, c.principal, body.to_union_id)
        t = transfer_member(s, member_id, to_union_id=body.to_union_id,
                            audit=_audit_with(c), reason=body.reason)
        return MemberTransferOut(old=member_view(t.old), new=member_view(t.new),
                                 created=t.created, changed=t.changed)

    return c.db.run(run)
