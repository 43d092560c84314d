"""Organization resolvers: founding one, its plan (Stripe Billing) and its training minutes."""

from __future__ import annotations

from forecourt.domain.organizations import PlanTier
from forecourt.loaders.organizations import OrganizationRow
from forecourt.resolvers.base import optional, run_mutation
from forecourt.schema.context import Context
from forecourt.schema.organizations import (
    CreateOrganizationInput,
    OpenBillingPortalInput,
    OpenBillingPortalPayload,
    OrganizationPayload,
    OrganizationType,
    SetMinuteQuotaInput,
    StartPlanCheckoutInput,
    StartPlanCheckoutPayload,
)
from forecourt.schema.relay import from_global_id
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
