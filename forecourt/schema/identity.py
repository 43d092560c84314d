"""Identity types: users, tokens, KYC applications, account events."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import strawberry
from sqlalchemy import select

from forecourt.auth.permissions import SelfOrAdmin, SelfOrStaff
from forecourt.db.models import ApiToken, KycApplication, User
from forecourt.domain.identity import KycKind, KycStatus, Role
from forecourt.schema.errors import UserError
from forecourt.schema.organizations import OrganizationType, load_organization
from forecourt.schema.relay import Node, node_resolver, to_global_id
from forecourt.schema.scalars import JSON
from forecourt.schema.wallet import WalletType, load_wallet

RoleEnum = strawberry.enum(Role, name="Role")
KycStatusEnum = strawberry.enum(KycStatus, name="KycStatus")
KycKindEnum = strawberry.enum(KycKind, name="KycApplicationKind")


@strawberry.type(
    name="User",
    description="The public profile is the id and display name; the rest is the user's own (and staff's).",
)
class UserType(Node):
    user_id: strawberry.Private[uuid.UUID]
    email_address: strawberry.Private[str]
    organization_id: strawberry.Private[uuid.UUID | None]
    # True on the user returned by register/login/refresh: the caller just proved who they are.
    is_own_account: strawberry.Private[bool]
    display_name: str | None
    role: RoleEnum = strawberry.field(
        permission_classes=[SelfOrStaff], description="The user themself and staff only.")
    kyc_status: KycStatusEnum = strawberry.field(
        permission_classes=[SelfOrStaff], description="The user themself and staff only.")
    created_at: datetime = strawberry.field(
        permission_classes=[SelfOrStaff], description="The user themself and staff only.")

    @strawberry.field(
        permission_classes=[SelfOrAdmin],
        description="Visible to the user themself and to admins only.",
    )
    def email(self) -> str:
        return self.email_address

    @strawberry.field(description="Visible to its members and admins.")
    async def organization(self, info: strawberry.Info) -> OrganizationType | None:
        return await load_organization(info.context, self.organization_id)

    @strawberry.field(
        permission_classes=[SelfOrAdmin],
        description="Personal API tokens, newest first (the user themself and admins only).",
    )
    async def api_tokens(self, info: strawberry.Info) -> list[ApiTokenType]:
        rows = await info.context.loaders.api_tokens_by_user.load(self.user_id)
        return [ApiTokenType.from_model(row) for row in rows]

    @strawberry.field(
        permission_classes=[SelfOrAdmin],
        description="Balance, holds, buying power and ledger (the user themself and admins only).",
    )
    async def wallet(self, info: strawberry.Info) -> WalletType | None:
        return await load_wallet(info.context, self.user_id)

    @classmethod
    def from_model(cls, user: User, *, is_own_account: bool = False) -> UserType:
        return cls(
            id=to_global_id("User", user.id),
            is_own_account=is_own_account,
            user_id=user.id,
            email_address=user.email,
            organization_id=user.organization_id,
            display_name=user.display_name,
            role=Role(user.role),
            kyc_status=KycStatus(user.kyc_status),
            created_at=user.created_at,
        )


async def load_user(ctx, user_id: uuid.UUID | None) -> UserType | None:
    if user_id is None:
        return None
    user = await ctx.loaders.user_by_id.load(user_id)
    return UserType.from_model(user) if user else None


@node_resolver("User")
async def user_node(ctx, raw_id: uuid.UUID) -> UserType | None:
    return await load_user(ctx, raw_id)


@strawberry.type(name="ApiToken", description="A personal API token; the secret is never shown again.")
class ApiTokenType(Node):
    name: str
    prefix: str = strawberry.field(description="The first characters, to recognise the token.")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_model(cls, row: ApiToken) -> ApiTokenType:
        return cls(
            id=to_global_id("ApiToken", row.id),
            name=row.name,
            prefix=row.prefix,
            scopes=list(row.scopes),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(name="KycApplication")
class KycApplicationType(Node):
    applicant_id: strawberry.Private[uuid.UUID]
    kind: KycKindEnum
    status: KycStatusEnum
    details: JSON = strawberry.field(description="What the applicant submitted.")
    reason: str | None
    created_at: datetime
    reviewed_at: datetime | None

    @strawberry.field
    async def applicant(self, info: strawberry.Info) -> UserType:
        user = await load_user(info.context, self.applicant_id)
        assert user is not None
        return user

    @classmethod
    def from_model(cls, app: KycApplication) -> KycApplicationType:
        return cls(
            id=to_global_id("KycApplication", app.id),
            applicant_id=app.user_id,
            kind=KycKind(app.kind),
            status=KycStatus(app.status),
            details=app.data,
            reason=app.reason,
            created_at=app.created_at,
            reviewed_at=app.reviewed_at,
        )


@node_resolver("KycApplication")
async def kyc_application_node(ctx, raw_id: uuid.UUID) -> KycApplicationType | None:
    app = await ctx.reader.scalar(select(KycApplication).where(KycApplication.id == raw_id))
    if app is None or ctx.principal is None or not ctx.principal.is_self_or_admin(app.user_id):
        return None
    return KycApplicationType.from_model(app)


# ---------------------------------------------------------------- inputs and payloads


@strawberry.input
class RegisterInput:
    email: str
    password: str
    display_name: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.type
class AuthPayload:
    access_token: str | None = None
    refresh_token: str | None = None
    user: UserType | None = None
    user_errors: list[UserError]


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.type(description="A fresh session: every other session and API token has ended.")
class ChangePasswordPayload(AuthPayload):
    pass


@strawberry.input
class LogoutInput:
    refresh_token: str = strawberry.field(description="The refresh token of the session to end.")


@strawberry.type
class LogoutPayload:
    user_errors: list[UserError]


@strawberry.type
class LogoutEverywherePayload:
    user_errors: list[UserError]


@strawberry.input
class CreateApiTokenInput:
    name: str
    scopes: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description='"read" and/or "write"; both when omitted.'
    )


@strawberry.type
class ApiTokenPayload:
    token: str | None = strawberry.field(default=None, description="Shown once; store it now.")
    api_token: ApiTokenType | None = None
    user_errors: list[UserError]


@strawberry.type
class RevokeApiTokenPayload:
    revoked: bool = False
    user_errors: list[UserError]


@strawberry.input
class SubmitKycInput:
    full_name: str
    id_number: str
    address: str
    documents: list[str]


@strawberry.input
class ApplyForDealerInput:
    business_name: str
    registration_number: str
    address: str
    phone: str
    documents: list[str]


@strawberry.input
class ReviewKycInput:
    user_id: strawberry.ID
    approve: bool
    reason: str | None = strawberry.UNSET


@strawberry.type
class UserPayload:
    user: UserType | None = None
    user_errors: list[UserError]


@strawberry.enum
class AccountEventType(enum.Enum):
    KYC_REVIEWED = "KYC_REVIEWED"


@strawberry.type
class AccountEvent:
    type: AccountEventType
    occurred_at: datetime
    approved: bool | None
    reason: str | None
    application: KycKindEnum | None
    user_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The account as it is now.")
    async def user(self, info: strawberry.Info) -> UserType:
        user = await load_user(info.context, self.user_id)
        assert user is not None
        return user

    @classmethod
    def from_message(cls, event: dict) -> AccountEvent:
        return cls(
            type=AccountEventType(event["type"]),
            occurred_at=datetime.fromisoformat(event["occurredAt"]),
            approved=event.get("approved"),
            reason=event.get("reason"),
            application=KycKind(event["application"]) if event.get("application") else None,
            user_id=uuid.UUID(event["userId"]),
        )
