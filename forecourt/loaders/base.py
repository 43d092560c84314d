"""A DataLoader that loads rows by primary key with one `IN` query per batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from aiodataloader import DataLoader

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
