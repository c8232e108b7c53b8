"""Request bodies: how big each route's may be, and what a JSON body must look like, checked
before anything else reads it.

The route class (``api.routing``) authenticates the caller first (token, then role) and only
then reads the body (``capped``, ``read_body``): a declared ``Content-Length`` over the
route's cap is refused at once, and a body sent without one (chunked) is refused as soon as
the bytes received pass the cap, so an unauthenticated caller costs one token lookup whatever
it sends, and an authenticated one at most the cap. Every refusal is 413 problem+json
``request_too_large``. The caps, by route kind:

* an upload (multipart): ``CIVICVOUCHER_UPLOAD_MAX_BYTES`` plus the multipart framing (the
  app-wide ``UploadLimit`` middleware in ``api.uploads`` holds the same ceiling for every body);
* a JSON body: 64 KB (``JSON_MAX``) unless ``CAPS`` says otherwise: 8 KB for the routes
  whose bodies are a handful of short fields (a login, a redemption, a callback), more for
  the four that take long lists (an issuance's member_ids, an extension's union_ids, a
  program's products, created or updated);
* a route that takes no body: 1 KB (``NO_BODY_MAX``), room for an empty ``{}``.

A body the route class reads (every route's but an upload's) must then be strict JSON, or
empty: UTF-8, nested at most ``MAX_DEPTH`` deep (counted on the raw bytes before any parser
recurses), no NaN or Infinity, every number finite, no duplicate key, nothing after the
value. Anything else is 400 problem+json naming the body (``invalid_json``, ``json_too_deep``),
never a parser's RecursionError turned 500. Only a body that passed is given to the
Idempotency-Key fingerprint and to FastAPI, whose own parse then cannot fail. (A JSON value of
the wrong shape, such as an array for an object or 10^400 for an amount, parses and is
refused by the route's model: 422 naming the field.) An upload's body, read whole only to
fingerprint its key, must start with its multipart boundary (``--``), so that the fingerprint's
``json.loads`` gives up at its first byte.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import params
from starlette.requests import Request
from starlette.types import Message, Receive

from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_, msg

JSON_MAX = 64 * 1024
SMALL_JSON_MAX = 8 * 1024
NO_BODY_MAX = 1024
MAX_DEPTH = 32
# Where the default JSON_MAX does not fit: routes whose body is a handful of short fields
# (the longest legal body, every string at its maximum length, stays under 8 KB), and the
# three that take long lists. tests/api/test_bounded_requests.py builds each route's largest
# legal body from the OpenAPI document and checks that it fits.
CAPS: dict[str, int] = {
    **dict.fromkeys(("login", "channel_callback", "lookup_voucher", "create_redemption",
                     "refund_redemption", "create_api_token", "create_deposit",
                     "set_member_status", "set_member_phone", "transfer_member_route",
                     "set_merchant_status", "run_expiry", "run_settlement"), SMALL_JSON_MAX),
    "create_issuance": 2 * 1024 * 1024,  # member_ids: up to 100,000 ids
    "create_extension": 256 * 1024,  # union_ids: up to 10,000 ids
    "create_program_route": 256 * 1024,  # a whole program: its products, their rules
    "update_program_route": 256 * 1024,  # the same, edited before launch
}

FORM, JSON, NONE = "form", "json", "none"


def _size(n: int):
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MB"
    return f"{n // 1024} KB" if n >= 1024 and n % 1024 == 0 else msg("{n} bytes", n=n)


class RequestTooLarge(ValidationError):
    """A request body over its route's cap (or the app's ceiling): 413 request_too_large."""

    code = "request_too_large"
    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(msg("the request body is larger than {size}", size=_size(limit)),
                         field="body", limit=limit)


class MalformedBody(ValidationError):
    """A body that is not strict JSON, or not the multipart an upload must be: 400."""

    http_status = 400

    def __init__(self, message: str, code: str = "invalid_json") -> None:
        super().__init__(message, field="body", code=code)


# --- each route's kind and cap -------------------------------------------------------------

def body_kind(route: Any) -> str:
    """``form`` (an upload), ``json`` (a JSON body, declared by its model or, for a route that
    reads the raw body itself like the channel callback, in its OpenAPI ``requestBody``) or
    ``none``."""
    field = getattr(route, "body_field", None)
    if field is not None:
        return FORM if isinstance(field.field_info, params.Form) else JSON
    content = ((getattr(route, "openapi_extra", None) or {}).get("requestBody") or {}
               ).get("content") or {}
    if "multipart/form-data" in content:
        return FORM
    return JSON if "application/json" in content else NONE


def cap_for(name: str, kind: str) -> int:
    """The largest body the route ``name`` of ``kind`` reads, in bytes."""
    if kind == FORM:
        from civicvoucher.api.uploads import FRAMING, upload_limit

        return upload_limit() + FRAMING  # read now: the setting may change while running
    if kind == NONE:
        return NO_BODY_MAX
    return CAPS.get(name, JSON_MAX)


# --- reading -------------------------------------------------------------------------------

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def declared_length(request: Request) -> int | None:
    """Content-Length when it is a plain decimal number (anything else is left to the
    counting: ``²³`` and ``١٢٣`` pass ``str.isdigit``, not this)."""
    raw = request.headers.get("content-length")
    return int(raw) if raw is not None and _ASCII_DIGITS.fullmatch(raw.strip()) else None


def has_body(request: Request) -> bool:
    """Whether the client says it sends a body (a length above 0, or chunked)."""
    n = declared_length(request)
    return bool(n) or "transfer-encoding" in request.headers


class CountedReceive:
    """The ASGI ``receive`` of one request, refusing the body once more than ``cap`` bytes
    have come in; ``complete`` says whether the whole body was read."""

    def __init__(self, receive: Receive, cap: int) -> None:
        self.inner, self.cap, self.seen, self.complete = receive, cap, 0, False

    async def __call__(self) -> Message:
        message = await self.inner()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.cap:
                raise RequestTooLarge(self.cap)
            self.complete = not message.get("more_body", False)
        return message


def capped(request: Request, cap: int) -> tuple[Request, CountedReceive]:
    """The same request (scope, state) reading its body through a ``CountedReceive``; a
    declared Content-Length over ``cap`` is refused at once, before a byte is read."""
    n = declared_length(request)
    if n is not None and n > cap:
        raise RequestTooLarge(cap)
    counted = CountedReceive(request.receive, cap)
    return Request(request.scope, counted), counted


async def read_body(request: Request, kind: str) -> bytes:
    """The whole body of ``request`` (already ``capped``), checked for its kind."""
    body = await request.body()
    if kind == FORM:
        if body and not body.startswith(b"--"):
            raise MalformedBody(N_("send the file as multipart/form-data"),
                                code="invalid_input")
    elif body:
        check_json(body)
    return body


# --- strict JSON ---------------------------------------------------------------------------

# a string (escapes included; to the end if it is never closed) or one bracket: what lies
# between them cannot nest. Each string is one match, so the scan is linear in the bytes.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``raw`` nests arrays and objects deeper than ``limit``, by counting brackets
    outside strings, without parsing it (a parser would recurse once per level). Stops at
    the first bracket past ``limit``; on bytes that are not JSON it still ends, linear in
    their length."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # too few brackets to be deeper: no scan
    depth = 0
    for m in _TOKEN.finditer(raw):
        c = m.group()
        if c in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif c in (b"]", b"}"):
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise MalformedBody(msg("the body holds {name}, which is not JSON", name=name))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedBody(msg("the number {number} is out of range", number=text[:40]))
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            shown = key[:60]
            raise MalformedBody(msg('the key "{key}" appears twice', key=shown))
        out[key] = value
    return out


def check_json(raw: bytes) -> Any:
    """``raw`` parsed as strict JSON (see the module's docstring), or MalformedBody."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(msg("the body is not UTF-8 (byte {position})",
                                position=exc.start)) from None
    if too_deep(raw):
        raise MalformedBody(msg("the JSON nests deeper than {depth} levels", depth=MAX_DEPTH),
                            code="json_too_deep")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite,
                           object_pairs_hook=_unique)
    except json.JSONDecodeError as exc:
        raise MalformedBody(msg("the body is not JSON (at position {position})",
                                position=exc.pos)) from None
    except ValueError:  # an integer literal past Python's 4300 digits
        raise MalformedBody(N_("a number in the body is too long")) from None
    try:  # "\ud800" parses to a lone surrogate, which no database driver can encode
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedBody(N_("the body escapes a lone UTF-16 surrogate (\\uD800-\\uDFFF)")
                            ) from None
    return value


__all__ = ["CAPS", "FORM", "JSON", "JSON_MAX", "MAX_DEPTH", "NONE", "NO_BODY_MAX",
           "SMALL_JSON_MAX", "MalformedBody", "RequestTooLarge", "body_kind", "cap_for",
           "capped", "check_json", "has_body", "read_body", "too_deep"]
