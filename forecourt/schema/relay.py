"""Relay building blocks: the Node interface, global IDs, cursor connections."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types.nodes import SelectedField, Selection

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
    edge_list: strawberry.Private[list[Edge[T]]]
    page_info: PageInfo
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    def edges(self, info: strawberry.Info) -> list[Edge[T]]:
        # Synchronous unless a subclass has something to load for the whole page first.
        return self.resolve_edges(info)

    def resolve_edges(self, info: strawberry.Info) -> list[Edge[T]] | Awaitable[list[Edge[T]]]:
        """The page's edges; a subclass may return an awaitable that first loads, for the
        whole page at once, what the selection asks of every node."""
        return self.edge_list

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
    many = getattr(to_node, "many", None)  # a converter for a whole page of rows at once
    nodes = many(page.rows) if many is not None else [to_node(row) for row in page.rows]
    return cls(
        **extra,
        edge_list=[Edge(node=node, cursor=c) for node, c in zip(nodes, cursors, strict=True)],
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        count_total=count_total,
    )


def selected_under(info: strawberry.Info, *paths: tuple[str, ...]) -> list[set[str]]:
    """For each path, the names of the fields selected there below the field being resolved,
    fragments flattened (and @skip/@include ignored: a superset of what will run)."""
    top: list[Selection] = [s for f in _fields(info.selected_fields) for s in f.selections]
    found = []
    for path in paths:
        level = top
        for name in path:
            level = [s for f in _fields(level) if f.name == name for s in f.selections]
        found.append({f.name for f in _fields(level)})
    return found


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:
            yield from _fields(selection.selections)
