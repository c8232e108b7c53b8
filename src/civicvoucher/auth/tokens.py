"""Bearer tokens: 256 random bits, shown once, stored as SHA-256. Access tokens (from login)
live 15 minutes; API tokens (for integrations) live until revoked.

A member's tokens work only while the member's credential is the member's own
(``credentials.usable``): a token issued under an admin-set password, or before the member was
re-invited, is refused."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from civicvoucher.auth import credentials
from civicvoucher.auth.errors import Unauthenticated
from civicvoucher.auth.models import ApiToken, ApiUser
from civicvoucher.auth.roles import Role
from civicvoucher.auth.scope import Principal, region_of
from civicvoucher.core import clock
from civicvoucher.errors import NotFound
from civicvoucher.i18n import N_, msg
from civicvoucher.orgs.models import Org

ACCESS_TTL = timedelta(minutes=15)
PREFIX = {"access": "cva_", "api": "cvk_"}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, *, user_id: int, kind: str = "access", name: str | None = None,
                ttl: timedelta | None = ACCESS_TTL) -> tuple[str, ApiToken]:
    """Create a token; returns the secret (shown once) and its row. Refused for a user whose
    credential may not be used (a member whose password an admin set, or not yet activated)."""
    user = session.get(ApiUser, user_id)
    if user is None or not credentials.usable(user):
        raise Unauthenticated(N_("this account cannot be used: a member activates it with"
                                 " their own code and password first"))
    secret = PREFIX[kind] + secrets.token_urlsafe(32)
    now = clock.now()
    row = ApiToken(user_id=user_id, kind=kind, token_hash=token_hash(secret),
                   prefix=secret[:12], name=name, created_at=now,
                   expires_at=now + ttl if ttl is not None else None)
    session.add(row)
    session.flush()
    return secret, row


def revoke(session: Session, *, token_id: int, user_id: int | None = None) -> ApiToken:
    """Revoke a token (of ``user_id`` if given). Revoking twice changes nothing."""
    q = select(ApiToken).where(ApiToken.id == token_id)
    if user_id is not None:
        q = q.where(ApiToken.user_id == user_id)
    row = session.execute(q).scalar()
    if row is None:
        raise NotFound(msg("no token {ref}", ref=token_id), code="token_not_found")
    session.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=clock.now()))
    session.refresh(row)
    return row


def authenticate(session: Session, token: str) -> Principal:
    """The principal behind a bearer token, or Unauthenticated (never says which part failed)."""
    now: datetime = clock.now()
    row = session.execute(
        select(ApiToken.id, ApiToken.expires_at, ApiToken.revoked_at, ApiUser, Org)
        .join(ApiUser, ApiUser.id == ApiToken.user_id)
        .outerjoin(Org, Org.id == ApiUser.org_id)
        .where(ApiToken.token_hash == token_hash(token))
    ).first()
    if row is None:
        raise Unauthenticated(N_("invalid or expired token"))
    token_id, expires_at, revoked_at, user, org = row
    if revoked_at is not None or (expires_at is not None and expires_at <= now) or \
            not credentials.usable(user):
        raise Unauthenticated(N_("invalid or expired token"))
    return principal_for(user, org, token_id=token_id)


def principal_for(user: ApiUser, org: Org | None, *, token_id: int | None = None) -> Principal:
    return Principal(
        user_id=user.id, username=user.username, role=Role(user.role), org_id=user.org_id,
        org_path=org.path if org is not None else None,
        org_level=org.level if org is not None else None,
        region=region_of(org) if org is not None else None,
        merchant_id=user.merchant_id, member_id=user.member_id, token_id=token_id,
    )
