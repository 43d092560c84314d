"""Organizations: a user founds one and becomes its admin, on the FREE plan; platform admins
allocate training minutes."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from forecourt.db.models import MinuteQuota, Organization, User
from forecourt.domain import organizations as rules
from forecourt.domain.billing import check_quota_minutes
from forecourt.domain.errors import DomainError
from forecourt.domain.organizations import OrgRole, PlanTier
from forecourt.domain.text import clean_text
from forecourt.services import Work, audit


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


async def set_minute_quota(
    work: Work, organization_id: uuid.UUID, total_minutes: int, reason: str | None = None
) -> tuple[Organization, MinuteQuota]:
    """A platform admin allocates an organization's monthly training minutes (audited). The
    minutes already used this period stay; fewer than used leaves none remaining."""
    assert work.actor is not None
    total = check_quota_minutes(total_minutes)
    reason = clean_text(reason, "reason", max_length=500, multiline=True)
    org = await work.session.scalar(select(Organization).where(Organization.id == organization_id))
    if org is None:
        raise DomainError("NOT_FOUND", "No such organization", ("organizationId",))
    await work.session.execute(
        insert(MinuteQuota).values(id=uuid.uuid4(), organization_id=org.id, total_minutes=starting_minutes(org))
        .on_conflict_do_nothing(index_elements=["organization_id"])
    )
    quota = await work.session.scalar(
        select(MinuteQuota).where(MinuteQuota.organization_id == org.id).with_for_update()
    )
    assert quota is not None
    before = quota.total_minutes
    quota.total_minutes = total
    audit.record(work, "organization.set_minute_quota", target_type="organization", target_id=org.id,
                 old={"totalMinutes": before}, new={"totalMinutes": total}, reason=reason)
    await work.session.flush()
    return org, quota
