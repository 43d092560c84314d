"""A DataLoader that loads rows by primary key with one `IN` query per batch."""

from __future__ import annotations

import uuid
from collections import namedtuple
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from aiodataloader import DataLoader
from sqlalchemy.engine import Result

from forecourt.db.reader import Reader


class ByIdLoader(DataLoader):
    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self.reader = reader

    async def fetch(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
        raise NotImplementedError

    async def batch_load_fn(self, ids: Sequence[uuid.UUID]) -> list[Any]:
        found = await self.fetch(list(dict.fromkeys(ids)))
        return [found.get(i) for i in ids]


@lru_cache(maxsize=256)
def _record(fields: tuple[str, ...]) -> Any:
    return namedtuple("Record", fields)  # one class per column list, cached


def record(fields: tuple[str, ...], values: Sequence[Any]) -> Any:
    """One named tuple of `values` under `fields` (e.g. a slice of a wider row)."""
    return _record(fields)._make(values)


def records(result: Result) -> list[Any]:
    """A result's rows as named tuples: the same attributes as a Row, read ~20 times faster
    (a Row resolves each attribute by name through its result's metadata)."""
    make = _record(tuple(result.keys()))._make
    return [make(row) for row in result]


def mappings(result: Result) -> list[dict[str, Any]]:
    """A result's rows as plain dicts (what `from_row(mapping)` constructors read)."""
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]
