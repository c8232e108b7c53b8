"""Reading and verifying the audit log (auditors and the province)."""

from __future__ import annotations

from fastapi import Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.api.pagination import Page, PageParams, page_params, paginate
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import AuditBreak, AuditEntryOut, AuditVerifyOut
from civicvoucher.audit.models import AuditEntry
from civicvoucher.audit.service import verify_now
from civicvoucher.i18n import localize

router = make_router("/audit", "audit")


def entry_out(e: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(seq=e.seq, created_at=e.created_at, actor=e.actor, role=e.role,
                         scope=e.scope, action=e.action, target=e.target, outcome=e.outcome,
                         request_id=e.request_id, detail=e.detail, hash=e.hash)


@router.get("", response_model=Page[AuditEntryOut], name="list_audit")
def list_audit(action: str | None = Query(None, max_length=80, pattern=r"^[a-z_.]+$"),
               page: PageParams = Depends(page_params),
               c: Ctx = Depends(ctx)) -> Page[AuditEntryOut]:
    """Entries made by actors inside your subtree (the province sees all), oldest first."""

    def run(s: Session) -> Page[AuditEntryOut]:
        q = select(AuditEntry)
        if c.principal.org_level != "province":
            q = q.where(AuditEntry.scope.startswith(f"org:{c.principal.org_path}"))
        if action:
            q = q.where(AuditEntry.action == action)
        result = paginate(s, q, AuditEntry.seq, page, entry_out)
        c.audit(s, "audit.read", detail={"count": len(result.items)})
        return result

    return c.db.run(run)


@router.get("/verify", response_model=AuditVerifyOut, name="verify_audit")
def verify_audit(c: Ctx = Depends(ctx)) -> AuditVerifyOut:
    """Walk the hash chain: any edited or deleted entry is named."""
    n, breaks = verify_now(c.db, key=c.st.audit_key)
    return AuditVerifyOut(ok=not breaks, entries=n,
                          breaks=[AuditBreak(seq=b.seq, reason=localize(b.reason)) for b in breaks[:500]])

