"""Log out, who am I, API tokens, users; a member's invitation and activation."""

from __future__ import annotations

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from civicvoucher.api.clientip import client_ip
from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import Ctx, ctx, state
from civicvoucher.api.schemas import (
    ActivatedOut,
    ActivateIn,
    ApiTokenIn,
    ApiTokenOut,
    InviteIn,
    InviteOut,
    Revoked,
    UserIn,
    UserOut,
    WhoAmI,
)
from civicvoucher.api.state import AppState
from civicvoucher.audit.service import Actor, append
from civicvoucher.auth import credentials, scope, tokens
from civicvoucher.auth import service as users
from civicvoucher.auth.errors import BindingNotAllowed, OutOfScope, RateLimited
from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.roles import Role, stray_binding
from civicvoucher.errors import NotFound, ValidationError
from civicvoucher.i18n import N_, Term, msg
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
    channel): anything else is a 400 naming the field; every binding sent must be in scope.

    A member takes no password (400 ``member_password_not_allowed``): the answer carries a
    one-time activation code for a sealed slip, or with ``send_code_to_phone`` the code goes
    to the member's phone on file; the member then sets their own password with
    ``POST /auth/activate``."""
    role = Role(body.role)
    p = c.principal

    def run(s: Session) -> UserOut:
        if not scope.may_create_role(p, role):
            raise OutOfScope(msg("a {role} may not create a {other}", role=Term(p.role, "role"),
                                 other=Term(role, "role")))
        if role is Role.MEMBER and body.password is not None:
            raise credentials.MemberPasswordRefused(
                N_("a member sets their own password: leave it out, and give the member the "
                   "activation code from the answer"), field="password")
        if role is not Role.MEMBER and body.send_code_to_phone is not None:
            raise ValidationError(N_("only a member user gets an activation code"),
                                  field="send_code_to_phone")
        if stray := stray_binding(role, org_id=body.org_id, merchant_id=body.merchant_id,
                                  member_id=body.member_id, channels=body.channels):
            raise BindingNotAllowed(msg("a {role} user is not bound by {field}",
                                        role=Term(role, "role"), field=stray), field=stray)
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
        inv = sent_to = None
        if role is Role.MEMBER:
            inv, sent_to = _invite(c, s, u.id, body.send_code_to_phone)
            detail["activation"] = _delivery(inv, sent_to)
        c.audit(s, "user.create", target=f"user:{u.id}", detail=detail)
        return UserOut(id=u.id, username=u.username, role=u.role, org_id=u.org_id,
                       merchant_id=u.merchant_id, member_id=u.member_id,
                       channel_secret=new.channel_secret,
                       activation_code=_shown(inv, sent_to),
                       activation_expires_at=inv.expires_at if inv else None,
                       activation_sent_to=sent_to)

    return c.db.run(run)


def _invite(c: Ctx, s: Session, user_id: int,
            phone: str | None) -> tuple[credentials.Invitation, str | None]:
    inv = credentials.invite(s, user_id=user_id, key=credentials.activation_key(c.st.secret_key))
    return inv, credentials.deliver(s, inv, phone=phone, id_key=c.st.secret_key)


def _delivery(inv: credentials.Invitation, sent_to: str | None) -> dict:
    """What the audit log keeps of an invitation: how it went out, never the code."""
    return {"delivery": "sms" if sent_to else "slip", "sent_to": sent_to,
            "expires_at": inv.expires_at.isoformat(), "voided_previous": inv.voided_previous,
            "cleared_password": inv.cleared_password}


def _shown(inv: credentials.Invitation | None, sent_to: str | None) -> str | None:
    return credentials.format_code(inv.code) if inv is not None and sent_to is None else None


@router.post("/users/{user_id}/invite", response_model=InviteOut, name="invite_member")
def invite_member(body: InviteIn | None = None, user_id: int = Path(ge=1, le=2_147_483_647),
                  c: Ctx = Depends(ctx)) -> InviteOut:
    """Invite a member user again: a new one-time code (for a sealed slip, or sent to the
    member's phone on file). The old code stops working, the password is cleared and every
    token of the user revoked, until the member activates with the new code. For a member
    whose password an admin once set, this is the way back."""
    phone = body.send_code_to_phone if body is not None else None

    def run(s: Session) -> InviteOut:
        if not scope.may_create_role(c.principal, Role.MEMBER):
            raise OutOfScope(msg("a {role} may not invite members",
                                 role=Term(c.principal.role, "role")))
        u = s.get(ApiUser, user_id)
        if u is None or u.role != Role.MEMBER:
            raise NotFound(msg("no member user {id}", id=user_id), code="user_not_found")
        member = s.get(Member, u.member_id) if u.member_id is not None else None
        if member is None:
            raise NotFound(msg("no member user {id}", id=user_id), code="user_not_found")
        scope.require_member(s, c.principal, member)
        inv, sent_to = _invite(c, s, u.id, phone)
        c.audit(s, "user.invite", target=f"user:{u.id}", detail=_delivery(inv, sent_to))
        return InviteOut(user_id=u.id, username=u.username, member_id=u.member_id,
                         activation_code=_shown(inv, sent_to),
                         activation_expires_at=inv.expires_at, activation_sent_to=sent_to,
                         voided_previous=inv.voided_previous,
                         cleared_password=inv.cleared_password)

    return c.db.run(run)


@router.post("/activate", response_model=ActivatedOut, name="activate_member")
def activate_member(body: ActivateIn, request: Request,
                    st: AppState = Depends(state)) -> ActivatedOut:
    """A member sets their own password with the one-time code from their union (public).
    Limited per IP (10 wrong codes lock the IP for 15 minutes) and per member (10 tries a
    minute); wrong, used, expired or unknown all answer 401 ``activation_failed``. Sending the
    same code and password again after success answers the same. Then log in."""
    ip = client_ip(request)
    rid = request.state.request_id
    who = body.username or f"member:{body.member_id}"

    def audit(s: Session, done: credentials.Activated) -> None:
        append(s, key=st.audit_key, action="auth.activate", target=f"user:{done.user_id}",
               actor=Actor(done.username, done.user_id, str(Role.MEMBER), None, rid),
               detail={"ip": ip})

    try:
        done = credentials.activate(st.db, code=body.code, password=body.password, ip=ip,
                                    key=credentials.activation_key(st.secret_key),
                                    username=body.username, member_id=body.member_id,
                                    audit=audit)
    except (credentials.ActivationFailed, RateLimited) as exc:
        d, code = exc.details, exc.code
        if d.get("locked") or d.get("first"):  # bounded: once per lock, once per window
            st.db.run(lambda s: append(
                s, key=st.audit_key, actor=Actor(who[:100], request_id=rid),
                action="auth.activate", target=f"user:{who[:80]}", outcome="refused",
                detail={"code": code, "ip": ip, "locked": bool(d.get("locked"))}))
        raise
    return ActivatedOut(user_id=done.user_id, username=done.username, member_id=done.member_id)
