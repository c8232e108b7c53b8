"""The route class every console page uses, as ``api.routing.CVRoute`` is the API's.

One rule table decides for both doors: a console route is named in ``auth.policy.RULES``
(``console_*``) or ``PUBLIC``, and a route without a rule refuses to start the app. Each
request, in order: the language (the ``cv_lang`` cookie the page's switch sets, else
Accept-Language); the session cookie (``console.session``; none or expired → the login page,
keeping where the user was going); the role; for an unsafe method the CSRF token and the
Origin; then the page. A refusal the API audits is audited here too. A user's mistake is shown
in the page in the user's language; a fault is a plain error page, never a trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from civicvoucher import i18n
from civicvoucher.api.routing import Ctx, _audit_refusal
from civicvoucher.api.state import AppState
from civicvoucher.auth import tokens
from civicvoucher.auth.errors import RoleForbidden, Unauthenticated
from civicvoucher.auth.models import ApiToken
from civicvoucher.auth.policy import Rule, rule_for
from civicvoucher.auth.scope import Principal
from civicvoucher.console import session as sess
from civicvoucher.core import ids
from civicvoucher.errors import CivicVoucherError, Forbidden, NotFound, ValidationError
from civicvoucher.i18n import N_, Term, msg

log = logging.getLogger("civicvoucher.console")


def page_language(request: Request) -> str:
    chosen = i18n.parse_language(request.cookies.get(sess.LANG_COOKIE))
    return chosen or i18n.language_from_header(request.headers.get("accept-language"))


class NeedsLogin(Exception):
    pass


def _authenticate(st: AppState, token: str, rule: Rule) -> Principal:
    def run(s: Session):
        p = tokens.authenticate(s, token)
        row = s.execute(select(ApiToken.created_at, ApiToken.expires_at)
                        .where(ApiToken.id == p.token_id)).one()
        sess.Slide(sess.idle_timeout()).extend(s, p.token_id, row.created_at, row.expires_at)
        if p.role not in rule.roles:
            return p, RoleForbidden(msg("a {role} may not do this", role=Term(p.role, "role")),
                                    principal=p)
        return p, None

    p, refused = st.db.run(run)
    if refused is not None:
        raise refused
    return p


@dataclass
class PageCtx(Ctx):
    """What a console page gets: the API's context (caller, database, audit) plus its
    language and its CSRF token."""

    lang: str = i18n.DEFAULT
    csrf: str = ""


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        inner = super().get_route_handler()
        name, methods = self.name, set(self.methods or ())
        rule = rule_for(name)
        if rule is None:
            raise RuntimeError(f"console route {name} has no rule in civicvoucher.auth.policy")

        async def handler(request: Request) -> Response:
            from civicvoucher.console.render import error_page

            st: AppState = request.app.state.cv
            request.state.request_id = ids.new_id()
            lang = page_language(request)
            request.state.principal = None
            request.state.lang = lang
            with i18n.language(lang):
                try:
                    if not sess.same_origin(request.headers.get("origin"),
                                            request.headers.get("host")) and \
                            methods & sess.UNSAFE:
                        raise Forbidden(N_("this form was sent from another site"),
                                        code="csrf_failed")
                    if isinstance(rule, Rule):
                        token = request.cookies.get(sess.COOKIE)
                        if not token:
                            raise NeedsLogin()
                        try:
                            principal = await run_in_threadpool(_authenticate, st, token, rule)
                        except Unauthenticated:
                            raise NeedsLogin() from None
                        except RoleForbidden as exc:  # audited as in the API
                            await run_in_threadpool(_audit_refusal, st, request, exc)
                            raise
                        request.state.principal = principal
                        request.state.csrf = sess.csrf_for(st.secret_key, token)
                        if request.method in sess.UNSAFE:
                            await _check_csrf(request, request.state.csrf)
                    return await inner(request)
                except NeedsLogin:
                    return _to_login(request)
                except RequestValidationError as exc:  # /m/vouchers/abc: not a page
                    return error_page(request, _invalid(exc))
                except CivicVoucherError as exc:
                    if isinstance(exc, Forbidden) and request.state.principal is not None \
                            and not isinstance(exc, RoleForbidden):
                        await run_in_threadpool(_audit_refusal, st, request, exc)
                    return error_page(request, exc)
                except Exception as exc:  # a fault: logged, shown plainly
                    from civicvoucher.api.problems import database_unavailable

                    if database_unavailable(exc):
                        return error_page(request, None, status=503)
                    log.exception("console page %s failed", name, exc_info=exc)
                    return error_page(request, None, status=500)

        return handler


def _invalid(exc: RequestValidationError) -> CivicVoucherError:
    """A path or query value that is not what the page takes: 404 for a path (no such
    page), 400 naming the field for a query or form value."""
    from civicvoucher.api import validation

    first = exc.errors()[0] if exc.errors() else {}
    if first.get("loc", ("",))[0] == "path":
        return NotFound(N_("no such page"))
    err = ValidationError(validation.detail(first) if first else N_("invalid request"),
                          field=validation.field_of(first) if first else None)
    err.http_status = 400
    return err


async def _check_csrf(request: Request, expected: str) -> None:
    given = request.headers.get(sess.CSRF_HEADER)
    if not given:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(sess.CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not sess.csrf_ok(expected, given):
        raise Forbidden(N_("the page's security token is missing or stale: reload the page "
                           "and try again"), code="csrf_failed")


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    where = "/login?next=" + quote(target, safe="")
    if _is_htmx(request):  # an HTMX fragment: the whole page goes to the login
        return HTMLResponse("", status_code=401, headers={"HX-Redirect": where})
    return RedirectResponse(where, status_code=303)


def page_ctx(request: Request) -> PageCtx:
    """The dependency a console page takes (``c: PageCtx = Depends(page_ctx)``)."""
    return PageCtx(request=request, st=request.app.state.cv, principal=request.state.principal,
                   lang=request.state.lang, csrf=getattr(request.state, "csrf", ""))
