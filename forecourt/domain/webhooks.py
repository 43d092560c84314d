"""Reading the objects of verified provider webhooks (Stripe's). A signed event can still be
malformed — an API version we do not read, a field of the wrong type — and must then be refused
with a clear error, never crash the handler. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from forecourt.domain.errors import DomainError

MAX_ID_LENGTH = 255  # the width of every column that stores a provider id


class InvalidEvent(DomainError):
    """A verified event whose object lacks what the handler needs, or has it in the wrong type."""

    def __init__(self, message: str) -> None:
        super().__init__("INVALID_EVENT", message)


def timestamp(value: Any) -> datetime | None:
    """A Stripe unix timestamp (seconds) as a UTC datetime; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"not a timestamp: {value!r}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidEvent(f"timestamp out of range: {value}") from None


def object_id(value: Any) -> str | None:
    """An expandable reference: an id string, or the expanded object's id; None when absent."""
    if isinstance(value, dict):
        value = value.get("id")
    if not isinstance(value, str) or not value:
        return None
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(f"an id longer than {MAX_ID_LENGTH} characters")
    return value


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object's metadata; empty when it has none."""
    found = obj.get("metadata")
    return found if isinstance(found, dict) else {}


def list_items(value: Any) -> list[Any]:
    """The `data` of a Stripe list object (`{"object": "list", "data": [...]}`); empty when absent."""
    if value is None:
        return []
    data = value.get("data") if isinstance(value, dict) else None
    if not isinstance(data, list):
        raise InvalidEvent("a list that is not a list object")
    return data


def positive_integer(value: Any, name: str) -> int:
    """An amount in minor units: a whole number above zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidEvent(f"{name} is not a positive whole number: {value!r}")
    return value
