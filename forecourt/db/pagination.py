"""Keyset (cursor) pagination: stable under concurrent inserts, no OFFSET scans."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from forecourt.db.reader import Reader
from forecourt.domain.errors import DomainError


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    cursors: list[str]
    has_next: bool
    has_previous: bool


def page_size(first: int | None, default: int, maximum: int) -> int:
    if first is None:
        return default
    if first < 0:
        raise DomainError("INVALID_PAGE_SIZE", "first must not be negative", ("first",))
    if first > maximum:
        raise DomainError(
            "PAGE_SIZE_TOO_LARGE", f"first must be at most {maximum}", ("first",)
        )
    return first


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    return value


def _decode_value(value: Any, python_type: type) -> Any:
    if python_type is datetime:
        return datetime.fromisoformat(value)
    if python_type in (uuid.UUID, Decimal):
        return python_type(value)
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([_encode_value(v) for v in values])).decode()


def decode_cursor(cursor: str, columns: Sequence[ColumnElement]) -> tuple:
    try:
        if len(cursor) > 500:
            raise ValueError
        raw = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(raw, list) or len(raw) != len(columns):
            raise ValueError
        return tuple(
            _decode_value(v, c.type.python_type) for v, c in zip(raw, columns, strict=True)
        )
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise DomainError("INVALID_CURSOR", "the cursor is not valid", ("after",)) from None


def page_statement(statement: Select, order: Sequence[ColumnElement], *, first: int,
                   after: str | None, descending: bool) -> Select:
    """`statement` limited to one page after the cursor `after` (one row more: is there a next)."""
    stmt = statement.add_columns(*(c.label(f"_k{i}") for i, c in enumerate(order)))
    if after:
        key = decode_cursor(after, order)
        boundary = tuple_(*order) < tuple_(*key) if descending else tuple_(*order) > tuple_(*key)
        stmt = stmt.where(boundary)
    return stmt.order_by(*[c.desc() if descending else c.asc() for c in order]).limit(first + 1)


async def keyset_page(
    reader: Reader,
    statement: Select,
    order: Sequence[ColumnElement],
    *,
    first: int,
    after: str | None,
    descending: bool = True,
) -> Page:
    """One page of `statement`, ordered by the unique key `order` (all in one direction).

    A statement of one ORM entity returns entities; otherwise the rows themselves (with the
    key columns added as `_k0`, `_k1`, … to build cursors).
    """
    stmt = page_statement(statement, order, first=first, after=after, descending=descending)
    result = (await reader.execute(stmt)).all() if first > 0 else []
    width = len(order)
    rows = result[:first]
    return Page(
        rows=[r[0] if len(r) == width + 1 else r for r in rows],
        cursors=[encode_cursor(r[-width:]) for r in rows],
        has_next=len(result) > first,
        has_previous=after is not None,
    )


async def count(reader: Reader, statement: Select) -> int:
    return await reader.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
