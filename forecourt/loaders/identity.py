from __future__ import annotations

from sqlalchemy import select

from forecourt.db.models import User
from forecourt.loaders.base import ByIdLoader


class UserByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        return {u.id: u for u in await self.reader.scalars(select(User).where(User.id.in_(ids)))}
