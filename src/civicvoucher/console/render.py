"""Pages from Jinja2 templates (``console/templates``), in the request's language.

Templates write English, marked: ``{{ _("Dashboard") }}`` for a word, ``{{ t("{n} vouchers",
n=count) }}`` for a message with values (the catalogue's ``msg`` templates, so one message is
written once for the API, the CLI and the page). Amounts: ``{{ yuan(fen) }}`` (¥1,234.56) and
``{{ cn(fen) }}`` (1.5万, 8.7亿); times ``{{ local(dt) }}`` in the deployment's zone.
Autoescaping is on for every template.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from civicvoucher import i18n
from civicvoucher.core import clock
from civicvoucher.core.money import format_cn, format_yuan
from civicvoucher.errors import CivicVoucherError
from civicvoucher.i18n import N_

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = "/static"


def _t(template: str, **params) -> str:
    return i18n.localize(i18n.msg(template, **params))


def _tn(singular: str, plural: str, n: int, **params) -> str:
    return i18n.localize(i18n.nmsg(singular, plural, n, **params))


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        ["html", "j2"], default_for_string=True, default=True), undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    env.globals.update(
        _=lambda text: i18n.gettext(text), t=_t, tn=_tn, localize=i18n.localize,
        yuan=format_yuan, cn=format_cn, local=clock.format_local, static=STATIC,
        Term=i18n.Term, langs=i18n.LANGUAGES, tags=i18n.TAGS)
    return env


def render(request: Request, template: str, *, status_code: int = 200, headers=None,
           **context) -> HTMLResponse:
    """``template`` with the page's common context: who is signed in, their language, the
    CSRF token for forms and HTMX, and the navigation their role may use."""
    from civicvoucher.console.nav import navigation

    principal = getattr(request.state, "principal", None)
    lang = getattr(request.state, "lang", i18n.current())
    with i18n.language(lang):
        html = environment().get_template(template).render(
            request=request, user=principal, lang=lang, lang_tag=i18n.TAGS[lang],
            csrf=getattr(request.state, "csrf", ""), nav=navigation(principal, request),
            path=request.url.path, **context)
    h = {"Content-Language": i18n.TAGS[lang], "Cache-Control": "no-store",
         "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
         "X-Frame-Options": "DENY",
         "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                    "style-src 'self'; script-src 'self'; frame-ancestors "
                                    "'none'; form-action 'self'; base-uri 'none'"}
    h.update(headers or {})
    return HTMLResponse(html, status_code=status_code, headers=h)


STATUS_FOR_CODE = {"csrf_failed": 403}


def error_page(request: Request, exc: CivicVoucherError | None, *, status: int | None = None):
    """A user's mistake (in their language, with its code), or a fault (500/503) told plainly.
    An HTMX request gets the message as a fragment for the page's message area."""
    if exc is not None:
        status = status or getattr(exc, "http_status", 400)
        text = exc.localized(getattr(request.state, "lang", None))
        where = exc.where() if hasattr(exc, "where") else ""
        code = exc.code
    else:
        status = status or 500
        code = "database_unavailable" if status == 503 else "internal_error"
        text = i18n.gettext(N_("the database cannot be reached just now; retry shortly")
                            if status == 503 else
                            N_("the server failed; the request id identifies it in the logs"))
        where = ""
    fragment = request.headers.get("hx-request") == "true"
    return render(request, "_error.html.j2" if fragment else "error.html.j2",
                  status_code=status,
                  code=code, message=text, where=where,
                  request_id=getattr(request.state, "request_id", ""),
                  headers={"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"}
                  if fragment else None)
