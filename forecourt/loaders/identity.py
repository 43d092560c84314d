from __future__ import annotations

from collections import defaultdict

from aiodataloader import DataLoader
from sqlalchemy import select

from forecourt.db.models import ApiToken, User
from forecourt.db.reader import Reader
from forecourt.loaders.base import ByIdLoader


class UserByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        return {u.id: u for u in await self.reader.scalars(select(User).where(User.id.in_(ids)))}


class ApiTokensByUserLoader(DataLoader):
    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self.reader = reader

    async def batch_load_fn(self, user_ids):
        rows = await self.reader.scalars(
            select(ApiToken)
            .where(ApiToken.user_id.in_(set(user_ids)))
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
        by_user = defaultdict(list)
        for row in rows:
            by_user[row.user_id].append(row)
        return [by_user[user_id] for user_id in user_ids]
