"""Wallet types: balances, the ledger, and the funding and adjustment payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import strawberry

from forecourt.domain.auctions import DEFAULT_DEPOSIT_PERCENT
from forecourt.domain.wallet import WalletView
from forecourt.schema.errors import UserError
from forecourt.schema.relay import Connection, Node, to_global_id
from forecourt.schema.scalars import Money


@strawberry.type(name="Transaction")
class TransactionType(Node):
    type: str
    amount: Money
    balance_after: Money | None
    status: str
    created_at: datetime
    description: str | None

    @classmethod
    def from_row(cls, r) -> TransactionType:
        return cls(id=to_global_id("Transaction", r.id), type=r.type, amount=r.amount,
                   balance_after=r.balance_after, status=r.status, created_at=r.created_at,
                   description=r.description)


@strawberry.type(name="Wallet")
class WalletType:
    owner_id: strawberry.Private[uuid.UUID]
    view: strawberry.Private[WalletView]

    @strawberry.field
    def balance(self) -> Money:
        return self.view.balance

    @strawberry.field(description="Deposits held on won auctions awaiting settlement.")
    def held(self) -> Money:
        return self.view.held

    @strawberry.field(description="balance - held")
    def available(self) -> Money:
        return self.view.available

    @strawberry.field(description="The largest further winning bid the 20% deposit rule allows.")
    def buying_power(self) -> Money:
        return self.view.buying_power(DEFAULT_DEPOSIT_PERCENT)

    @strawberry.field(description="What your current winning bids commit (proxy maxima included).")
    def committed(self) -> Money:
        return self.view.committed

    @strawberry.field(description="The ledger, newest first.")
    async def transactions(self, info: strawberry.Info, first: int | None = 20,
                           after: str | None = strawberry.UNSET) -> Connection[TransactionType]:
        from forecourt.resolvers.wallet import transactions

        return await transactions(info.context, self.owner_id, first, None if after is strawberry.UNSET else after)

    @classmethod
    def from_row(cls, r) -> WalletType:
        return cls(owner_id=r["user_id"], view=WalletView(
            balance=Decimal(r["balance"]), held=Decimal(r["held"]), committed=Decimal(r["committed"])))


async def load_wallet(ctx, user_id: uuid.UUID) -> WalletType:
    return WalletType.from_row(await ctx.loaders.wallet_by_user.load(user_id))


@strawberry.input
class AdjustWalletInput:
    user_id: strawberry.ID
    amount: Money = strawberry.field(description="Positive credits, negative debits.")
    reason: str


@strawberry.type
class WalletPayload:
    wallet: WalletType | None = None
    user_errors: list[UserError]


@strawberry.input
class FundWalletInput:
    amount: Money


@strawberry.type
class FundWalletPayload:
    client_secret: str | None = strawberry.field(default=None, description="For Stripe.js to confirm the payment.")
    payment_intent_id: str | None = None
    user_errors: list[UserError]
