"""Spreadsheet uploads (CSV in UTF-8, UTF-8 with BOM or GBK; XLSX): size and type checked,
read into a table the registries' validators take.

An upload is bounded three times. ``UploadLimit`` (an ASGI middleware on the app) holds the
app-wide ceiling for every request body: over it, 413 problem+json at once when the
Content-Length says so, and otherwise as soon as the bytes received pass it, so a 200 MB
upload is never received whole. The route class then caps each route's body after
authenticating the caller (``api.bodies``: an upload's cap is this same limit, a JSON body's
a few KB). ``saved_upload`` copies the part to a temporary file in chunks, counting again.
The limit is ``CIVICVOUCHER_UPLOAD_MAX_BYTES`` (default 50 MB), never more than the import
file limit (``CIVICVOUCHER_IMPORT_MAX_BYTES``); the table itself is bounded by ``read_table``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civicvoucher.api.bodies import RequestTooLarge
from civicvoucher.core.tabular import ImportLimits, ImportTooLarge, Table, read_table
from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_, msg

ENV_UPLOAD_MAX = "CIVICVOUCHER_UPLOAD_MAX_BYTES"
MAX_UPLOAD = 50 * 1024 * 1024
# multipart framing around the file: boundaries, part headers, a few small form fields
FRAMING = 64 * 1024
_CHUNK = 1024 * 1024


def upload_limit() -> int:
    """The largest file an upload may carry, in bytes."""
    raw = os.environ.get(ENV_UPLOAD_MAX, "").strip().replace("_", "")
    limit = int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else MAX_UPLOAD
    try:
        return min(limit, ImportLimits.from_env().max_bytes)
    except ValidationError:  # a bad setting: the import itself says so, clearly
        return min(limit, ImportLimits().max_bytes)


def _mb(n: int):
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else msg("{n} bytes", n=n)


class UploadTooLarge(ImportTooLarge):
    """An upload over ``upload_limit()``: 413, code import_too_large."""

    def __init__(self, limit: int) -> None:
        super().__init__(msg("the upload is larger than {size}; nothing imported",
                             size=_mb(limit)), field="file")


class UploadLimit:
    """ASGI middleware, the app-wide ceiling: a request body over the upload limit is
    answered 413 problem+json before it is buffered (Content-Length), or as soon as the bytes
    received pass the limit. Every body is bounded here, also one that no route reads; each
    route's own, smaller cap is applied by the route class (``api.bodies``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = upload_limit()
        multipart = _is_multipart(scope)
        allowed = limit + FRAMING if multipart else limit
        length = _content_length(scope)
        if length is not None and length > allowed:
            await _refuse(scope, send, limit, multipart)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > allowed:
                    raise UploadTooLarge(limit) if multipart else RequestTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except (UploadTooLarge, RequestTooLarge):
            if started:
                raise
            await _refuse(scope, send, limit, multipart)


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"multipart/form-data"
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope: Scope, send: Send, limit: int, multipart: bool) -> None:
    from civicvoucher.api.problems import problem_for

    request = Request(scope)
    exc = UploadTooLarge(limit) if multipart else RequestTooLarge(limit)
    response = problem_for(request, exc)
    response.headers["Connection"] = "close"  # the rest of the body is not read
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


@contextmanager
def saved_upload(file: UploadFile, stem: str) -> Iterator[Path]:
    """The upload as a temporary file (gone when the block ends), refused if it is not
    .csv/.xlsx or larger than ``upload_limit()``. Copied in chunks: never whole in memory."""
    suffix = Path(file.filename or "upload.csv").suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ValidationError(N_("upload a .csv or .xlsx file"), field="file")
    limit = upload_limit()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem}{suffix}"
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(limit)
                out.write(chunk)
        yield path


def read_upload(path: Path, aliases: dict) -> Table:
    """Read a saved upload; a file that is not a readable table is the caller's error."""
    try:
        return read_table(path, aliases=aliases)
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(msg("cannot read the file ({error})",
                                  error=exc.__class__.__name__), field="file") from None
