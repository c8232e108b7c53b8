"""User use cases: create a user (bound to its organisation, merchant or member).

A member user never gets a password from whoever creates it (auth/credentials.py): it is made
``invited``, and the caller invites it (a one-time activation code). Only ``origin="self"``
(system setup and tests, standing for "the member set this") makes a usable member directly;
the API and the CLI never pass it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.auth import credentials
from civicvoucher.auth.errors import BindingNotAllowed
from civicvoucher.auth.models import ApiUser, PaymentChannel
from civicvoucher.auth.passwords import hash_password
from civicvoucher.auth.roles import Role, binding_problem, stray_binding
from civicvoucher.core import clock
from civicvoucher.errors import Conflict, NotFound, ValidationError
from civicvoucher.i18n import N_, Term, msg
from civicvoucher.members.models import Member
from civicvoucher.merchants.models import Merchant
from civicvoucher.merchants.rules import Channel
from civicvoucher.orgs.models import Org

MIN_PASSWORD = credentials.MIN_PASSWORD


@dataclass(frozen=True)
class NewUser:
    user: ApiUser
    channel_secret: str | None  # shown once, for a channel user


def create_user(session: Session, *, username: str, role: str, password: str | None = None,
                org_id: int | None = None, merchant_id: int | None = None,
                member_id: int | None = None,
                channels: list[str] | tuple[str, ...] | None = None,
                origin: str | None = None) -> NewUser:
    """Add a user. Each role is bound to what it acts for, and to nothing else; a channel
    also gets its HMAC secret and the redemption channel kinds it may report (``online``
    unless told).

    A member takes no password (400 ``member_password_not_allowed``) and starts ``invited``,
    unusable until activated, unless ``origin="self"``: the credential given (or none, for a
    token-only test member) is the member's own. Only system setup and tests say so."""
    r = Role.parse(role) if isinstance(role, str) else role
    if origin not in (None, credentials.SELF) or (origin is not None and r is not Role.MEMBER):
        raise ValidationError(N_("origin='self' is only for a member's own credential"),
                              field="origin")
    if r is Role.MEMBER and password is not None and origin != credentials.SELF:
        raise credentials.MemberPasswordRefused(
            N_("a member sets their own password: create the member without one, and the"
               " member activates the account with the one-time code"), field="password")
    if stray := stray_binding(r, org_id=org_id, merchant_id=merchant_id, member_id=member_id,
                              channels=channels):
        raise BindingNotAllowed(msg("a {role} user is not bound by {field}",
                                    role=Term(r, "role"), field=stray), field=stray)
    kinds = sorted(set(channels or ("online",)))
    if bad := [k for k in kinds if k not in {c.value for c in Channel}]:
        raise ValidationError(msg("unknown channel kind {kind}", kind=bad[0]), field="channels")
    username = username.strip()
    if not username or len(username) > 100:
        raise ValidationError(N_("username must be 1-100 characters"), field="username")
    if password is not None and len(password) < MIN_PASSWORD:
        raise ValidationError(msg("password must be at least {least} characters",
                                  least=MIN_PASSWORD),
                              field="password")
    org = session.get(Org, org_id) if org_id is not None else None
    if org_id is not None and org is None:
        raise NotFound(msg("organisation {id} does not exist", id=org_id), code="org_not_found")
    if merchant_id is not None and session.get(Merchant, merchant_id) is None:
        raise NotFound(msg("no merchant {ref}", ref=merchant_id), code="merchant_not_found")
    if member_id is not None and session.get(Member, member_id) is None:
        raise NotFound(msg("no member {id}", id=member_id), code="member_not_found")
    if problem := binding_problem(r, org_level=org.level if org else None,
                                  merchant_id=merchant_id, member_id=member_id):
        raise ValidationError(problem, field="role")
    if session.execute(select(ApiUser.id).where(ApiUser.username == username)).first():
        raise Conflict(msg("user {user} exists already", user=username), code="user_exists")
    user = ApiUser(username=username, role=str(r),
                   password_hash=hash_password(password) if password else None,
                   org_id=org_id, merchant_id=merchant_id, member_id=member_id, active=True,
                   created_at=clock.now(),
                   credential_origin=(origin or credentials.INVITED) if r is Role.MEMBER
                   else credentials.ADMIN)
    session.add(user)
    session.flush()
    secret = None
    if r is Role.CHANNEL:
        secret = secrets.token_hex(32)
        session.add(PaymentChannel(user_id=user.id, name=username,  # sealed: docs/secrets.md
                                   secret_sealed=PaymentChannel.seal(session, user.id, secret),
                                   channels=",".join(kinds), created_at=clock.now()))
        session.flush()
    return NewUser(user, secret)


def find_user(session: Session, username: str) -> ApiUser:
    user = session.execute(select(ApiUser).where(ApiUser.username == username)).scalar()
    if user is None:
        raise NotFound(msg("no user {ref}", ref=username), code="user_not_found")
    return user
