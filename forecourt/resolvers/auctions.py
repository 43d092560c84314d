"""Auction resolvers: thin adapters from GraphQL to the auction and bidding services."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime

from sqlalchemy import select

from forecourt.db.models import Auction, AuctionEvent
from forecourt.db.pagination import count, keyset_page, page_size
from forecourt.domain.auctions import AuctionStatus, AuctionTerms, BidRequest
from forecourt.domain.errors import DomainError
from forecourt.domain.text import clean_text
from forecourt.resolvers.base import optional, run_mutation
from forecourt.schema import auctions as t
from forecourt.schema.context import Context
from forecourt.schema.errors import user_errors
from forecourt.schema.relay import Connection, connection, from_global_id
from forecourt.services import auctions as service
from forecourt.services.bidding import Submission
from forecourt.subscriptions.channels import auction_channel
from forecourt.subscriptions.fanout import Published
from forecourt.subscriptions.live import follow
from forecourt.subscriptions.multiplex import SharedEvent

A = Auction.__table__
REPLAY_BATCH = 500


async def auctions(ctx: Context, statuses: list[AuctionStatus] | None, first: int | None,
                   after: str | None) -> Connection[t.AuctionType]:
    """Ending soonest first."""
    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    stmt = select(A)
    if statuses:
        stmt = stmt.where(A.c.status.in_([s.value for s in statuses]))
    page = await keyset_page(ctx.reader, stmt, [A.c.end_time, A.c.id], first=size, after=after,
                             descending=False)
    return connection(page, lambda r: t.AuctionType.from_row(r._mapping), lambda: count(ctx.reader, stmt))


async def auction(ctx: Context, id: str) -> t.AuctionType | None:
    try:
        _, raw = from_global_id(id, "Auction")
    except DomainError:
        return None
    return await t.load_auction(ctx, raw)


async def create_auction(ctx: Context, input: t.CreateAuctionInput) -> t.AuctionPayload:
    async def operation(work):
        _, vehicle_id = from_global_id(input.vehicle_id, "Vehicle", ("vehicleId",))
        terms = AuctionTerms(
            start_price=input.start_price, reserve_price=optional(input.reserve_price),
            bid_increment=optional(input.bid_increment), start_time=input.start_time,
            end_time=input.end_time,
        )
        row = await service.create(work, vehicle_id, terms, input.reserve_protection)
        return {"auction": t.AuctionType.from_row(row)}

    return await run_mutation(ctx, t.AuctionPayload, operation)


async def cancel_auction(ctx: Context, input: t.CancelAuctionInput) -> t.AuctionPayload:
    async def operation(work):
        _, auction_id = from_global_id(input.auction_id, "Auction", ("auctionId",))
        return {"auction": t.AuctionType.from_row(await service.cancel(work, auction_id, input.reason))}

    return await run_mutation(ctx, t.AuctionPayload, operation)


async def settle_auction(ctx: Context, input: t.SettleAuctionInput) -> t.AuctionPayload:
    async def operation(work):
        _, auction_id = from_global_id(input.auction_id, "Auction", ("auctionId",))
        return {"auction": t.AuctionType.from_row(await service.settle(work, auction_id))}

    return await run_mutation(ctx, t.AuctionPayload, operation)


async def decline_offer(ctx: Context, input: t.DeclineOfferInput) -> t.AuctionPayload:
    async def operation(work):
        _, auction_id = from_global_id(input.auction_id, "Auction", ("auctionId",))
        return {"auction": t.AuctionType.from_row(await service.decline_offer(work, auction_id))}

    return await run_mutation(ctx, t.AuctionPayload, operation)


async def place_bid(ctx: Context, input: t.PlaceBidInput) -> t.PlaceBidPayload:
    assert ctx.principal is not None
    try:
        _, auction_id = from_global_id(input.auction_id, "Auction", ("auctionId",))
        key = clean_text(optional(input.idempotency_key), "idempotencyKey", max_length=100)
    except DomainError as err:
        return t.PlaceBidPayload(user_errors=user_errors(err))
    await ctx.end_reads()
    result = await ctx.state.bid_writer.place(auction_id, Submission(
        BidRequest(ctx.principal.user_id, input.amount, optional(input.max_amount)), key))
    if isinstance(result, DomainError):
        return t.PlaceBidPayload(user_errors=user_errors(result))
    seller = result.auction["seller_id"]
    return t.PlaceBidPayload(bid=t.BidType.from_row(result.bid, seller),
                             auction=t.AuctionType.from_row(result.auction), user_errors=[])


def _event(payload: dict) -> t.AuctionEventType:
    auction = service.decode(payload["auction"])
    bid = payload["bid"]
    return t.AuctionEventType(
        type=t.EventType(payload["type"]), sequence=payload["sequence"],
        auction=t.AuctionType.from_row(auction),
        bid=t.BidType.from_row(service.decode_bid(bid), auction["seller_id"]) if bid else None,
        occurred_at=datetime.fromisoformat(payload["occurred_at"]),
    )


def _shared_event(message: Published) -> SharedEvent:
    return SharedEvent(_event(message.payload), t.AUCTION_EVENT_VISIBILITY)


async def _stored_events(ctx: Context, auction_id, after: int) -> list[dict]:
    rows = await ctx.reader.execute(
        select(AuctionEvent.payload).where(AuctionEvent.auction_id == auction_id, AuctionEvent.sequence > after)
        .order_by(AuctionEvent.sequence).limit(REPLAY_BATCH)
    )
    payloads = [r[0] for r in rows]
    await ctx.end_reads()
    return payloads


async def auction_events(ctx: Context, auction_id_text: str, after_sequence: int | None
                         ) -> AsyncGenerator[t.AuctionEventType | SharedEvent, None]:
    """Live events of one auction, in sequence order, each exactly once. Subscribes first, then
    replays what the client missed (`afterSequence`) from the event log, then follows live
    events; a gap (a lost message, a Redis outage) is filled from the log. Live events are
    shared with the process's other subscribers (executed once per selection and audience)
    and, once the subscriber is caught up, sent by the fast path
    (forecourt/subscriptions/live.py)."""
    _, auction_id = from_global_id(auction_id_text, "Auction", ("auctionId",))
    async with ctx.state.broadcast.subscribe(auction_channel(auction_id)) as mailbox:
        current = await ctx.reader.scalar(select(A.c.sequence).where(A.c.id == auction_id))
        await ctx.end_reads()
        if current is None:
            raise DomainError("NOT_FOUND", "No such auction", ("auctionId",))
        last = current if after_sequence is None else max(0, min(after_sequence, current))
        events = follow(mailbox, last=last, current=current,
                        stored=lambda after: _stored_events(ctx, auction_id, after),
                        render=_event, share=_shared_event)
        async with aclosing(events):
            async for event in events:
                yield event
