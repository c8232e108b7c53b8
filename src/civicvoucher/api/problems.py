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

from civicvoucher.auth.errors import DatabaseUnavailable
from civicvoucher.errors import CivicVoucherError, ImportRejected, ValidationError

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


# zh-CN and en titles by code; a code not listed falls back to its HTTP status title.
TITLES: dict[str, tuple[str, str]] = {
    "invalid_input": ("输入无效", "Invalid input"),
    "import_rejected": ("导入被拒绝，未导入任何数据", "Import rejected, nothing imported"),
    "not_found": ("未找到", "Not found"),
    "conflict": ("冲突", "Conflict"),
    "idempotency_key_reused": ("幂等键已用于其他请求", "Idempotency key used for another request"),
    "idempotency_key_required": ("缺少 Idempotency-Key 请求头", "Idempotency-Key header required"),
    "idempotency_request_in_progress": ("相同请求正在处理中", "The same request is in progress"),
    "exists_with_different_amount": ("同一编号的转账金额不同", "Transfer exists with another amount"),
    "insufficient_funds": ("资金不足", "Insufficient funds"),
    "voucher_not_redeemable": ("该券不可使用", "Voucher cannot be redeemed"),
    "voucher_already_redeemed": ("该券已被使用", "Voucher already redeemed"),
    "voucher_expired": ("该券已过期", "Voucher expired"),
    "voucher_not_yet_valid": ("该券尚未生效", "Voucher not yet valid"),
    "voucher_not_found": ("券码不存在", "No voucher with this code"),
    "category_not_allowed": ("该商户类别不可用券", "Merchant category not allowed"),
    "channel_not_allowed": ("该渠道不可用券", "Channel not allowed"),
    "region_not_allowed": ("该地区不可用券", "Merchant outside the voucher's region"),
    "order_below_threshold": ("订单金额未达到使用门槛", "Order below the voucher's threshold"),
    "merchant_not_active": ("商户未启用", "Merchant not active"),
    "invalid_transition": ("状态不允许此操作", "Invalid state transition"),
    "hold_expired": ("预授权已超时", "Hold expired"),
    "hold_not_active": ("预授权不在进行中", "Hold not active"),
    "redemption_not_refundable": ("该笔核销不可退款", "Redemption not refundable"),
    "redemption_already_refunded": ("该笔核销已退款", "Redemption already refunded"),
    "forbidden": ("无权操作", "Forbidden"),
    "out_of_scope": ("超出本单位管辖范围", "Outside your organisation's scope"),
    "role_forbidden": ("当前角色无权执行此操作", "Your role may not do this"),
    "unauthenticated": ("未登录或令牌无效", "Not authenticated"),
    "login_failed": ("用户名或密码错误", "Wrong username or password"),
    "rate_limited": ("请求过于频繁", "Too many requests"),
    "locked_out": ("失败次数过多，已暂时锁定", "Locked out after too many failures"),
    "bad_signature": ("签名无效", "Bad signature"),
    "stale_timestamp": ("时间戳超出允许范围", "Timestamp outside the allowed window"),
    "qr_expired": ("二维码已过期，请刷新", "QR code expired, refresh it"),
    "qr_invalid": ("二维码无效", "Invalid QR code"),
    "invalid_cursor": ("分页游标无效", "Invalid cursor"),
    "ledger_invariant_broken": ("账务校验失败", "Ledger invariant broken"),
    "internal_error": ("服务器内部错误", "Internal server error"),
    "database_unavailable": ("数据库暂时无法访问，请稍后重试",
                             "Database temporarily unavailable, retry shortly"),
    "method_not_allowed": ("方法不允许", "Method not allowed"),
    "program_closed": ("活动已结束", "Program closed"),
    # the money path (issue 8)
    "qr_already_used": ("该二维码已使用，请刷新后重试", "QR code already used, refresh it"),
    "voucher_not_held": ("该券未处于预授权状态", "Voucher is not held"),
    "pending_transfer_already_posted": ("预授权转账已入账", "Pending transfer already posted"),
    "pending_transfer_already_voided": ("预授权转账已撤销", "Pending transfer already voided"),
    "pending_transfer_not_found": ("预授权转账不存在", "No such pending transfer"),
    "exists_with_different_debit_account_id": ("同一编号的转账借方账户不同",
                                               "Transfer exists with another debit account"),
    "exists_with_different_credit_account_id": ("同一编号的转账贷方账户不同",
                                                "Transfer exists with another credit account"),
    "exists_with_different_code": ("同一编号的转账类型不同", "Transfer exists with another code"),
    "exists_with_different_flags": ("同一编号的转账标志不同", "Transfer exists with other flags"),
    "exists_with_different_pending_id": ("同一编号的转账关联的预授权不同",
                                         "Transfer exists with another pending transfer"),
    "secret_key_mismatch": ("身份证号哈希密钥与数据库不符", "Wrong ID-hash key for this database"),
    "secret_key_missing": ("身份证号哈希密钥缺失", "ID-hash key missing"),
    "secret_key_unreadable": ("无法读取身份证号哈希密钥", "ID-hash key unreadable"),
    "secret_key_too_short": ("身份证号哈希密钥太短", "ID-hash key too short"),
    "import_too_large": ("导入文件过大或行数过多", "Import file too large"),
    "request_too_large": ("请求体过大", "Request body too large"),
    "county_outside_map": ("商户所在区县不在本系统的行政区划内",
                           "Merchant's county is outside this deployment's map"),
    # handout (issue 10): vouchers handed out, QR images
    "qr_not_for_payment": ("发放凭证二维码不能用于付款，请出示App中的付款码",
                           "A hand-out QR code cannot pay: show the app's payment QR"),
    "not_acceptable": ("无法提供所请求的内容格式", "None of the accepted content types"),
    # secrets task (issue 9, item 1): sealed secrets at rest
    "sealed_secret_unreadable": ("密封的密钥无法解开", "A sealed secret cannot be opened"),
    "sealing_key_unknown": ("缺少解开密钥所需的封装密钥", "The sealing key for a secret is missing"),
    "sealing_keys_invalid": ("封装密钥文件无效", "Invalid sealing-keys file"),
    # login limits (issue 9, login task)
    "login_slowed": ("该账号登录失败次数过多，请稍后再试",
                     "Too many failed logins for this account, retry later"),
    "login_busy": ("登录请求过多，请稍后重试", "Too many logins at once, retry shortly"),
    # bounded request bodies (issue 9, door): api.bodies
    "invalid_json": ("请求体不是有效的 JSON", "The request body is not valid JSON"),
    "json_too_deep": ("请求体 JSON 嵌套过深", "The request body's JSON nests too deep"),
    # issue 10 (report): GET /reports/programs/{program}
    "program_not_found": ("活动不存在", "No such program"),
    "org_not_found": ("单位不存在", "No such organisation"),
}
_STATUS_CODE = {400: "invalid_input", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "invalid_input",
                415: "invalid_input", 422: "invalid_input", 429: "rate_limited",
                500: "internal_error", 503: "database_unavailable"}
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
    header = request.headers.get("accept-language", "")
    best, best_q = None, -1.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower()[:2]
        if base in ("zh", "en") and q > best_q:
            best, best_q = base, q
    return best or "zh"


def _title(code: str, status: int, lang: str) -> str:
    zh, en = TITLES.get(code) or TITLES[_STATUS_CODE.get(status, "invalid_input")]
    return zh if lang == "zh" else en


def problem(request: Request, *, status: int, code: str, detail: str, field: str | None = None,
            row: int | None = None, errors: list[RowProblem] | None = None,
            retry_after: int | None = None, headers: dict | None = None) -> JSONResponse:
    lang = language(request)
    title = _title(code, status, lang)
    body = Problem(
        type=f"https://civicvoucher.org/problems/{code}", title=title, status=status,
        detail=detail if lang == "en" else f"{title}：{detail}", code=code,
        instance=request.url.path, field=field, row=row, errors=errors,
        request_id=getattr(request.state, "request_id", None), retry_after=retry_after,
    )
    h = {"Content-Language": "zh-CN" if lang == "zh" else "en", **(headers or {})}
    if retry_after is not None:
        h["Retry-After"] = str(retry_after)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type=MEDIA_TYPE, headers=h)


def problem_for(request: Request, exc: Exception) -> JSONResponse:
    """The one mapping from any exception to its HTTP answer."""
    if isinstance(exc, ImportRejected):
        rows = [RowProblem(row=e.row, field=e.field, reason=e.reason) for e in exc.errors[:200]]
        return problem(request, status=422, code=exc.code, detail=exc.message, field=exc.field,
                       row=exc.row, errors=rows)
    if database_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    exc.__class__.__name__, exc_info=exc)
        return problem(request, status=503, code="database_unavailable",
                       detail="the database cannot be reached just now; retry the same request "
                              "(with the same Idempotency-Key) shortly",
                       retry_after=DB_RETRY_AFTER)
    if isinstance(exc, CivicVoucherError):
        retry = exc.details.get("retry_after")
        return problem(request, status=exc.http_status, code=exc.code, detail=exc.message,
                       field=exc.field if isinstance(exc, ValidationError) else None,
                       row=exc.row if isinstance(exc, ValidationError) else None,
                       retry_after=int(retry) if isinstance(retry, int) else None)
    if isinstance(exc, RequestValidationError):
        errs = exc.errors()
        rows = [RowProblem(field=".".join(str(p) for p in e.get("loc", ())),
                           reason=str(e.get("msg", "invalid"))) for e in errs[:50]]
        first = rows[0] if rows else RowProblem(reason="invalid request")
        return problem(request, status=422, code="invalid_input",
                       detail=f"{first.field}: {first.reason}" if first.field else first.reason,
                       field=first.field, errors=rows)
    if isinstance(exc, HTTPException):
        code = _STATUS_CODE.get(exc.status_code, "invalid_input")
        return problem(request, status=exc.status_code, code=code, detail=str(exc.detail),
                       headers=dict(exc.headers or {}))
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, status=500, code="internal_error",
                   detail="the server failed; the request id identifies it in the logs")


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
