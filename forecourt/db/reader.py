"""Serialised reads on a request's read session (autocommit: see Context.reader).

GraphQL resolves sibling fields concurrently, and an AsyncSession allows one statement at a
time; DataLoaders batch per relation, but two loaders can still fire in the same tick. All
reads of a request go through this lock, on one connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


class Reader:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.lock = asyncio.Lock()  # held by whoever runs statements on the session

    async def execute(self, statement: Any, params: Any = None):
        async with self.lock:
            return await self.session.execute(statement, params)

    async def scalar(self, statement: Any, params: Any = None):
        async with self.lock:
            return await self.session.scalar(statement, params)

    async def scalars(self, statement: Any, params: Any = None) -> list:
        async with self.lock:
            return list(await self.session.scalars(statement, params))
