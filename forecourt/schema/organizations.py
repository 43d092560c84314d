"""Organization types."""

from __future__ import annotations

import uuid

import strawberry

from forecourt.domain.organizations import PlanTier
from forecourt.loaders.organizations import OrganizationRow
from forecourt.schema.errors import UserError
from forecourt.schema.relay import Node, node_resolver, to_global_id

PlanTierEnum = strawberry.enum(PlanTier, name="PlanTier")


@strawberry.type(name="Organization")
class OrganizationType(Node):
    organization_id: strawberry.Private[uuid.UUID]
    name: str
    plan: PlanTierEnum
    minutes_remaining: int

    @classmethod
    def from_row(cls, row: OrganizationRow) -> OrganizationType:
        org = row.organization
        return cls(
            id=to_global_id("Organization", org.id),
            organization_id=org.id,
            name=org.name,
            plan=PlanTier(org.plan),
            minutes_remaining=row.minutes_remaining,
        )


def can_see_organization(ctx, organization_id: uuid.UUID) -> bool:
    principal = ctx.principal
    return principal is not None and (
        principal.is_admin or principal.organization_id == organization_id
    )


async def load_organization(ctx, organization_id: uuid.UUID | None) -> OrganizationType | None:
    if organization_id is None or not can_see_organization(ctx, organization_id):
        return None
    row = await ctx.loaders.organization_by_id.load(organization_id)
    return OrganizationType.from_row(row) if row else None


@node_resolver("Organization")
async def organization_node(ctx, raw_id: uuid.UUID) -> OrganizationType | None:
    return await load_organization(ctx, raw_id)


@strawberry.input
class CreateOrganizationInput:
    name: str


@strawberry.type
class OrganizationPayload:
    organization: OrganizationType | None = None
    user_errors: list[UserError]
