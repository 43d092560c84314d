from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from forecourt.db.models import MinuteQuota, Organization
from forecourt.loaders.base import ByIdLoader


@dataclass(frozen=True)
class OrganizationRow:
    organization: Organization
    minutes_remaining: int


class OrganizationByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.execute(
            select(Organization, MinuteQuota.total_minutes - MinuteQuota.used_minutes)
            .outerjoin(MinuteQuota, MinuteQuota.organization_id == Organization.id)
            .where(Organization.id.in_(ids))
        )
        return {
            org.id: OrganizationRow(org, max(0, remaining or 0)) for org, remaining in rows.all()
        }
