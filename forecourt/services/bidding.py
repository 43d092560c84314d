"""Placing bids.

Bids on one auction are serialised by its row lock (seed 004). Within a process, bids waiting
for the same auction are applied together by one writer: one transaction locks the auction,
then the bidders' wallets in user-id order, and reads what the rules need (one round trip,
`bid_context()`); applies each bid in arrival order with the pure rules; and writes all accepted
bids, their events and the auction in one statement. With several server processes, their
writers take turns on the row lock. A busy auction costs four round trips per batch rather
than several per bid, and the rules never see a stale price or balance.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.db.queries import bidding as sql
from forecourt.domain import auctions as rules
from forecourt.domain.auctions import BidRequest, EventType, Funds
from forecourt.domain.errors import DomainError
from forecourt.domain.identity import KycStatus
from forecourt.services.auctions import event_rows, state_of
from forecourt.subscriptions.outbox import Outbox

log = logging.getLogger(__name__)

MAX_BATCH = 256
POOL_SIZE = 4  # writers of different auctions run side by side; one auction has one writer


@dataclass(frozen=True)
class Submission:
    request: BidRequest
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Placed:
    """An accepted bid (or the original one, for a retried idempotency key) and the auction
    right after it."""

    bid: dict[str, Any]
    auction: dict[str, Any]
    replayed: bool = False


Result = Placed | DomainError


async def apply(conn: asyncpg.Connection, auction_id: uuid.UUID, submissions: list[Submission],
                now: datetime, outbox: Outbox, *, protect_reserve: bool = False) -> list[Result]:
    """Apply bids in order inside the caller's transaction; one result per submission. With
    `protect_reserve`, the platform's reserve-protection bid is placed if one is due."""
    people = sorted({s.request.bidder_id for s in submissions if s.request.bidder_id is not None})
    keys = {(s.request.bidder_id, s.idempotency_key) for s in submissions if s.idempotency_key}
    found = await sql.context(conn, auction_id, people, sorted(keys))
    if found is None:
        return [DomainError("NOT_FOUND", "No such auction", ("auctionId",))] * len(submissions)
    auction, bidders = found["auction"], found["bidders"]
    earlier = {(b["bidder_id"], b["idempotency_key"]): b for b in found["earlier"]}
    state = state_of(auction)
    if protect_reserve:
        amount = rules.platform_bid(state, now)
        submissions = [Submission(BidRequest(None, amount))] if amount is not None else []
    first_sequence, position = auction["sequence"] + 1, auction["bid_count"]
    has_bid = {bidder_id for bidder_id, info in bidders.items() if info["has_bid"]}
    results: list[Result] = []
    new_bids: list[dict[str, Any]] = []
    events: list[tuple[EventType, dict | None, dict]] = []
    for submission in submissions:
        request = submission.request
        key = (request.bidder_id, submission.idempotency_key)
        if submission.idempotency_key and key in earlier:
            results.append(_replay(earlier[key], request, auction))
            continue
        info = bidders.get(request.bidder_id)
        funds = None if info is None else Funds(
            available=info["balance"] - info["held"], committed=info["committed"],
            kyc_approved=info["kyc_status"] == KycStatus.APPROVED, has_bid_here=request.bidder_id in has_bid)
        try:
            outcome = rules.place_bid(state, request, funds, now)
        except DomainError as err:
            results.append(err)
            continue
        state = outcome.state
        auction = {**auction, **_changed(state)}
        rows = []
        for bid in outcome.bids:
            position += 1
            own = not bid.is_proxy and bid.bidder_id == request.bidder_id
            rows.append({
                "id": uuid.uuid4(), "auction_id": auction_id, "position": position,
                "bidder_id": bid.bidder_id, "amount": bid.amount,
                "max_amount": request.max_amount if own else None,
                "is_proxy": bid.is_proxy, "is_platform_bid": bid.is_platform,
                "idempotency_key": submission.idempotency_key if own else None, "created_at": now,
            })
        new_bids += rows
        events += [(e.type, rows[e.bid_index] if e.bid_index is not None else None, auction)
                   for e in outcome.events]
        if request.bidder_id is not None:
            has_bid.add(request.bidder_id)
        results.append(Placed(rows[0], auction))
        if submission.idempotency_key:
            earlier[key] = rows[0]
    if new_bids:
        await sql.write(conn, auction, new_bids, event_rows(auction_id, first_sequence, events, now, outbox), now)
    return results


def _changed(state: rules.AuctionState) -> dict[str, Any]:
    return {
        "current_price": state.current_price, "leader_id": state.leader_id, "leader_max": state.leader_max,
        "bid_count": state.bid_count, "bidder_count": state.bidder_count,
        "platform_bids": state.platform_bids, "end_time": state.end_time, "sequence": state.sequence,
    }


def _replay(bid: dict[str, Any], request: BidRequest, auction: dict[str, Any]) -> Result:
    if bid["amount"] != request.amount or bid["max_amount"] != request.max_amount:
        return DomainError("IDEMPOTENCY_KEY_REUSED",
                           "This idempotency key was used for a different bid", ("idempotencyKey",))
    return Placed(bid, auction, replayed=True)


async def protection_candidates(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    rows = await session.execute(text(
        """
        SELECT id FROM auctions
        WHERE status = 'live' AND reserve_protection AND reserve_price IS NOT NULL
          AND end_time > :now AND end_time - :now < :window
          AND (current_price IS NULL OR current_price < reserve_price * :trigger)
        """), {"now": now, "window": rules.PROTECTION_WINDOW, "trigger": rules.PROTECTION_TRIGGER})
    return [r[0] for r in rows]


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The writer sets no session state (no SET, LISTEN or advisory locks), so a connection
    going back to its pool needs no reset query: one round trip fewer per batch."""


class BidWriter:
    """One per process. `place()` queues a bid for its auction's writer task and waits."""

    def __init__(self, database_url: str, publish: Callable[[Outbox], Any],
                 clock: Callable[[], datetime]) -> None:
        self._database_url = database_url
        self._publish = publish
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._pool_ready = asyncio.Lock()
        self._waiting: dict[uuid.UUID, list[tuple[Submission, asyncio.Future]]] = {}
        self._tasks: set[asyncio.Task] = set()

    async def place(self, auction_id: uuid.UUID, submission: Submission) -> Result:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(auction_id)
        if queue is None:
            queue = self._waiting[auction_id] = []
            task = asyncio.create_task(self._drain(auction_id, queue), name=f"bids:{auction_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((submission, future))
        return await future

    async def protect_reserve(self, auction_id: uuid.UUID) -> bool:
        """Place the platform's reserve-protection bid if one is due (decided under the lock,
        so two processes running the job bid once)."""
        results = await self._transaction(lambda conn, now, outbox: apply(
            conn, auction_id, [], now, outbox, protect_reserve=True))
        return any(isinstance(r, Placed) for r in results)

    async def _drain(self, auction_id: uuid.UUID, queue: list) -> None:
        try:
            while queue:
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                await self._write(auction_id, batch)
        finally:
            del self._waiting[auction_id]
            for _, future in queue:  # only if cancelled mid-way (shutdown)
                if not future.done():
                    future.cancel()

    async def _write(self, auction_id: uuid.UUID, batch: list[tuple[Submission, asyncio.Future]]) -> None:
        # Bids that arrived while the previous batch held the lock are concurrent: applying them
        # lowest first (arrival order among equal amounts) accepts every one that outbids the last.
        batch.sort(key=lambda item: item[0].request.amount)
        submissions = [s for s, _ in batch]
        try:
            results = await self._transaction(lambda conn, now, outbox: apply(
                conn, auction_id, submissions, now, outbox))
        except Exception as err:
            log.exception("bid batch on auction %s failed", auction_id)
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _transaction(self, work: Callable[[asyncpg.Connection, datetime, Outbox], Any]) -> list[Result]:
        outbox = Outbox()
        pool = await self._connected()
        async with pool.acquire() as conn, conn.transaction():
            results = await work(conn, self._clock(), outbox)
        await self._publish(outbox)
        return results

    async def _connected(self) -> asyncpg.Pool:
        async with self._pool_ready:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._database_url, min_size=1, max_size=POOL_SIZE, reset=_keep_session)
            return self._pool

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
