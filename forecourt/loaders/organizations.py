from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from forecourt.db.models import BillingSubscription, MinuteQuota, Organization
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


@dataclass(frozen=True)
class BillingRow:
    """An organization's minutes and its Stripe Billing subscriptions."""

    total_minutes: int
    used_minutes: int
    period_end: datetime | None
    subscriptions: tuple[BillingSubscription, ...]


class BillingByOrganizationLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.execute(
            select(Organization.id, MinuteQuota.total_minutes, MinuteQuota.used_minutes,
                   MinuteQuota.period_end, BillingSubscription)
            .select_from(Organization)
            .outerjoin(MinuteQuota, MinuteQuota.organization_id == Organization.id)
            .outerjoin(BillingSubscription, BillingSubscription.organization_id == Organization.id)
            .where(Organization.id.in_(ids))
        )
        found: dict = {}
        for org_id, total, used, period_end, subscription in rows.all():
            row = found.get(org_id) or BillingRow(total or 0, used or 0, period_end, ())
            if subscription is not None:
                row = BillingRow(row.total_minutes, row.used_minutes, row.period_end,
                                 (*row.subscriptions, subscription))
            found[org_id] = row
        return found
