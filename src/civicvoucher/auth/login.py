"""Logging in with a password: rate limits and lockouts first, then the password check, then
a short-lived access token."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from civicvoucher.auth import ratelimit
from civicvoucher.auth.errors import Unauthenticated
from civicvoucher.auth.models import ApiUser
from civicvoucher.auth.passwords import verify_password
from civicvoucher.auth.ratelimit import Limits
from civicvoucher.auth.tokens import ACCESS_TTL, issue_token
from civicvoucher.db import Database


@dataclass(frozen=True)
class Login:
    token: str
    user: ApiUser
    expires_in: int


def login(db: Database, *, username: str, password: str, ip: str,
          limits: Limits = Limits()) -> Login:
    """Check a password and hand out a short-lived access token.

    Limited per account and per IP; ``login_failures_to_lock`` wrong passwords in a row lock
    the account (whatever the IP) for ``lock_for``. A locked account answers 429 even to the
    right password, so the lock cannot be used to confirm a guess.
    """
    acct, by_ip = f"login:user:{username.lower()}", f"login:ip:{ip}"
    ratelimit.hit(db, by_ip, limit=limits.login_per_ip, window=limits.window)
    ratelimit.hit(db, acct, limit=limits.login_per_account, window=limits.window)
    user = db.run(lambda s: s.execute(select(ApiUser).where(ApiUser.username == username))
                  .scalar())
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        locked = ratelimit.fail(db, acct, threshold=limits.login_failures_to_lock,
                                lock_for=limits.lock_for, window=limits.window)
        raise Unauthenticated("wrong username or password", code="login_failed", locked=locked,
                              known=user is not None)
    ratelimit.succeed(db, acct)

    def make(s: Session) -> str:
        token, _ = issue_token(s, user_id=user.id, kind="access", ttl=ACCESS_TTL)
        return token

    return Login(db.run(make), user, int(ACCESS_TTL.total_seconds()))
