"""Organization types."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from forecourt.domain.billing import SubscriptionStatus, current_subscription
from forecourt.domain.organizations import InvitationStatus, OrgRole, PlanTier
from forecourt.loaders.organizations import BillingRow, OrganizationRow
from forecourt.schema.errors import UserError
from forecourt.schema.relay import Connection, Node, node_resolver, to_global_id

if TYPE_CHECKING:
    from forecourt.schema.identity import UserType

PlanTierEnum = strawberry.enum(PlanTier, name="PlanTier")
OrgRoleEnum = strawberry.enum(OrgRole, name="OrganizationRole")
InvitationStatusEnum = strawberry.enum(InvitationStatus, name="InvitationStatus")
SubscriptionStatusEnum = strawberry.enum(
    SubscriptionStatus, name="SubscriptionStatus", description="Stripe's status of a plan subscription."
)


@strawberry.type(name="OrganizationBilling", description="The plan, its Stripe subscription and the minutes.")
class OrganizationBillingType:
    plan: PlanTierEnum
    subscription_status: SubscriptionStatusEnum | None = strawberry.field(
        description="Null on FREE without a subscription.")
    current_period_end: datetime | None = strawberry.field(description="When the paid period renews or ends.")
    cancel_at_period_end: bool
    trial_ends_at: datetime | None
    minutes_total: int = strawberry.field(description="Training minutes this period.")
    minutes_used: int
    minutes_remaining: int

    @classmethod
    def from_rows(cls, plan: PlanTier, trial_ends_at: datetime | None, row: BillingRow) -> OrganizationBillingType:
        subscription = current_subscription(row.subscriptions)
        return cls(
            plan=plan,
            subscription_status=SubscriptionStatus(subscription.status) if subscription else None,
            current_period_end=subscription.current_period_end if subscription else None,
            cancel_at_period_end=bool(subscription and subscription.cancel_at_period_end),
            trial_ends_at=trial_ends_at,
            minutes_total=row.total_minutes,
            minutes_used=row.used_minutes,
            minutes_remaining=max(0, row.total_minutes - row.used_minutes),
        )


@strawberry.type(name="Organization")
class OrganizationType(Node):
    organization_id: strawberry.Private[uuid.UUID]
    name: str
    plan: PlanTierEnum
    minutes_remaining: int
    trial_ends_at: strawberry.Private[datetime | None] = None

    @strawberry.field(description="Plan, subscription and minutes (the organization's members and platform admins).")
    async def billing(self, info: strawberry.Info) -> OrganizationBillingType:
        row = await info.context.loaders.billing_by_organization.load(self.organization_id)
        return OrganizationBillingType.from_rows(self.plan, self.trial_ends_at, row or BillingRow(0, 0, None, ()))

    @strawberry.field(description="The organization's people (its members and platform admins).")
    async def members(
        self, info: strawberry.Info, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> Connection[Annotated[UserType, strawberry.lazy("forecourt.schema.identity")]]:
        from forecourt.resolvers.organizations import members

        return await members(info.context, self.organization_id, first, None if after is strawberry.UNSET else after)

    @classmethod
    def from_row(cls, row: OrganizationRow) -> OrganizationType:
        org = row.organization
        return cls(
            id=to_global_id("Organization", org.id),
            organization_id=org.id,
            name=org.name,
            plan=PlanTier(org.plan),
            minutes_remaining=row.minutes_remaining,
            trial_ends_at=org.trial_ends_at,
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


@strawberry.input
class StartPlanCheckoutInput:
    plan: PlanTierEnum = strawberry.field(description="BASIC or PRO.")
    success_url: str = strawberry.field(
        description="Where Stripe sends the customer after paying: https (http://localhost in development); "
        "may contain {CHECKOUT_SESSION_ID}.")
    cancel_url: str = strawberry.field(description="Where Stripe sends the customer if they go back.")
    organization_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Platform admins only; default: your organization.")


@strawberry.type
class StartPlanCheckoutPayload:
    url: str | None = strawberry.field(default=None, description="The Stripe Checkout page to send the admin to.")
    user_errors: list[UserError]


@strawberry.input
class OpenBillingPortalInput:
    return_url: str
    organization_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class OpenBillingPortalPayload:
    url: str | None = strawberry.field(default=None, description="Stripe's Billing Portal for this organization.")
    user_errors: list[UserError]


@strawberry.input
class SetMinuteQuotaInput:
    organization_id: strawberry.ID
    total_minutes: int = strawberry.field(description="Training minutes for the current period, 0 or more.")
    reason: str | None = strawberry.UNSET


@strawberry.type(name="OrganizationInvitation")
class OrganizationInvitationType(Node):
    email: str
    role: OrgRoleEnum
    status: InvitationStatusEnum
    organization_name: str = strawberry.field(description="Who invites you (you see no more until you join).")
    expires_at: datetime

    @classmethod
    def from_model(cls, invitation, organization_name: str) -> OrganizationInvitationType:
        return cls(id=to_global_id("OrganizationInvitation", invitation.id), email=invitation.email,
                   role=OrgRole(invitation.org_role), status=InvitationStatus(invitation.status),
                   organization_name=organization_name, expires_at=invitation.expires_at)


@strawberry.input
class InviteToOrganizationInput:
    email: str
    role: OrgRoleEnum = OrgRole.MEMBER


@strawberry.input
class OrganizationInvitationInput:
    invitation_id: strawberry.ID


@strawberry.input
class AcceptOrganizationInvitationInput:
    invitation_id: strawberry.ID
    token: str = strawberry.field(description="The secret the inviting admin was given for you.")


@strawberry.input
class RemoveOrganizationMemberInput:
    user_id: strawberry.ID


@strawberry.type
class OrganizationInvitationPayload:
    invitation: OrganizationInvitationType | None = None
    user_errors: list[UserError]


@strawberry.type
class InviteToOrganizationPayload:
    invitation: OrganizationInvitationType | None = None
    token: str | None = strawberry.field(
        default=None, description="Shown once: give it to the invitee, who needs it to accept.")
    user_errors: list[UserError]


@strawberry.type
class LeaveOrganizationPayload:
    user_errors: list[UserError]
