"""The root types and the assembled schema."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection
from strawberry.permission import PermissionExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types.execution import ExecutionContext

from forecourt.auth.matrix import PERMISSIONS
from forecourt.auth.permissions import Allowed
from forecourt.config import Settings
from forecourt.domain.errors import DomainError
from forecourt.resolvers import (
    auctions,
    catalog,
    identity,
    organizations,
    training,
    valuation,
    wallet,
)
from forecourt.resolvers.base import optional
from forecourt.schema import auctions as at
from forecourt.schema import identity as t
from forecourt.schema import organizations as ot
from forecourt.schema import training as tt
from forecourt.schema import wallet as wt
from forecourt.schema.catalog import (
    CatalogEntryType,
    CreateVehicleInput,
    ImportVehiclesInput,
    ImportVehiclesPayload,
    VehicleConnection,
    VehicleFilter,
    VehicleOrder,
    VehiclePayload,
    VehicleType,
)
from forecourt.schema.errors import format_errors
from forecourt.schema.execution import Executor
from forecourt.schema.limits import Limits, RequestLimits
from forecourt.schema.organizations import CreateOrganizationInput, OrganizationPayload
from forecourt.schema.rate_limits import OperationRateLimits
from forecourt.schema.relay import NODE_RESOLVERS, Connection, Node, from_global_id
from forecourt.schema.scalars import SCALAR_MAP
from forecourt.schema.valuation import ValuationInput, ValuationType

guarded = functools.partial(strawberry.field, permission_classes=[Allowed])
guarded_mutation = functools.partial(strawberry.mutation, permission_classes=[Allowed])
guarded_subscription = functools.partial(strawberry.subscription, permission_classes=[Allowed])


@strawberry.type
class Query:
    @guarded(description="Any object by its global ID, if you may see it.")
    async def node(self, info: strawberry.Info, id: strawberry.ID) -> Node | None:
        try:
            type_name, raw = from_global_id(id)
        except DomainError:
            return None  # a malformed ID names nothing
        resolver = NODE_RESOLVERS.get(type_name)
        return await resolver(info.context, raw) if resolver else None

    @guarded(description="The signed-in user; null for guests.")
    async def me(self, info: strawberry.Info) -> t.UserType | None:
        return await identity.me(info.context)

    @guarded(description="Browse and search the inventory; archived vehicles only on request.")
    async def vehicles(
        self,
        info: strawberry.Info,
        filter: VehicleFilter | None = strawberry.UNSET,
        search: str | None = strawberry.UNSET,
        order_by: VehicleOrder | None = VehicleOrder.NEWEST,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> VehicleConnection:
        return await catalog.vehicles(
            info.context,
            optional(filter),
            optional(search),
            optional(order_by) or VehicleOrder.NEWEST,
            first,
            optional(after),
        )

    @guarded
    async def vehicle(self, info: strawberry.Info, id: strawberry.ID) -> VehicleType | None:
        return await catalog.vehicle(info.context, id)

    @guarded
    async def vehicle_by_vin(self, info: strawberry.Info, vin: str) -> VehicleType | None:
        return await catalog.vehicle_by_vin(info.context, vin)

    @guarded(description="Market value of any make, model and year; free for everyone.")
    async def valuation(self, info: strawberry.Info, input: ValuationInput) -> ValuationType:
        return await valuation.valuation(info.context, input)

    @guarded(description="Auctions, ending soonest first.")
    async def auctions(
        self,
        info: strawberry.Info,
        status: list[at.AuctionStatusEnum] | None = strawberry.UNSET,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> Connection[at.AuctionType]:
        return await auctions.auctions(info.context, optional(status), first, optional(after))

    @guarded
    async def auction(self, info: strawberry.Info, id: strawberry.ID) -> at.AuctionType | None:
        return await auctions.auction(info.context, id)

    @guarded(description="KYC and dealer applications, newest first (admins).")
    async def kyc_applications(
        self,
        info: strawberry.Info,
        status: t.KycStatusEnum | None = strawberry.UNSET,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> Connection[t.KycApplicationType]:
        return await identity.kyc_applications(
            info.context, optional(status), first, optional(after)
        )

    @guarded(description="Training scenarios: the platform presets and your organization's, by name.")
    async def scenarios(
        self, info: strawberry.Info, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> Connection[tt.ScenarioType]:
        return await training.scenarios(info.context, first, optional(after))

    @guarded(description="A training session: its trainee, and their organization's managers.")
    async def training_session(self, info: strawberry.Info, id: strawberry.ID) -> tt.TrainingSessionType | None:
        return await training.training_session(info.context, id)

    @guarded(description="Your sessions, newest first; managers see their organization's.")
    async def training_sessions(
        self,
        info: strawberry.Info,
        user_id: strawberry.ID | None = strawberry.UNSET,
        status: tt.TrainingStatusEnum | None = strawberry.UNSET,
        first: int | None = 20,
        after: str | None = strawberry.UNSET,
    ) -> Connection[tt.TrainingSessionType]:
        return await training.training_sessions(
            info.context, optional(user_id), optional(status), first, optional(after))

    @guarded(description="Scores, skills, badges and trend of a trainee (default: you).")
    async def training_progress(
        self, info: strawberry.Info, user_id: strawberry.ID | None = strawberry.UNSET
    ) -> tt.TrainingProgress:
        return await training.training_progress(info.context, optional(user_id))

    @guarded(description="Training-minute limits of your organization's members (its admins).")
    async def member_minute_limits(
        self, info: strawberry.Info, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> Connection[tt.MemberMinuteLimitType]:
        return await training.member_minute_limits(info.context, first, optional(after))

    @guarded(description="Open invitations to organizations addressed to your email.")
    async def organization_invitations(self, info: strawberry.Info) -> list[ot.OrganizationInvitationType]:
        return await organizations.organization_invitations(info.context)

    @guarded(description="Your organization's top trainees by average score.")
    async def leaderboard(
        self, info: strawberry.Info, limit: int | None = 10,
        organization_id: strawberry.ID | None = strawberry.UNSET,
    ) -> list[tt.LeaderboardEntry]:
        return await training.leaderboard(info.context, limit, optional(organization_id))


@strawberry.type
class Mutation:
    @guarded_mutation
    async def register(self, info: strawberry.Info, input: t.RegisterInput) -> t.AuthPayload:
        return await identity.register(info.context, input)

    @guarded_mutation
    async def login(self, info: strawberry.Info, input: t.LoginInput) -> t.AuthPayload:
        return await identity.login(info.context, input)

    @guarded_mutation(description="Rotate a refresh token; a reused one revokes its family.")
    async def refresh_token(self, info: strawberry.Info, token: str) -> t.AuthPayload:
        return await identity.refresh_token(info.context, token)

    @guarded_mutation(
        description="Change your password (the current one required). Ends every other session and "
        "revokes your API tokens; returns a fresh session."
    )
    async def change_password(
        self, info: strawberry.Info, input: t.ChangePasswordInput
    ) -> t.ChangePasswordPayload:
        return await identity.change_password(info.context, input)

    @guarded_mutation(description="End this session: its refresh token stops working.")
    async def logout(self, info: strawberry.Info, input: t.LogoutInput) -> t.LogoutPayload:
        return await identity.logout(info.context, input)

    @guarded_mutation(description="End all your sessions: every refresh and access token (API tokens stay).")
    async def logout_everywhere(self, info: strawberry.Info) -> t.LogoutEverywherePayload:
        return await identity.logout_everywhere(info.context)

    @guarded_mutation(description="A personal access token for scripts; shown once.")
    async def create_api_token(
        self, info: strawberry.Info, input: t.CreateApiTokenInput
    ) -> t.ApiTokenPayload:
        return await identity.create_api_token(info.context, input)

    @guarded_mutation
    async def revoke_api_token(
        self, info: strawberry.Info, id: strawberry.ID
    ) -> t.RevokeApiTokenPayload:
        return await identity.revoke_api_token(info.context, id)

    @guarded_mutation(description="Found an organization; you become its admin, on FREE.")
    async def create_organization(
        self, info: strawberry.Info, input: CreateOrganizationInput
    ) -> OrganizationPayload:
        return await organizations.create_organization(info.context, input)

    @guarded_mutation(
        description="Subscribe your organization to BASIC or PRO: a Stripe Checkout page for its admins "
        "(platform admins: any organization). The plan changes when Stripe confirms."
    )
    async def start_plan_checkout(
        self, info: strawberry.Info, input: ot.StartPlanCheckoutInput
    ) -> ot.StartPlanCheckoutPayload:
        return await organizations.start_plan_checkout(info.context, input)

    @guarded_mutation(
        description="Invite someone by email to your organization (its admins); renews a pending invitation "
        "with a new token. The token is shown once: the invitee needs it to accept."
    )
    async def invite_to_organization(
        self, info: strawberry.Info, input: ot.InviteToOrganizationInput
    ) -> ot.InviteToOrganizationPayload:
        return await organizations.invite_to_organization(info.context, input)

    @guarded_mutation(description="Join the organization that invited your email address, with the invitation's token.")
    async def accept_organization_invitation(
        self, info: strawberry.Info, input: ot.AcceptOrganizationInvitationInput
    ) -> OrganizationPayload:
        return await organizations.accept_organization_invitation(info.context, input)

    @guarded_mutation
    async def decline_organization_invitation(
        self, info: strawberry.Info, input: ot.OrganizationInvitationInput
    ) -> ot.OrganizationInvitationPayload:
        return await organizations.decline_organization_invitation(info.context, input)

    @guarded_mutation(description="Take a member out of your organization (its admins; audited).")
    async def remove_organization_member(
        self, info: strawberry.Info, input: ot.RemoveOrganizationMemberInput
    ) -> OrganizationPayload:
        return await organizations.remove_organization_member(info.context, input)

    @guarded_mutation(description="Leave your organization (its last admin cannot while others remain).")
    async def leave_organization(self, info: strawberry.Info) -> ot.LeaveOrganizationPayload:
        return await organizations.leave_organization(info.context)

    @guarded_mutation(description="Stripe's Billing Portal to change plan, card or cancel (organization admins).")
    async def open_billing_portal(
        self, info: strawberry.Info, input: ot.OpenBillingPortalInput
    ) -> ot.OpenBillingPortalPayload:
        return await organizations.open_billing_portal(info.context, input)

    @guarded_mutation(
        description="Allocate an organization's training minutes for this period (platform admins; audited)."
    )
    async def set_minute_quota(self, info: strawberry.Info, input: ot.SetMinuteQuotaInput) -> OrganizationPayload:
        return await organizations.set_minute_quota(info.context, input)

    @guarded_mutation(description="Identity verification, required to bid.")
    async def submit_kyc(self, info: strawberry.Info, input: t.SubmitKycInput) -> t.UserPayload:
        return await identity.submit_kyc(info.context, input)

    @guarded_mutation
    async def apply_for_dealer(
        self, info: strawberry.Info, input: t.ApplyForDealerInput
    ) -> t.UserPayload:
        return await identity.apply_for_dealer(info.context, input)

    @guarded_mutation(description="List a vehicle in the inventory (dealers, managers, admins).")
    async def create_vehicle(
        self, info: strawberry.Info, input: CreateVehicleInput
    ) -> VehiclePayload:
        return await catalog.create_vehicle(info.context, input)

    @guarded_mutation(
        description="Bulk insert or upsert by VIN for dealers' scripts: each row validated on "
        "its own, the accepted rows written in one transaction."
    )
    async def import_vehicles(
        self, info: strawberry.Info, input: ImportVehiclesInput
    ) -> ImportVehiclesPayload:
        return await catalog.import_vehicles(info.context, input)

    @guarded_mutation(description="Auction one of your vehicles (sellers for their own; staff for any).")
    async def create_auction(self, info: strawberry.Info, input: at.CreateAuctionInput) -> at.AuctionPayload:
        return await auctions.create_auction(info.context, input)

    @guarded_mutation(
        description="Bid at least `minimumNextBid`, optionally with a proxy maximum. Needs KYC and "
        "20% of all your winning bids available in your wallet."
    )
    async def place_bid(self, info: strawberry.Info, input: at.PlaceBidInput) -> at.PlaceBidPayload:
        return await auctions.place_bid(info.context, input)

    @guarded_mutation(description="The seller before the first bid; staff until it ends (audited).")
    async def cancel_auction(self, info: strawberry.Info, input: at.CancelAuctionInput) -> at.AuctionPayload:
        return await auctions.cancel_auction(info.context, input)

    @guarded_mutation(
        description="The winner pays the hammer price from their wallet; the held deposit counts towards it."
    )
    async def settle_auction(self, info: strawberry.Info, input: at.SettleAuctionInput) -> at.AuctionPayload:
        return await auctions.settle_auction(info.context, input)

    @guarded_mutation(
        description="A bidder offered the vehicle after the winner failed to pay turns it down: "
        "their deposit is released and the next-highest bidder is offered it."
    )
    async def decline_offer(self, info: strawberry.Info, input: at.DeclineOfferInput) -> at.AuctionPayload:
        return await auctions.decline_offer(info.context, input)

    @guarded_mutation(
        description="Top up your wallet: returns a Stripe PaymentIntent's client secret for Stripe.js; "
        "the wallet is credited when Stripe confirms the payment."
    )
    async def fund_wallet(self, info: strawberry.Info, input: wt.FundWalletInput) -> wt.FundWalletPayload:
        return await wallet.fund_wallet(info.context, input)

    @guarded_mutation(description="Credit or debit a wallet (admins; audited).")
    async def adjust_wallet(self, info: strawberry.Info, input: wt.AdjustWalletInput) -> wt.WalletPayload:
        return await wallet.adjust_wallet(info.context, input)

    @guarded_mutation(description="Start practising a scenario; needs training minutes left.")
    async def start_training_session(
        self, info: strawberry.Info, input: tt.StartTrainingInput
    ) -> tt.TrainingSessionPayload:
        return await training.start_training_session(info.context, input)

    @guarded_mutation(description="Add a turn to your running session; live scores follow.")
    async def append_transcript(
        self, info: strawberry.Info, input: tt.AppendTranscriptInput
    ) -> tt.TrainingSessionPayload:
        return await training.append_transcript(info.context, input)

    @guarded_mutation(description="Finish and score your session against the scenario's rubric.")
    async def complete_training_session(
        self, info: strawberry.Info, input: tt.CompleteTrainingInput
    ) -> tt.TrainingSessionPayload:
        return await training.complete_training_session(info.context, input)

    @guarded_mutation(description="Abandon a running session (the trainee or a manager); minutes used still count.")
    async def cancel_training_session(
        self, info: strawberry.Info, input: tt.CancelTrainingInput
    ) -> tt.TrainingSessionPayload:
        return await training.cancel_training_session(info.context, input)

    @guarded_mutation(description="A manager's review of a completed session's score (the original is kept; audited).")
    async def override_training_score(
        self, info: strawberry.Info, input: tt.OverrideTrainingScoreInput
    ) -> tt.TrainingSessionPayload:
        return await training.override_training_score(info.context, input)

    @guarded_mutation(
        description="Cap (or uncap, with null) a member's training minutes per period (organization admins; audited)."
    )
    async def set_member_minute_limit(
        self, info: strawberry.Info, input: tt.SetMemberMinuteLimitInput
    ) -> tt.MemberMinuteLimitPayload:
        return await training.set_member_minute_limit(info.context, input)

    @guarded_mutation(
        description="Talk to the scenario's buyer by voice: an ephemeral OpenAI Realtime key for your "
        "browser (PRO plan)."
    )
    async def create_voice_session(self, info: strawberry.Info, session_id: strawberry.ID) -> tt.VoiceSessionPayload:
        return await training.create_voice_session(info.context, session_id)

    @guarded_mutation(
        description="A scenario for your organization (its admins), or a shared preset (platform admins)."
    )
    async def create_scenario(self, info: strawberry.Info, input: tt.CreateScenarioInput) -> tt.ScenarioPayload:
        return await training.create_scenario(info.context, input)

    @guarded_mutation(description="A buyer persona for your organization's scenarios.")
    async def create_buyer_persona(
        self, info: strawberry.Info, input: tt.CreateBuyerPersonaInput
    ) -> tt.BuyerPersonaPayload:
        return await training.create_buyer_persona(info.context, input)

    @guarded_mutation(description="A product to practise selling: features, pricing tiers, objections.")
    async def create_training_product(
        self, info: strawberry.Info, input: tt.CreateTrainingProductInput
    ) -> tt.TrainingProductPayload:
        return await training.create_training_product(info.context, input)

    @guarded_mutation(description="Approve or reject a pending application (admins; audited).")
    async def review_kyc_application(
        self, info: strawberry.Info, input: t.ReviewKycInput
    ) -> t.UserPayload:
        return await identity.review_kyc_application(info.context, input)


@strawberry.type
class Subscription:
    @guarded_subscription(description="Changes to your account, e.g. a reviewed application.")
    async def account_events(self, info: strawberry.Info) -> AsyncGenerator[t.AccountEvent, None]:
        async for event in identity.account_events(info.context):
            yield event

    @guarded_subscription(
        description="An auction's events in sequence order; pass `afterSequence` to replay what you missed."
    )
    async def auction_events(
        self, info: strawberry.Info, auction_id: strawberry.ID, after_sequence: int | None = strawberry.UNSET
    ) -> AsyncGenerator[at.AuctionEventType, None]:
        async for event in auctions.auction_events(info.context, auction_id, optional(after_sequence)):
            yield event

    @guarded_subscription(
        description="A training session's transcript turns, live scores and completion, in sequence "
        "order; pass `afterSequence` to replay what you missed."
    )
    async def training_session_events(
        self, info: strawberry.Info, session_id: strawberry.ID, after_sequence: int | None = strawberry.UNSET
    ) -> AsyncGenerator[tt.TrainingSessionEvent, None]:
        async for event in training.training_session_events(info.context, session_id, optional(after_sequence)):
            yield event


class ForecourtSchema(strawberry.Schema):
    debug = False

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        format_errors(errors, execution_context, debug=self.debug)


def root_operations(schema: strawberry.Schema) -> dict[str, list]:
    """Every root field as "Type.field" -> its permission classes."""
    found = {}
    for root in (Query, Mutation, Subscription):
        definition = root.__strawberry_definition__
        for field in definition.fields:
            classes = [
                p.__class__
                for ext in field.extensions
                if isinstance(ext, PermissionExtension)
                for p in ext.permissions
            ]
            name = field.graphql_name or schema.config.name_converter.get_graphql_name(field)
            found[f"{definition.name}.{name}"] = classes
    return found


def build_schema(settings: Settings) -> strawberry.Schema:
    extensions: list = [
        functools.partial(RequestLimits, limits=Limits.from_settings(settings)),
        OperationRateLimits,
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    schema = ForecourtSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=Executor,
        types=[t.KycApplicationType, CatalogEntryType, tt.BuyerPersonaType, tt.TrainingProductType],
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            # Suggestions would reveal the schema that disabled introspection hides.
            disable_field_suggestions=not settings.introspection,
        ),
    )
    schema.debug = settings.debug
    for operation, classes in root_operations(schema).items():
        if operation not in PERMISSIONS or Allowed not in classes:
            raise RuntimeError(f"{operation} is not guarded by the permission matrix")
    return schema
