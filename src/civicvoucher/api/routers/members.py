"""The member registry: masked listings (every read audited) and roster upload."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, File, Path, Query, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import ImportOut, MemberAdminView, RowErrorOut
from civicvoucher.api.uploads import read_upload, saved_upload
from civicvoucher.auth import scope
from civicvoucher.auth.errors import OutOfScope
from civicvoucher.errors import ImportRejected, NotFound, RowError
from civicvoucher.members.models import Member
from civicvoucher.members.rules import MEMBER_ALIASES, validate_member_rows
from civicvoucher.members.service import import_members
from civicvoucher.orgs.models import Org
from civicvoucher.orgs.rules import OrgLevel, normalise_code

router = make_router("/members", "members")


def member_view(m: Member) -> MemberAdminView:
    return MemberAdminView(id=m.id, union_id=m.union_id, name=m.name, id_masked=m.id_masked,
                           phone_masked=m.phone_masked, status=m.status)


@router.get("", response_model=Page[MemberAdminView], name="list_members")
def list_members(org_id: int | None = Query(None, ge=1, le=2_147_483_647,
                                            description="a union or federation in your scope"),
                 status: Literal["active", "suspended", "left"] | None = None,
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
            raise NotFound(f"no member {member_id}", code="member_not_found")
        scope.require_member(s, c.principal, m)
        c.audit(s, "member.read", target=f"member:{m.id}")
        return member_view(m)

    return c.db.run(run)


@router.post("/import", response_model=ImportOut, name="import_members_upload",
             openapi_extra={"x-upload": "CSV (UTF-8, UTF-8 with BOM, GBK) or XLSX roster"})
def import_members_upload(file: UploadFile = File(...), c: Ctx = Depends(ctx)) -> ImportOut:
    """Import a member roster. All or nothing: one bad row imports nothing and the answer names
    every bad row. Every row's union must be in your scope."""
    with saved_upload(file, "roster") as path:
        table = read_upload(path, MEMBER_ALIASES)
        good, errors = validate_member_rows(table)
        if errors:
            raise ImportRejected(errors, total_rows=len(table.rows))

        def run(s: Session) -> ImportOut:
            usccs = {r.union for _, r in good}
            unions = {o.uscc: o for o in s.execute(
                select(Org).where(Org.uscc.in_(usccs), Org.level == OrgLevel.UNION)).scalars()}
            bad = [RowError(n, "union", "this union is outside your scope")
                   for n, r in good if normalise_code(r.union) in unions
                   and not scope.org_in_scope(c.principal, unions[normalise_code(r.union)])]
            if bad:
                raise OutOfScope(f"{len(bad)} rows name unions outside your scope "
                                 f"(first: row {bad[0].row})")
            res = import_members(s, path=path, key=c.st.secret_key)
            c.audit(s, "member.import", target=f"file:{file.filename or ''}"[:200],
                    detail={"rows": res.rows, "imported": res.imported,
                            "unchanged": res.unchanged})
            return ImportOut(rows=res.rows, imported=res.imported, unchanged=res.unchanged,
                             rejected=[RowErrorOut(row=e.row, field=e.field, reason=e.reason)
                                       for e in res.rejected],
                             duplicates=len(res.duplicates))

        return c.db.run(run)
