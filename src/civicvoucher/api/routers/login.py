"""Log in: a username and password for a short-lived bearer token (public, rate-limited;
the policy is in ``auth/login.py`` and ``docs/login-limits.md``)."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from civicvoucher.api.clientip import client_ip
from civicvoucher.api.routers import make_router
from civicvoucher.api.schemas import LoginIn, TokenOut
from civicvoucher.api.state import AppState
from civicvoucher.audit.service import Actor, append
from civicvoucher.auth import login as logins
from civicvoucher.auth import passwords
from civicvoucher.auth.errors import RateLimited, Unauthenticated

router = make_router("/auth", "auth")


def login_refusal_worth_auditing(exc: Unauthenticated | RateLimited) -> bool:
    """Which refused logins the audit log keeps, so that unauthenticated callers cannot grow it
    without bound: wrong passwords for a real account (bounded by the caps and the backoff),
    the failure that reaches a cap or starts the backoff, and the first refusal of each
    rate-limit window. Not kept: guesses at unknown usernames (the per-address limits count
    them, and reaching one is kept), every attempt refused while a cap or the backoff holds,
    and a login turned away because the worker is busy hashing."""
    d = exc.details
    if isinstance(exc, RateLimited):
        return bool(d.get("first"))
    return bool(d.get("locked") or d.get("slowed") or d.get("known"))


def name_key(st: AppState) -> bytes:
    """The key that hashes attempted usernames in their rate buckets."""
    return hmac.new(st.secret_key, b"civicvoucher login names v1", hashlib.sha256).digest()


@router.post("/login", response_model=TokenOut, name="login")
async def login(body: LoginIn, request: Request) -> TokenOut:
    """Exchange a username and password for a 15-minute bearer token. Limited per address,
    per username and address (5 wrong passwords: 429 ``locked_out`` from that address for 15
    minutes) and per username (past 10 failures, 429 ``login_slowed`` with a growing
    ``Retry-After``, except from an address the user logged in from before); 503
    ``login_busy`` when the server is hashing as many passwords as it may."""
    st: AppState = request.app.state.cv
    if logins.gate_for(st.limits).full():
        # a flood, turned away in the event loop: it takes none of the threads that the
        # requests of logged-in users need
        raise passwords.busy()
    return await run_in_threadpool(_login, st, body, request)


def _login(st: AppState, body: LoginIn, request: Request) -> TokenOut:
    ip = client_ip(request)
    rid = request.state.request_id
    try:
        res = logins.login(st.db, username=body.username, password=body.password, ip=ip,
                           limits=st.limits, name_key=name_key(st))
    except (Unauthenticated, RateLimited) as exc:
        if login_refusal_worth_auditing(exc):
            why = {"code": exc.code, "ip": ip, "locked": bool(exc.details.get("locked")),
                   "slowed": bool(exc.details.get("slowed"))}
            if isinstance(exc, RateLimited):
                why["bucket"] = str(exc.details.get("bucket", ""))[:200]
            uid = exc.details.get("user_id")
            # an attempt is nobody's until it succeeds; the name tried is not kept in clear
            st.db.run(lambda s: append(s, key=st.audit_key, actor=Actor("anonymous",
                                                                        request_id=rid),
                                       action="auth.login", outcome="refused",
                                       target=f"user:{uid}" if uid else None, detail=why))
        raise
    st.db.run(lambda s: append(
        s, key=st.audit_key, action="auth.login", target=f"user:{res.user.id}",
        actor=Actor(res.user.username, res.user.id, res.user.role, None, rid),
        detail={"ip": ip}))
    return TokenOut(access_token=res.token, expires_in=res.expires_in)
