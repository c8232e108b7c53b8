"""Cursor pagination: ``?limit=&cursor=``, items in id order, ``next_cursor`` until the end.

The cursor is the last id seen, base64url-encoded: opaque to clients, stable under inserts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import Session

from civicvoucher.errors import ValidationError

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


def decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value = int(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("not a cursor this API gave out", field="cursor",
                              code="invalid_cursor") from None
    if value < 0:
        raise ValidationError("not a cursor this API gave out", field="cursor",
                              code="invalid_cursor")
    return value


def paginate(session: Session, query: Select, id_col, params: PageParams,
             to_item: Callable) -> Page:
    """Run ``query`` (already filtered and scoped) one page at a time, in ``id_col`` order."""
    if params.cursor:
        query = query.where(id_col > decode(params.cursor))
    rows = session.execute(query.order_by(id_col).limit(params.limit + 1)).all()
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    items = [to_item(r[0] if len(r) == 1 else r) for r in rows]
    nxt = encode(_id_of(rows[-1], id_col)) if more and rows else None
    return Page(items=items, next_cursor=nxt)


def _id_of(row, id_col) -> int:
    first = row[0]
    return getattr(first, id_col.key) if hasattr(first, id_col.key) else first
