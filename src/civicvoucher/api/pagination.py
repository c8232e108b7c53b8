"""Cursor pagination: ``?limit=&cursor=``, items in id order, ``next_cursor`` until the end.

The cursor is the last id seen, base64url-encoded: opaque to clients, stable under inserts.
A cursor this API did not give out (not base64url of plain ASCII digits, or past the largest
id its column can hold, which PostgreSQL would refuse as "integer out of range" and SQLite's
driver as an overflow) is 400 problem+json ``invalid_cursor`` naming the cursor.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import BigInteger, Select
from sqlalchemy.orm import Session

from civicvoucher.errors import ValidationError
from civicvoucher.i18n import N_

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int = 50
    cursor: str | None = None


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="items per page")] = 50,
    cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                        description="next_cursor of the previous page")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


INT_MAX = 2**31 - 1  # the largest id of an Integer column (PostgreSQL integer)
BIGINT_MAX = 2**63 - 1  # of a BigInteger column
_DIGITS = re.compile(r"[0-9]{1,19}")


class InvalidCursor(ValidationError):
    code = "invalid_cursor"
    http_status = 400

    def __init__(self) -> None:
        super().__init__(N_("not a cursor this API gave out"), field="cursor")


def decode(cursor: str, max_id: int = BIGINT_MAX) -> int:
    """The id in ``cursor``; InvalidCursor unless it is one ``encode`` could have made for an
    id of at most ``max_id`` (``int()`` alone would take " 7", "1_0" and "١٢٣")."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor() from None
    if not _DIGITS.fullmatch(raw) or int(raw) > max_id:
        raise InvalidCursor()
    return int(raw)


def max_id_of(id_col) -> int:
    """The largest value ``id_col`` can hold on every database this runs on."""
    return BIGINT_MAX if isinstance(id_col.type, BigInteger) else INT_MAX


def paginate(session: Session, query: Select, id_col, params: PageParams,
             to_item: Callable) -> Page:
    """Run ``query`` (already filtered and scoped) one page at a time, in ``id_col`` order."""
    if params.cursor:
        query = query.where(id_col > decode(params.cursor, max_id_of(id_col)))
    rows = session.execute(query.order_by(id_col).limit(params.limit + 1)).all()
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    items = [to_item(r[0] if len(r) == 1 else r) for r in rows]
    nxt = encode(_id_of(rows[-1], id_col)) if more and rows else None
    return Page(items=items, next_cursor=nxt)


def _id_of(row, id_col) -> int:
    first = row[0]
    return getattr(first, id_col.key) if hasattr(first, id_col.key) else first
