"""Organization resolvers: founding one, its plan (Stripe Billing) and its training minutes."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from forecourt.db.models import MinuteQuota, Organization, OrganizationInvitation, User
from forecourt.db.pagination import count, keyset_page, page_size
from forecourt.domain.organizations import OrgRole, PlanTier
from forecourt.loaders.organizations import OrganizationRow
from forecourt.resolvers.base import optional, run_mutation
from forecourt.schema.context import Context
from forecourt.schema.organizations import (
    AcceptOrganizationInvitationInput,
    CreateOrganizationInput,
    InviteToOrganizationInput,
    InviteToOrganizationPayload,
    LeaveOrganizationPayload,
    OpenBillingPortalInput,
    OpenBillingPortalPayload,
    OrganizationInvitationInput,
    OrganizationInvitationPayload,
    OrganizationInvitationType,
    OrganizationPayload,
    OrganizationType,
    RemoveOrganizationMemberInput,
    SetMinuteQuotaInput,
    StartPlanCheckoutInput,
    StartPlanCheckoutPayload,
)
from forecourt.schema.relay import connection, from_global_id
from forecourt.services import billing
from forecourt.services import organizations as service


async def create_organization(
    ctx: Context, data: CreateOrganizationInput
) -> OrganizationPayload:
    async def op(work):
        org = await service.create_organization(work, name=data.name)
        quota = service.starting_minutes(org)
        return {"organization": OrganizationType.from_row(OrganizationRow(org, quota))}

    return await run_mutation(ctx, OrganizationPayload, op)


def _organization_id(raw):
    return from_global_id(raw, "Organization", ("organizationId",))[1] if optional(raw) else None


async def start_plan_checkout(ctx: Context, data: StartPlanCheckoutInput) -> StartPlanCheckoutPayload:
    async def op(work):
        url = await billing.start_checkout(
            work, stripe=ctx.state.payments, settings=ctx.settings, plan=PlanTier(data.plan),
            success_url=data.success_url, cancel_url=data.cancel_url,
            organization_id=_organization_id(data.organization_id),
        )
        return {"url": url}

    return await run_mutation(ctx, StartPlanCheckoutPayload, op)


async def open_billing_portal(ctx: Context, data: OpenBillingPortalInput) -> OpenBillingPortalPayload:
    async def op(work):
        url = await billing.open_portal(
            work, stripe=ctx.state.payments, settings=ctx.settings, return_url=data.return_url,
            organization_id=_organization_id(data.organization_id),
        )
        return {"url": url}

    return await run_mutation(ctx, OpenBillingPortalPayload, op)


async def set_minute_quota(ctx: Context, data: SetMinuteQuotaInput) -> OrganizationPayload:
    async def op(work):
        _, org_id = from_global_id(data.organization_id, "Organization", ("organizationId",))
        org, quota = await service.set_minute_quota(work, org_id, data.total_minutes, optional(data.reason))
        remaining = max(0, quota.total_minutes - quota.used_minutes)
        return {"organization": OrganizationType.from_row(OrganizationRow(org, remaining))}

    return await run_mutation(ctx, OrganizationPayload, op)


# ---------------------------------------------------------------- membership


async def members(ctx: Context, organization_id: uuid.UUID, first: int | None, after: str | None):
    from forecourt.schema.identity import UserType

    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    stmt = select(User).where(User.organization_id == organization_id)
    page = await keyset_page(ctx.reader, stmt, [User.created_at, User.id], first=size, after=after,
                             descending=False)
    return connection(page, UserType.from_model, lambda: count(ctx.reader, stmt))


async def organization_invitations(ctx: Context) -> list[OrganizationInvitationType]:
    """Open invitations addressed to the caller's email."""
    principal = ctx.principal
    assert principal is not None
    rows = (await ctx.reader.execute(
        select(OrganizationInvitation, Organization.name)
        .join(Organization, Organization.id == OrganizationInvitation.organization_id)
        .join(User, func.lower(User.email) == OrganizationInvitation.email)
        .where(User.id == principal.user_id, OrganizationInvitation.status == "pending",
               OrganizationInvitation.expires_at > ctx.now())
        .order_by(OrganizationInvitation.created_at)
    )).all()
    return [OrganizationInvitationType.from_model(invitation, name) for invitation, name in rows]


async def invite_to_organization(ctx: Context, data: InviteToOrganizationInput) -> InviteToOrganizationPayload:
    async def op(work):
        invitation, secret = await service.invite_member(work, data.email, OrgRole(data.role.value))
        org = await work.session.get(Organization, invitation.organization_id)
        return {"invitation": OrganizationInvitationType.from_model(invitation, org.name), "token": secret}

    return await run_mutation(ctx, InviteToOrganizationPayload, op)


def _invitation_id(raw: str) -> uuid.UUID:
    return from_global_id(raw, "OrganizationInvitation", ("invitationId",))[1]


async def accept_organization_invitation(
    ctx: Context, data: AcceptOrganizationInvitationInput
) -> OrganizationPayload:
    async def op(work):
        org = await service.accept_invitation(work, _invitation_id(data.invitation_id), data.token)
        return {"organization": OrganizationType.from_row(OrganizationRow(org, await _minutes_left(work, org.id)))}

    return await run_mutation(ctx, OrganizationPayload, op)


async def decline_organization_invitation(
    ctx: Context, data: OrganizationInvitationInput
) -> OrganizationInvitationPayload:
    async def op(work):
        invitation = await service.decline_invitation(work, _invitation_id(data.invitation_id))
        org = await work.session.get(Organization, invitation.organization_id)
        return {"invitation": OrganizationInvitationType.from_model(invitation, org.name)}

    return await run_mutation(ctx, OrganizationInvitationPayload, op)


async def remove_organization_member(ctx: Context, data: RemoveOrganizationMemberInput) -> OrganizationPayload:
    async def op(work):
        _, user_id = from_global_id(data.user_id, "User", ("userId",))
        org = await service.remove_member(work, user_id)
        return {"organization": OrganizationType.from_row(OrganizationRow(org, await _minutes_left(work, org.id)))}

    return await run_mutation(ctx, OrganizationPayload, op)


async def leave_organization(ctx: Context) -> LeaveOrganizationPayload:
    async def op(work):
        await service.leave_organization(work)
        return {}

    return await run_mutation(ctx, LeaveOrganizationPayload, op, input_path=())


async def _minutes_left(work, organization_id: uuid.UUID) -> int:
    quota = await work.session.scalar(select(MinuteQuota).where(MinuteQuota.organization_id == organization_id))
    return max(0, quota.total_minutes - quota.used_minutes) if quota else 0
