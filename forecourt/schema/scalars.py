"""Scalars: Money is a decimal string (never a float); DateTime is ISO 8601 with an offset; JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NewType

import strawberry
from strawberry.scalars import JSON

__all__ = ["JSON", "SCALAR_MAP", "Money", "parse_datetime", "parse_money"]

MONEY_MAX = Decimal("9999999999999.99")  # DECIMAL(15,2)


def parse_money(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("Money must be a decimal string such as \"1250000.00\"")
    text = str(value).strip()
    if len(text) > 32:
        raise ValueError("Money value is too long")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise ValueError("Money must be a finite amount")
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("Money has at most two decimal places")
    if abs(amount) > MONEY_MAX:
        raise ValueError(f"Money must be at most {MONEY_MAX}")
    return amount.quantize(Decimal("0.01"))


def serialize_money(value: Decimal) -> str:
    return f"{value:.2f}"


def parse_datetime(value: object) -> datetime:
    """An ISO 8601 instant, in UTC. One without an offset is refused: it names no instant, and
    comparing it with the server's clock would fail."""
    example = '"2026-01-01T09:00:00Z"'
    if not isinstance(value, str):
        raise ValueError(f"DateTime must be an ISO 8601 string such as {example}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 date and time such as {example}") from None
    if parsed.utcoffset() is None:
        raise ValueError(f"DateTime needs a UTC offset or Z, e.g. {example}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("DateTime is out of range") from None


Money = NewType("Money", Decimal)

SCALAR_MAP = {
    Money: strawberry.scalar(
        name="Money",
        description='A decimal amount as a string, e.g. "1250000.00"; never a float.',
        serialize=serialize_money,
        parse_value=parse_money,
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description='An instant: ISO 8601 with a UTC offset or Z, e.g. "2026-01-01T09:00:00Z".',
        serialize=datetime.isoformat,
        parse_value=parse_datetime,
    ),
}
