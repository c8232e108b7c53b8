"""Signing in and out, the language switch, and the home page (each role's own pages)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from civicvoucher import i18n
from civicvoucher.api.clientip import client_ip
from civicvoucher.auth import login as auth_login
from civicvoucher.auth import tokens
from civicvoucher.auth.errors import RateLimited, Unauthenticated
from civicvoucher.console import session as sess
from civicvoucher.console.render import render
from civicvoucher.console.routing import ConsoleRoute, PageCtx, page_ctx
from civicvoucher.errors import Forbidden
from civicvoucher.i18n import N_

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def _login_form(request: Request, *, next_: str, status: int = 200, error: str | None = None,
                username: str = "", retry_after: int | None = None) -> Response:
    token = sess.new_login_csrf()
    response = render(request, "login.html.j2", status_code=status, next=_safe_next(next_),
                      login_csrf=token, error=error, username=username)
    response.set_cookie(sess.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=sess.secure_cookie(request.headers.get("host")), path="/")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.get("/login", name="console_login_page")
def login_page(request: Request, next: str = "/") -> Response:
    return _login_form(request, next_=next)


@router.post("/login", name="console_login")
async def login_submit(request: Request, username: str = Form("", max_length=100),
                       password: str = Form("", max_length=1000),
                       csrf_token: str = Form("", max_length=100),
                       next: str = Form("/", max_length=2000)) -> Response:
    st = request.app.state.cv
    if not sess.csrf_ok(request.cookies.get(sess.LOGIN_CSRF_COOKIE, ""), csrf_token):
        return _login_form(request, next_=next, status=403, username=username,
                           error=i18n._("the sign-in form expired: please sign in again"))
    try:
        result = await run_in_threadpool(
            auth_login.login, st.db, username=username, password=password,
            ip=client_ip(request), limits=st.limits, name_key=st.audit_key)
    except (Unauthenticated, RateLimited) as exc:
        retry = exc.details.get("retry_after")
        return _login_form(request, next_=next, status=exc.http_status, username=username,
                           error=exc.localized(), retry_after=retry if isinstance(retry, int)
                           else None)
    await run_in_threadpool(st.db.run, lambda s: sess.start(s, result.token))
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(sess.COOKIE, result.token, httponly=True, samesite="lax",
                        secure=sess.secure_cookie(request.headers.get("host")), path="/")
    response.delete_cookie(sess.LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", name="console_logout")
def logout(c: PageCtx = Depends(page_ctx)) -> Response:
    token_id = c.principal.token_id
    if token_id is not None:
        c.db.run(lambda s: tokens.revoke(s, token_id=token_id, user_id=c.principal.user_id))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sess.COOKIE, path="/")
    return response


@router.post("/lang", name="console_language")
async def switch_language(request: Request, lang: str = Form(..., max_length=10),
                          csrf_token: str = Form("", max_length=100),
                          next: str = Form("/", max_length=2000)) -> Response:
    """The language switch: remembered in a cookie for a year. A POST like any other: it
    carries the session's CSRF token (or, before signing in, the sign-in form's)."""
    st = request.app.state.cv
    session_token = request.cookies.get(sess.COOKIE)
    expected = (sess.csrf_for(st.secret_key, session_token) if session_token
                else request.cookies.get(sess.LOGIN_CSRF_COOKIE, ""))
    if not sess.csrf_ok(expected, csrf_token):
        raise Forbidden(N_("the page's security token is missing or stale: reload the page "
                           "and try again"), code="csrf_failed")
    chosen = i18n.parse_language(lang) or i18n.DEFAULT
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(sess.LANG_COOKIE, chosen, max_age=365 * 24 * 3600, samesite="lax",
                        secure=sess.secure_cookie(request.headers.get("host")), path="/")
    return response


@router.get("/", name="console_home")
def home(c: PageCtx = Depends(page_ctx)) -> Response:
    return render(c.request, "home.html.j2", title=N_("Home"), where=c.db.run(
        lambda s: where_bound(s, c.principal)))


def where_bound(session, p) -> str:
    """The organisation, merchant or member a user is bound to, by name (as people say it)."""
    from civicvoucher.members.models import Member
    from civicvoucher.merchants.models import Merchant
    from civicvoucher.orgs.models import Org
    from civicvoucher.vouchers.listing import mask_name

    if p.org_id is not None and (org := session.get(Org, p.org_id)) is not None:
        return org.name
    if p.merchant_id is not None and (m := session.get(Merchant, p.merchant_id)) is not None:
        return m.name
    if p.member_id is not None and (mem := session.get(Member, p.member_id)) is not None:
        return mask_name(mem.name)
    return ""
