"""Organizations: a user founds one and becomes its admin, on the FREE plan; platform admins
allocate training minutes."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from forecourt.auth.tokens import INVITATION_TOKEN_PREFIX, digest, matches, new_secret
from forecourt.db.models import (
    MemberMinuteLimit,
    MinuteQuota,
    Organization,
    OrganizationInvitation,
    User,
)
from forecourt.domain import organizations as rules
from forecourt.domain.billing import check_quota_minutes
from forecourt.domain.errors import DomainError
from forecourt.domain.identity import normalize_email
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
    work.events.principal_changed(user.id)
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


# ---------------------------------------------------------------- membership


def _admin_of_own_organization(work: Work) -> uuid.UUID:
    actor = work.actor
    assert actor is not None
    if actor.organization_id is None:
        raise DomainError("NO_ORGANIZATION", "You do not belong to an organization")
    if actor.org_role != OrgRole.ADMIN.value:
        raise DomainError("NOT_ORGANIZATION_ADMIN", "Only your organization's admins manage its members")
    return actor.organization_id


async def invite_member(work: Work, email: str, role: OrgRole) -> tuple[OrganizationInvitation, str]:
    """An admin invites an email address; inviting it again while pending renews the invitation.

    Returns the invitation and its secret, shown to the admin once (only its hash is kept): the
    invitee needs it to accept, so that registering an address does not by itself let someone
    join an organization in its owner's place. Renewing issues a new secret; the old one stops
    working. (Until email delivery lands, the admin passes the secret on themself.)"""
    organization_id = _admin_of_own_organization(work)
    email = normalize_email(email).lower()
    member = await work.session.scalar(
        select(User.id).where(func.lower(User.email) == email, User.organization_id == organization_id))
    if member is not None:
        raise DomainError("ALREADY_MEMBER", "This person is already a member", ("email",))
    invitation = await work.session.scalar(
        select(OrganizationInvitation).where(
            OrganizationInvitation.organization_id == organization_id, OrganizationInvitation.email == email,
            OrganizationInvitation.status == rules.InvitationStatus.PENDING.value).with_for_update())
    secret = new_secret(INVITATION_TOKEN_PREFIX)
    if invitation is None:
        invitation = OrganizationInvitation(id=uuid.uuid4(), organization_id=organization_id, email=email,
                                            invited_by=work.actor.user_id, org_role=role.value)
        work.session.add(invitation)
    invitation.org_role, invitation.expires_at = role.value, work.now + rules.INVITATION_TTL
    invitation.token_hash = digest(secret)
    await work.session.flush()
    return invitation, secret


async def _my_invitation(work: Work, invitation_id: uuid.UUID) -> tuple[OrganizationInvitation, User]:
    """The invitation, if it is addressed to the caller (others cannot even tell it exists)."""
    actor = work.actor
    assert actor is not None
    user = await work.session.scalar(select(User).where(User.id == actor.user_id).with_for_update())
    invitation = await work.session.scalar(
        select(OrganizationInvitation).where(OrganizationInvitation.id == invitation_id).with_for_update())
    if invitation is None or user is None or invitation.email != user.email.lower():
        raise DomainError("NOT_FOUND", "No such invitation", ("invitationId",))
    return invitation, user


async def accept_invitation(work: Work, invitation_id: uuid.UUID, token: str | None) -> Organization:
    """Join with the invitation's secret. Always required, for already-registered invitees too:
    a matching email proves only that someone registered the address (we do not verify
    addresses yet), whereas the secret reached its owner through the admin. It works once."""
    invitation, user = await _my_invitation(work, invitation_id)
    rules.check_invitation_open(rules.InvitationStatus(invitation.status), invitation.expires_at, work.now)
    if not matches(token, invitation.token_hash):
        raise DomainError("INVALID_INVITATION_TOKEN", "This is not the invitation's token", ("token",))
    rules.check_can_join(user.organization_id)
    invitation.status, invitation.responded_at = rules.InvitationStatus.ACCEPTED.value, work.now
    invitation.token_hash = None
    user.organization_id, user.org_role = invitation.organization_id, invitation.org_role
    work.events.principal_changed(user.id)
    await work.session.flush()
    org = await work.session.get(Organization, invitation.organization_id)
    assert org is not None
    return org


async def decline_invitation(work: Work, invitation_id: uuid.UUID) -> OrganizationInvitation:
    invitation, _ = await _my_invitation(work, invitation_id)
    rules.check_invitation_open(rules.InvitationStatus(invitation.status), invitation.expires_at, work.now)
    invitation.status, invitation.responded_at = rules.InvitationStatus.DECLINED.value, work.now
    invitation.token_hash = None
    await work.session.flush()
    return invitation


async def _leave(work: Work, user: User) -> None:
    """Take a member out of their organization: its admins and members counted under the
    organization's row lock, so two admins cannot both leave it without one."""
    organization_id = user.organization_id
    await work.session.execute(select(Organization.id).where(Organization.id == organization_id).with_for_update())
    roles = list(await work.session.scalars(select(User.org_role).where(User.organization_id == organization_id)))
    rules.check_keeps_an_admin(user.org_role, roles.count(OrgRole.ADMIN.value), len(roles))
    user.organization_id, user.org_role = None, None
    work.events.principal_changed(user.id)
    await work.session.execute(delete(MemberMinuteLimit).where(MemberMinuteLimit.user_id == user.id))
    await work.session.flush()


async def remove_member(work: Work, user_id: uuid.UUID) -> Organization:
    """An admin removes a member (audited); their finished sessions stay with the organization."""
    organization_id = _admin_of_own_organization(work)
    user = await work.session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None or user.organization_id != organization_id:
        raise DomainError("NOT_FOUND", "No such member", ("userId",))
    await _leave(work, user)
    audit.record(work, "organization.remove_member", target_type="user", target_id=user_id,
                 old={"organizationId": str(organization_id)}, new=None)
    org = await work.session.get(Organization, organization_id)
    assert org is not None
    return org


async def leave_organization(work: Work) -> None:
    assert work.actor is not None
    user = await work.session.scalar(select(User).where(User.id == work.actor.user_id).with_for_update())
    if user is None or user.organization_id is None:
        raise DomainError("NO_ORGANIZATION", "You do not belong to an organization")
    await _leave(work, user)
