"""Organizations: a user founds one and becomes its admin, on the FREE plan."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from forecourt.db.models import MinuteQuota, Organization, User
from forecourt.domain import organizations as rules
from forecourt.domain.organizations import OrgRole, PlanTier
from forecourt.services import Work


async def create_organization(work: Work, *, name: str | None) -> Organization:
    assert work.actor is not None
    name = rules.validate_organization_name(name)
    user = await work.session.scalar(
        select(User).where(User.id == work.actor.user_id).with_for_update()
    )
    assert user is not None
    rules.check_can_create_organization(user.organization_id)
    org = Organization(id=uuid.uuid4(), name=name, plan=PlanTier.FREE.value, created_by=user.id)
    work.session.add(org)
    await work.session.flush()
    work.session.add(
        MinuteQuota(organization_id=org.id, total_minutes=rules.PLAN_MINUTES[PlanTier.FREE])
    )
    user.organization_id = org.id
    user.org_role = OrgRole.ADMIN.value
    await work.session.flush()
    return org


def starting_minutes(org: Organization) -> int:
    return rules.PLAN_MINUTES[PlanTier(org.plan)]
