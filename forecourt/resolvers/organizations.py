"""Organization resolvers."""

from __future__ import annotations

from forecourt.loaders.organizations import OrganizationRow
from forecourt.resolvers.base import run_mutation
from forecourt.schema.context import Context
from forecourt.schema.organizations import (
    CreateOrganizationInput,
    OrganizationPayload,
    OrganizationType,
)
from forecourt.services import organizations as service


async def create_organization(
    ctx: Context, data: CreateOrganizationInput
) -> OrganizationPayload:
    async def op(work):
        org = await service.create_organization(work, name=data.name)
        quota = service.starting_minutes(org)
        return {"organization": OrganizationType.from_row(OrganizationRow(org, quota))}

    return await run_mutation(ctx, OrganizationPayload, op)
