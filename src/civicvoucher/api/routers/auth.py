"""Log in, log out, who am I, API tokens, users."""

from __future__ import annotations

from fastapi import Depends, Path
from sqlalchemy.orm import Session

from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx
from civicvoucher.api.schemas import (
    ApiTokenIn,
    ApiTokenOut,
    Revoked,
    UserIn,
    UserOut,
    WhoAmI,
)
from civicvoucher.auth import scope, tokens
from civicvoucher.auth import service as users
from civicvoucher.auth.errors import BindingNotAllowed, OutOfScope
from civicvoucher.auth.roles import Role, stray_binding
from civicvoucher.members.models import Member
from civicvoucher.merchants.service import find_merchant
from civicvoucher.orgs.service import get_org

router = make_router("/auth", "auth")


@router.post("/logout", response_model=Revoked, name="logout")
def logout(c: Ctx = Depends(ctx)) -> Revoked:
    """Revoke the token this request was made with."""

    def run(s: Session) -> Revoked:
        tokens.revoke(s, token_id=c.principal.token_id, user_id=c.principal.user_id)  # type: ignore[arg-type]
        c.audit(s, "auth.logout", target=f"token:{c.principal.token_id}")
        return Revoked(revoked=True)

    return c.db.run(run)


@router.get("/me", response_model=WhoAmI, name="whoami")
def whoami(c: Ctx = Depends(ctx)) -> WhoAmI:
    p = c.principal
    return WhoAmI(user_id=p.user_id, username=p.username, role=str(p.role), org_id=p.org_id,
                  merchant_id=p.merchant_id, member_id=p.member_id)


@router.post("/tokens", response_model=ApiTokenOut, status_code=201, name="create_api_token")
def create_api_token(body: ApiTokenIn, c: Ctx = Depends(ctx)) -> ApiTokenOut:
    """A long-lived API token for an integration, acting as you; shown once, revocable."""

    def run(s: Session) -> ApiTokenOut:
        secret, row = tokens.issue_token(s, user_id=c.principal.user_id, kind="api",
                                         name=body.name, ttl=None)
        c.audit(s, "auth.token.create", target=f"token:{row.id}", detail={"name": body.name})
        return ApiTokenOut(id=row.id, name=row.name, prefix=row.prefix, token=secret,
                           revoked=False)

    return c.db.run(run)


@router.post("/tokens/{token_id}/revoke", response_model=ApiTokenOut, name="revoke_api_token")
def revoke_api_token(token_id: int = Path(ge=1, le=2_147_483_647),
                     c: Ctx = Depends(ctx)) -> ApiTokenOut:
    """Revoke one of your own tokens (revoking twice changes nothing)."""

    def run(s: Session) -> ApiTokenOut:
        row = tokens.revoke(s, token_id=token_id, user_id=c.principal.user_id)
        c.audit(s, "auth.token.revoke", target=f"token:{row.id}")
        return ApiTokenOut(id=row.id, name=row.name, prefix=row.prefix, revoked=True)

    return c.db.run(run)


@router.post("/users", response_model=UserOut, status_code=201, name="create_user")
def create_user(body: UserIn, c: Ctx = Depends(ctx)) -> UserOut:
    """Create a user inside your own scope, in a role you may hand out (a county admin makes
    union admins and cashiers of its county's merchants, a merchant admin makes cashiers).
    Only the binding of the role may be sent (``org_id`` for organisation roles,
    ``merchant_id`` for merchant staff, ``member_id`` for a member, ``channels`` for a
    channel): anything else is a 400 naming the field; every binding sent must be in scope."""
    role = Role(body.role)
    p = c.principal

    def run(s: Session) -> UserOut:
        if not scope.may_create_role(p, role):
            raise OutOfScope(f"a {p.role} may not create a {role}")
        if stray := stray_binding(role, org_id=body.org_id, merchant_id=body.merchant_id,
                                  member_id=body.member_id, channels=body.channels):
            raise BindingNotAllowed(f"a {role} user is not bound by {stray}", field=stray)
        # every binding given is checked, whatever the role
        if body.org_id is not None:
            scope.require_org(p, get_org(s, body.org_id))
        if body.merchant_id is not None:
            scope.require_merchant(p, find_merchant(s, body.merchant_id))
        if body.member_id is not None:
            m = s.get(Member, body.member_id)
            if m is not None:
                scope.require_member(s, p, m)
        new = users.create_user(s, username=body.username, role=role, password=body.password,
                                org_id=body.org_id, merchant_id=body.merchant_id,
                                member_id=body.member_id, channels=body.channels)
        u = new.user
        detail = {"role": u.role, "org_id": u.org_id, "merchant_id": u.merchant_id,
                  "member_id": u.member_id}
        if body.channels:
            detail["channels"] = sorted(body.channels)
        c.audit(s, "user.create", target=f"user:{u.id}", detail=detail)
        return UserOut(id=u.id, username=u.username, role=u.role, org_id=u.org_id,
                       merchant_id=u.merchant_id, member_id=u.member_id,
                       channel_secret=new.channel_secret)

    return c.db.run(run)
