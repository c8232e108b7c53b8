"""Console sessions: a cookie holding an access token, CSRF, idle and absolute timeouts.

A console login goes through the API's login (``auth.login``: the same per-address caps,
per-account lockout and backoff, the same argon2 gate), and the token it hands out is the
session: kept in an ``HttpOnly`` cookie (``Secure`` except on a loopback address,
``SameSite=Lax``), never readable by the page's scripts. Its expiry slides on use up to the
idle timeout, never past the absolute one; logout revokes it at once.

CSRF: every unsafe request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token, in
the ``X-CSRF-Token`` header (HTMX sends it from ``<body hx-headers>``) or a ``csrf_token`` form
field. The token is an HMAC of the session token's hash under a key derived from the server
secret: nothing to store, nothing another session can reuse. The login form, before any
session, uses a double-submit cookie instead. A request whose ``Origin`` names another site is
refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from civicvoucher.auth import tokens
from civicvoucher.auth.models import ApiToken
from civicvoucher.core import clock

COOKIE = "cv_session"
LOGIN_CSRF_COOKIE = "cv_login_csrf"
LANG_COOKIE = "cv_lang"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
IDLE_ENV = "CIVICVOUCHER_CONSOLE_IDLE_MINUTES"
ABSOLUTE = timedelta(hours=12)
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def idle_timeout() -> timedelta:
    raw = os.environ.get(IDLE_ENV, "").strip()
    minutes = int(raw) if raw.isdigit() and 0 < int(raw) <= 24 * 60 else 30
    return timedelta(minutes=minutes)


def csrf_for(secret_key: bytes, session_token: str) -> str:
    key = hmac.new(secret_key, b"civicvoucher console csrf v1", hashlib.sha256).digest()
    return hmac.new(key, tokens.token_hash(session_token).encode(), hashlib.sha256).hexdigest()


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected, given)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def secure_cookie(host: str | None) -> bool:
    """Secure everywhere but loopback (a browser sends no Secure cookie over plain http, and
    the demo and the tests run on http://127.0.0.1)."""
    name = (host or "").rsplit(":", 1)[0] if not (host or "").startswith("[") else \
        (host or "").split("]")[0] + "]"
    return name not in LOOPBACK


def same_origin(origin: str | None, host: str | None) -> bool:
    """An ``Origin`` header, when sent, must name this host (scheme aside: behind a TLS
    proxy the app sees http while the browser says https)."""
    if not origin or origin == "null":
        return origin != "null"
    return origin.split("://", 1)[-1].rstrip("/") == (host or "")


@dataclass(frozen=True)
class Slide:
    """When a session's expiry is moved on: only when less than half the idle time is left
    (one UPDATE per quarter hour of use, not one per request)."""

    idle: timedelta

    def extend(self, session: Session, token_id: int, created_at, expires_at) -> None:
        now = clock.now()
        if expires_at is None or expires_at - now > self.idle / 2:
            return
        new = min(now + self.idle, created_at + ABSOLUTE)
        if new > expires_at:
            session.execute(update(ApiToken).where(ApiToken.id == token_id,
                                                   ApiToken.revoked_at.is_(None))
                            .values(expires_at=new))


def start(session: Session, token: str) -> None:
    """A fresh login's token becomes a console session: idle timeout from now."""
    session.execute(update(ApiToken).where(ApiToken.token_hash == tokens.token_hash(token))
                    .values(expires_at=clock.now() + idle_timeout()))
