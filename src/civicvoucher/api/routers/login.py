"""Log in: a username and password for a short-lived bearer token (public, rate-limited)."""

from __future__ import annotations

from fastapi import Depends, Request

from civicvoucher.api.routers import make_router
from civicvoucher.api.routing import state
from civicvoucher.api.schemas import LoginIn, TokenOut
from civicvoucher.api.state import AppState
from civicvoucher.audit.service import Actor, append
from civicvoucher.auth import login as logins
from civicvoucher.auth.errors import RateLimited, Unauthenticated

router = make_router("/auth", "auth")


def login_refusal_worth_auditing(exc: Unauthenticated | RateLimited) -> bool:
    """Which refused logins the audit log keeps, so that unauthenticated callers cannot grow it
    without bound: wrong passwords for a real account (at most the lockout threshold per lock
    period), the attempt that locks an account, and the first refusal of each rate-limit
    window. Not kept: guesses at unknown usernames (the per-IP limit counts them, and
    crossing it is kept), and every attempt refused while a lock or a limit holds."""
    d = exc.details
    if isinstance(exc, RateLimited):
        return bool(d.get("first"))
    return bool(d.get("locked") or d.get("known"))


@router.post("/login", response_model=TokenOut, name="login")
def login(body: LoginIn, request: Request, st: AppState = Depends(state)) -> TokenOut:
    """Exchange a username and password for a 15-minute bearer token. Limited per account and
    per IP; 5 wrong passwords in a row lock the account for 15 minutes (429 ``locked_out``)."""
    ip = request.client.host if request.client else "unknown"
    actor = Actor(body.username[:100], request_id=request.state.request_id)
    try:
        res = logins.login(st.db, username=body.username, password=body.password, ip=ip,
                          limits=st.limits)
    except (Unauthenticated, RateLimited) as exc:
        if login_refusal_worth_auditing(exc):
            why = {"code": exc.code, "ip": ip, "locked": bool(exc.details.get("locked"))}
            if isinstance(exc, RateLimited):
                why["bucket"] = str(exc.details.get("bucket", ""))[:200]
            st.db.run(lambda s: append(s, key=st.audit_key, actor=actor, action="auth.login",
                                       target=f"user:{body.username[:80]}", outcome="refused",
                                       detail=why))
        raise
    st.db.run(lambda s: append(
        s, key=st.audit_key, action="auth.login", target=f"user:{res.user.id}",
        actor=Actor(res.user.username, res.user.id, res.user.role, None, actor.request_id),
        detail={"ip": ip}))
    return TokenOut(access_token=res.token, expires_in=res.expires_in)
