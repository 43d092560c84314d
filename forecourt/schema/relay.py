"""Relay building blocks: the Node interface, global IDs, cursor connections."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry

from forecourt.domain.errors import DomainError

T = TypeVar("T")


@strawberry.interface(description="An object with a globally unique ID.")
class Node:
    id: strawberry.ID


def to_global_id(type_name: str, raw_id: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{raw_id}".encode()).decode())


def from_global_id(
    global_id: str, expected: str | None = None, field: tuple[str, ...] = ("id",)
) -> tuple[str, uuid.UUID]:
    """Decode a global ID; raise INVALID_ID when it is malformed or of another type."""
    try:
        if len(global_id) > 200:
            raise ValueError
        decoded = base64.urlsafe_b64decode(global_id.encode() + b"==").decode()
        type_name, _, raw = decoded.partition(":")
        parsed = uuid.UUID(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise DomainError("INVALID_ID", "not a valid ID", field) from None
    if expected is not None and type_name != expected:
        raise DomainError("INVALID_ID", f"expected the ID of a {expected}", field)
    return type_name, parsed


NodeResolver = Callable[[Any, uuid.UUID], Awaitable[Node | None]]
NODE_RESOLVERS: dict[str, NodeResolver] = {}


def node_resolver(type_name: str) -> Callable[[NodeResolver], NodeResolver]:
    """Register how `node(id:)` fetches a type; the resolver applies the type's visibility."""

    def register(fn: NodeResolver) -> NodeResolver:
        NODE_RESOLVERS[type_name] = fn
        return fn

    return register


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        """Counted only when asked for."""
        return await self.count_total()


def connection(
    page: Any,
    to_node: Callable[[Any], T],
    count_total: Callable[[], Awaitable[int]],
    cls: type = Connection,
    **extra: Any,
) -> Connection[T]:
    """A Connection (or a subclass, with `extra` fields) from one keyset page."""
    cursors = page.cursors
    return cls(
        **extra,
        edges=[Edge(node=to_node(row), cursor=c) for row, c in zip(page.rows, cursors, strict=True)],
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        count_total=count_total,
    )
