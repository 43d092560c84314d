"""Placing bids.

Bids on one auction are serialised by its row lock (seed 004). Within a process, bids waiting
for the same auction are applied together by one writer, in two round trips per batch: read
what the rules need (`bid_context()`: the auction, each bidder's KYC, balance, holds and
commitments, earlier idempotency keys) as one snapshot; apply each bid with the pure rules; then
`write_bids()` locks the auction and the bidders' wallets (in user-id order, as every writer
does), checks that none of what was read has changed, and writes all accepted bids, their
events and the auction in one statement. If something changed (another process's writer, a
withdrawal), nothing is written and the batch is applied again inside a transaction that takes
the locks before reading, so it cannot fail twice; and the writer locks first on that auction
for a second, as another process is likely bidding on it too. The rules never act on a price
or balance that is not current when the bids are written.

The writer also remembers each auction as it left it (the row it wrote and its version, and
what it read of the bidders), and applies the auction's next bids to that without reading:
one round trip. The write's checks are the same, so a memory that has gone out of date writes
nothing, and returns what it found instead, to which the batch is applied again (still two
round trips when another process wrote last). A bid the memory would refuse is judged again
on a fresh read, never refused on memory alone (the bidder may have committed less elsewhere
since).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection
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
CONTENTION_SECONDS = 1.0  # after a write found its read changed, how long to lock first
MAX_CONTENDED = 1024
MAX_KNOWN = 1024  # auctions whose last write a writer remembers
MAX_KNOWN_BIDDERS = 32  # per auction
# A memory unused this long is read afresh: it is likely out of date, and a row version (a
# 32-bit transaction id) must not come round again, nor a restored database be mistaken for it.
KNOWN_SECONDS = 30.0
LOCKED_ATTEMPTS = 3


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


@dataclass(frozen=True)
class Applied:
    results: list[Result]
    # The auction, its version and its bidders after the batch, in bid_context()'s shape: what
    # the auction's next bids can be applied to (None for an auction that does not exist).
    # Its auction dict is also the results' and the events': never mutated, only replaced.
    context: dict[str, Any] | None


@dataclass(frozen=True)
class Stale:
    """Nothing was written: what the bids were applied to had changed (or, remembered, lacked
    a bidder or would have refused a bid)."""

    current: dict[str, Any] | None  # the auction as the write found it, if it read it


async def apply(conn: asyncpg.Connection, auction_id: uuid.UUID, submissions: list[Submission],
                now: datetime, outbox: Outbox, *, lock: bool, context: dict[str, Any] | None = None,
                remembered: bool = False, also_read: Collection[uuid.UUID] = (),
                protect_reserve: bool = False) -> Applied | Stale:
    """Apply bids in order; one result per submission. With `lock`, inside the caller's
    transaction, locking before reading; without, Stale if what was read changed before the
    write. Given a `context` (bid_context()'s shape), nothing is read; a `remembered` one (an
    earlier Applied.context) is also Stale if it lacks a bidder or any bid is refused.
    `also_read`: other bidders to read (not lock) for the context returned, oldest first. With
    `protect_reserve`, the platform's reserve-protection bid is placed if one is due."""
    people = sorted({s.request.bidder_id for s in submissions if s.request.bidder_id is not None})
    if context is None:
        keys = {(s.request.bidder_id, s.idempotency_key) for s in submissions if s.idempotency_key}
        context = await sql.context(conn, auction_id, sorted({*people, *also_read}), sorted(keys), lock=lock)
        if context is None:
            missing = DomainError("NOT_FOUND", "No such auction", ("auctionId",))
            return Applied([missing] * len(submissions), None)
    elif not context["bidders"].keys() >= set(people):
        return Stale(None)
    auction, bidders = context["auction"], context["bidders"]
    earlier = {(b["bidder_id"], b["idempotency_key"]): b for b in context["earlier"]}
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
            if remembered:
                return Stale(None)
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
    version = context["version"]
    batch = [b for b in people if b in bidders]
    in_batch = set(batch)
    # oldest first: as `also_read` lists them (a read returns them in no particular order)
    rank = {b: n for n, b in enumerate(also_read)}
    others = sorted((b for b in bidders if b not in in_batch), key=lambda b: rank.get(b, -1))
    if new_bids:
        rows = event_rows(auction_id, first_sequence, events, now, outbox)
        version, current = await sql.write(conn, context, [bidders[b] for b in batch],
                                           others[-MAX_KNOWN_BIDDERS:], auction, new_bids, rows, now)
        if version is None:
            return Stale(current)
    # a writer keeps the auction's most recent bidders: this batch's last
    kept = (others + batch)[-MAX_KNOWN_BIDDERS:]
    after = {"auction": auction, "version": version, "earlier": [],
             "bidders": {b: {**bidders[b], "has_bid": b in has_bid} for b in kept}}
    return Applied(results, after)


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
    """One per process. `place()` writes a bid at once when its auction has none in flight,
    else queues it for the auction's writer task and waits."""

    def __init__(self, database_url: str, publish: Callable[[Outbox], Any],
                 clock: Callable[[], datetime]) -> None:
        self._database_url = database_url
        self._publish = publish
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._pool_ready = asyncio.Lock()
        self._waiting: dict[uuid.UUID, list[tuple[Submission, asyncio.Future]]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._contended: dict[uuid.UUID, float] = {}  # auction -> lock first until (monotonic)
        # auction -> (until when to use it, Applied.context of its last write)
        self._known: dict[uuid.UUID, tuple[float, dict[str, Any]]] = {}

    async def place(self, auction_id: uuid.UUID, submission: Submission) -> Result:
        queue = self._waiting.get(auction_id)
        if queue is not None:  # a batch is being written: join the next one
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            queue.append((submission, future))
            return await future
        # Nothing in flight on this auction: write this bid from the caller's own task (no
        # hand-off to a writer task and back); bids arriving meanwhile queue for a writer task.
        queue = self._waiting[auction_id] = []
        try:
            return (await self._apply(auction_id, [submission]))[0]
        finally:
            if queue:
                task = asyncio.create_task(self._drain(auction_id, queue), name=f"bids:{auction_id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                del self._waiting[auction_id]

    async def protect_reserve(self, auction_id: uuid.UUID) -> bool:
        """Place the platform's reserve-protection bid if one is due (written only if the
        auction is still as it was when that was decided, so two processes running the job bid
        once)."""
        results = await self._apply(auction_id, [], protect_reserve=True)
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
            results = await self._apply(auction_id, submissions)
        except Exception as err:
            log.exception("bid batch on auction %s failed", auction_id)
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _apply(self, auction_id: uuid.UUID, submissions: list[Submission], *,
                     protect_reserve: bool = False) -> list[Result]:
        pool = await self._connected()
        async with pool.acquire() as conn:
            outcome: Applied | Stale | None = None
            if self._contended.get(auction_id, 0.0) < time.monotonic():
                remembered_until, memory = self._known.pop(auction_id, (0.0, None))
                if remembered_until < time.monotonic():
                    memory = None
                current = None
                if memory is not None and not protect_reserve:
                    outbox = Outbox()
                    outcome = await apply(conn, auction_id, submissions, self._clock(), outbox,
                                          lock=False, context=memory, remembered=True)
                    if isinstance(outcome, Stale):
                        current = outcome.current  # as the write found it: no need to read it
                if not isinstance(outcome, Applied):
                    # the bidders it knew are read again too: an auction's bidders take turns
                    also = list(memory["bidders"]) if memory is not None else ()
                    outbox = Outbox()
                    outcome = await apply(conn, auction_id, submissions, self._clock(), outbox, lock=False,
                                          context=current, also_read=also, protect_reserve=protect_reserve)
                    if isinstance(outcome, Stale):
                        self._remember_contention(auction_id)
                    else:
                        self._contended.pop(auction_id, None)
                if isinstance(outcome, Applied) and outcome.context is not None:
                    self._remember(auction_id, outcome.context)
            if not isinstance(outcome, Applied):
                async with conn.transaction():
                    current = None
                    for _ in range(LOCKED_ATTEMPTS):
                        outbox = Outbox()
                        outcome = await apply(conn, auction_id, submissions, self._clock(), outbox,
                                              lock=True, context=current, protect_reserve=protect_reserve)
                        if isinstance(outcome, Applied) or outcome.current is None:
                            break
                        # what its locks do not cover changed (a KYC decision, a new wallet):
                        # apply the bids to it as the write found it, still under the locks
                        current = outcome.current
                if not isinstance(outcome, Applied):
                    raise RuntimeError(f"bids on auction {auction_id} kept changing under their locks")
        await self._publish(outbox)
        return outcome.results

    def _remember(self, auction_id: uuid.UUID, context: dict[str, Any]) -> None:
        if len(self._known) >= MAX_KNOWN:
            del self._known[next(iter(self._known))]  # the auction written least recently
        self._known[auction_id] = (time.monotonic() + KNOWN_SECONDS, context)

    def _remember_contention(self, auction_id: uuid.UUID) -> None:
        """Lock first on this auction for a while: another process is writing to it too."""
        now = time.monotonic()
        if len(self._contended) >= MAX_CONTENDED:
            self._contended = {a: until for a, until in self._contended.items() if until > now}
        self._contended[auction_id] = now + CONTENTION_SECONDS

    async def _connected(self) -> asyncpg.Pool:
        async with self._pool_ready:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._database_url, min_size=1, max_size=POOL_SIZE, reset=_keep_session,
                    # The writer's few statements run thousands of times a second with the same
                    # shape: planning each (PostgreSQL's default, as their parameters vary) cost
                    # more than running it.
                    server_settings={"plan_cache_mode": "force_generic_plan"})
            return self._pool

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
