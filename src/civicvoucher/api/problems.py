"""Errors → RFC 9457 problem+json, in one place, in zh-CN or en by Accept-Language.

Every problem carries the error's stable ``code``; ``field`` and ``row`` name what was wrong;
``errors`` lists every bad row of an import. No stack trace ever leaves: an unexpected
exception is logged and answered 500 ``internal_error``; a database that cannot be reached
(down, restarting, connection cut, or too busy) is 503 ``database_unavailable`` with
``Retry-After``.
"""

from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from civicvoucher import i18n
from civicvoucher.auth.errors import DatabaseUnavailable
from civicvoucher.errors import CivicVoucherError, ImportRejected, ValidationError
from civicvoucher.i18n import N_

log = logging.getLogger("civicvoucher.api")
MEDIA_TYPE = "application/problem+json"


class RowProblem(BaseModel):
    row: int | None = None
    field: str | None = None
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details, plus the stable ``code`` clients branch on."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    field: str | None = None
    row: int | None = None
    errors: list[RowProblem] | None = None
    request_id: str | None = None
    retry_after: int | None = None


# Titles by code, English here and zh-CN in the catalogue (i18n/zh_CN/api.po); a code not
# listed falls back to its HTTP status's title.
TITLES: dict[str, str] = {
    "invalid_input": N_("Invalid input"),
    "import_rejected": N_("Import rejected, nothing imported"),
    "not_found": N_("Not found"),
    "conflict": N_("Conflict"),
    "idempotency_key_reused": N_("Idempotency key used for another request"),
    "idempotency_key_required": N_("Idempotency-Key header required"),
    "idempotency_request_in_progress": N_("The same request is in progress"),
    "exists_with_different_amount": N_("Transfer exists with another amount"),
    "insufficient_funds": N_("Insufficient funds"),
    "voucher_not_redeemable": N_("Voucher cannot be redeemed"),
    "voucher_already_redeemed": N_("Voucher already redeemed"),
    "voucher_expired": N_("Voucher expired"),
    "voucher_not_yet_valid": N_("Voucher not yet valid"),
    "voucher_not_found": N_("No voucher with this code"),
    "category_not_allowed": N_("Merchant category not allowed"),
    "channel_not_allowed": N_("Channel not allowed"),
    "region_not_allowed": N_("Merchant outside the voucher's region"),
    "order_below_threshold": N_("Order below the voucher's threshold"),
    "merchant_not_active": N_("Merchant not active"),
    "invalid_transition": N_("Invalid state transition"),
    "hold_expired": N_("Hold expired"),
    "hold_not_active": N_("Hold not active"),
    "redemption_not_refundable": N_("Redemption not refundable"),
    "redemption_already_refunded": N_("Redemption already refunded"),
    "forbidden": N_("Forbidden"),
    "out_of_scope": N_("Outside your organisation's scope"),
    "role_forbidden": N_("Your role may not do this"),
    "unauthenticated": N_("Not authenticated"),
    "login_failed": N_("Wrong username or password"),
    "rate_limited": N_("Too many requests"),
    "locked_out": N_("Locked out after too many failures"),
    "bad_signature": N_("Bad signature"),
    "stale_timestamp": N_("Timestamp outside the allowed window"),
    "qr_expired": N_("QR code expired, refresh it"),
    "qr_invalid": N_("Invalid QR code"),
    "invalid_cursor": N_("Invalid cursor"),
    "ledger_invariant_broken": N_("Ledger invariant broken"),
    "internal_error": N_("Internal server error"),
    "database_unavailable": N_("Database temporarily unavailable, retry shortly"),
    "method_not_allowed": N_("Method not allowed"),
    "program_closed": N_("Program closed"),
    # the money path (issue 8)
    "qr_already_used": N_("QR code already used, refresh it"),
    "voucher_not_held": N_("Voucher is not held"),
    "pending_transfer_already_posted": N_("Pending transfer already posted"),
    "pending_transfer_already_voided": N_("Pending transfer already voided"),
    "pending_transfer_not_found": N_("No such pending transfer"),
    "exists_with_different_debit_account_id": N_("Transfer exists with another debit account"),
    "exists_with_different_credit_account_id": N_("Transfer exists with another credit account"),
    "exists_with_different_code": N_("Transfer exists with another code"),
    "exists_with_different_flags": N_("Transfer exists with other flags"),
    "exists_with_different_pending_id": N_("Transfer exists with another pending transfer"),
    "secret_key_mismatch": N_("Wrong ID-hash key for this database"),
    "secret_key_missing": N_("ID-hash key missing"),
    "secret_key_unreadable": N_("ID-hash key unreadable"),
    "secret_key_too_short": N_("ID-hash key too short"),
    "import_too_large": N_("Import file too large"),
    "request_too_large": N_("Request body too large"),
    "county_outside_map": N_("Merchant's county is outside this deployment's map"),
    # handout (issue 10): vouchers handed out, QR images
    "qr_not_for_payment": N_("A hand-out QR code cannot pay: show the app's payment QR"),
    "not_acceptable": N_("None of the accepted content types"),
    # secrets task (issue 9, item 1): sealed secrets at rest
    "sealed_secret_unreadable": N_("A sealed secret cannot be opened"),
    "sealing_key_unknown": N_("The sealing key for a secret is missing"),
    "sealing_keys_invalid": N_("Invalid sealing-keys file"),
    # login limits (issue 9, login task)
    "login_slowed": N_("Too many failed logins for this account, retry later"),
    "login_busy": N_("Too many logins at once, retry shortly"),
    # bounded request bodies (issue 9, door): api.bodies
    "invalid_json": N_("The request body is not valid JSON"),
    "json_too_deep": N_("The request body's JSON nests too deep"),
    # issue 10 (report): GET /reports/programs/{program}
    "program_not_found": N_("No such program"),
    "org_not_found": N_("No such organisation"),
    # issue 10 item 6/8 (api): program update before launch; not-found codes of the routers
    "program_launched": N_("Program already launched"),
    "member_not_found": N_("No such member"),
    "user_not_found": N_("No such user"),
}
_STATUS_CODE = {400: "invalid_input", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "invalid_input",
                415: "invalid_input", 422: "invalid_input", 429: "rate_limited",
                500: "internal_error", 503: "database_unavailable"}
_HTTP_DETAIL = {400: N_("the request cannot be read"),
                404: N_("nothing is at this address"),
                405: N_("this address does not take this method"),
                415: N_("the request body's content type is not accepted here")}
# SQLSTATE classes of a database that cannot serve now: connection exception, insufficient
# resources, operator intervention (admin or crash shutdown, cannot connect now)
_UNAVAILABLE_SQLSTATE = ("08", "53", "57P")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database", "disk i/o error")
DB_RETRY_AFTER = 2


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (not what the request did)."""
    if isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATE)
    message = str(exc.orig).lower()
    if exc.orig.__class__.__module__.startswith("sqlite3"):
        return any(m in message for m in _SQLITE_UNAVAILABLE)
    return True  # a client-side failure to connect or to keep the connection


def language(request: Request) -> str:
    """'zh' or 'en' from Accept-Language (highest q first); zh-CN when nothing is said."""
    return i18n.language_from_header(request.headers.get("accept-language"))


class Language:
    """ASGI middleware: each request is answered in the language its Accept-Language asks
    for (``i18n.current()`` inside routes and services), and says so (Content-Language)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                       if k == b"accept-language"), None)
        with i18n.language(i18n.language_from_header(header)):
            await self.app(scope, receive, send)


def _title(code: str, status: int, lang: str) -> str:
    return i18n.gettext(TITLES.get(code) or TITLES[_STATUS_CODE.get(status, "invalid_input")],
                        lang)


def problem(request: Request, *, status: int, code: str, detail: object,
            field: str | None = None,
            row: int | None = None, errors: list[RowProblem] | None = None,
            retry_after: int | None = None, headers: dict | None = None) -> JSONResponse:
    lang = language(request)
    title = _title(code, status, lang)
    body = Problem(
        type=f"https://civicvoucher.org/problems/{code}", title=title, status=status,
        detail=i18n.localize(detail, lang), code=code,
        instance=request.url.path, field=field, row=row, errors=errors,
        request_id=getattr(request.state, "request_id", None), retry_after=retry_after,
    )
    h = {"Content-Language": i18n.TAGS[lang], **(headers or {})}
    if retry_after is not None:
        h["Retry-After"] = str(retry_after)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=MEDIA_TYPE, headers=h)


def problem_for(request: Request, exc: Exception) -> JSONResponse:
    """The one mapping from any exception to its HTTP answer."""
    if isinstance(exc, ImportRejected):
        lang = language(request)
        rows = [RowProblem(row=e.row, field=e.field, reason=i18n.localize(e.reason, lang))
                for e in exc.errors[:200]]
        return problem(request, status=422, code=exc.code, detail=exc.message, field=exc.field,
                       row=exc.row, errors=rows)
    if database_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    exc.__class__.__name__, exc_info=exc)
        return problem(request, status=503, code="database_unavailable",
                       detail=N_("the database cannot be reached just now; retry the same "
                                 "request (with the same Idempotency-Key) shortly"),
                       retry_after=DB_RETRY_AFTER)
    if isinstance(exc, CivicVoucherError):
        retry = exc.details.get("retry_after")
        return problem(request, status=exc.http_status, code=exc.code, detail=exc.message,
                       field=exc.field if isinstance(exc, ValidationError) else None,
                       row=exc.row if isinstance(exc, ValidationError) else None,
                       retry_after=int(retry) if isinstance(retry, int) else None)
    if isinstance(exc, RequestValidationError):
        from civicvoucher.api import validation

        lang = language(request)
        errs = exc.errors()
        rows = [RowProblem(field=validation.field_of(e) or None,
                           reason=i18n.localize(validation.reason(e), lang)) for e in errs[:50]]
        return problem(request, status=422, code="invalid_input",
                       detail=validation.detail(errs[0]) if errs else N_("invalid request"),
                       field=rows[0].field if rows else None, errors=rows)
    if isinstance(exc, HTTPException):
        code = _STATUS_CODE.get(exc.status_code, "invalid_input")
        # Starlette's own details are English phrases ("Not Found"): said in the language
        detail = _HTTP_DETAIL.get(exc.status_code) or str(exc.detail)
        return problem(request, status=exc.status_code, code=code, detail=detail,
                       headers=dict(exc.headers or {}))
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, status=500, code="internal_error",
                   detail=N_("the server failed; the request id identifies it in the logs"))


PROBLEM_RESPONSES = {
    str(status): {
        "description": desc,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status, desc in [(400, "Bad request"), (401, "Not authenticated"),
                         (403, "Forbidden: role or scope"), (404, "Not found"),
                         (409, "Conflict (idempotency key reused, state conflict)"),
                         (422, "Invalid input"), (429, "Rate limited or locked out"),
                         (503, "Database unavailable: retry with the same Idempotency-Key")]
}
