"""Wallet resolvers: the ledger page, admin adjustments, and funding through Stripe."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from forecourt.db.models import LedgerEntry
from forecourt.db.pagination import count, keyset_page, page_size
from forecourt.integrations.openai import not_configured
from forecourt.resolvers.base import run_mutation
from forecourt.schema import wallet as t
from forecourt.schema.context import Context
from forecourt.schema.relay import Connection, connection, from_global_id
from forecourt.services import wallet as service


async def transactions(ctx: Context, owner_id: uuid.UUID, first: int | None,
                       after: str | None) -> Connection[t.TransactionType]:
    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    stmt = select(LedgerEntry).where(LedgerEntry.user_id == owner_id)
    page = await keyset_page(ctx.reader, stmt, [LedgerEntry.created_at, LedgerEntry.id], first=size, after=after)
    return connection(page, t.TransactionType.from_row, lambda: count(ctx.reader, stmt))


async def adjust_wallet(ctx: Context, input: t.AdjustWalletInput) -> t.WalletPayload:
    async def operation(work):
        _, user_id = from_global_id(input.user_id, "User", ("userId",))
        after = await service.adjust(work, user_id, input.amount, input.reason)
        return {"wallet": t.WalletType(owner_id=user_id, view=after)}

    return await run_mutation(ctx, t.WalletPayload, operation)


async def fund_wallet(ctx: Context, input: t.FundWalletInput) -> t.FundWalletPayload:
    async def operation(work):
        if ctx.state.payments is None:
            raise not_configured("Stripe")
        intent = await service.fund(work, input.amount, ctx.state.payments)
        return {"client_secret": intent.client_secret, "payment_intent_id": intent.id}

    return await run_mutation(ctx, t.FundWalletPayload, operation)
