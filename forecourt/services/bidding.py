"""Placing bids.

Bids on one auction are serialised by its row lock (seed 004). Within a process, bids waiting
for the same auction are applied together by one writer: one transaction locks the auction,
then the bidders' wallets in user-id order, applies each bid in arrival order with the pure
rules, and writes all accepted bids, the auction and its events at once. With several server
processes, their writers take turns on the row lock. A busy auction therefore costs a handful
of statements per batch instead of per bid, and the rules never see a stale price.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from forecourt.db.models import Auction, AuctionEvent, Bid, Wallet
from forecourt.domain import auctions as rules
from forecourt.domain.auctions import BidRequest, EventType, Funds
from forecourt.domain.errors import DomainError
from forecourt.domain.identity import KycStatus
from forecourt.domain.money import ZERO
from forecourt.services import Work
from forecourt.services.auctions import event_rows, lock, state_of
from forecourt.subscriptions.outbox import Outbox

log = logging.getLogger(__name__)

MAX_BATCH = 256
B = Bid.__table__

# Per bidder, read after their wallet is locked: KYC, what they have committed on other live
# auctions they lead, and whether they have bid here before (for bidderCount).
BIDDERS_SQL = text(
    """
    SELECT u.id, u.kyc_status,
           (SELECT coalesce(sum(greatest(a.current_price, coalesce(a.leader_max, 0))), 0)
              FROM auctions a
             WHERE a.status = 'live' AND a.leader_id = u.id AND a.id <> :auction) AS committed,
           EXISTS (SELECT 1 FROM bids b WHERE b.bidder_id = u.id AND b.auction_id = :auction) AS has_bid
    FROM users u WHERE u.id = ANY(:ids)
    """
)


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


async def apply(work: Work, auction_id: uuid.UUID, submissions: list[Submission]) -> list[Placed | DomainError]:
    """Apply bids in order inside the caller's transaction; one result per submission."""
    session = work.session
    row = await lock(session, auction_id)
    if row is None:
        return [DomainError("NOT_FOUND", "No such auction", ("auctionId",))] * len(submissions)
    now = work.now
    auction = dict(row)
    state = state_of(auction)
    results: list[Placed | DomainError | None] = [None] * len(submissions)
    earlier = await _earlier_bids(session, auction_id, submissions)
    people = sorted({s.request.bidder_id for s in submissions if s.request.bidder_id is not None})
    wallets = await _lock_wallets(session, people)
    bidders = {r.id: r for r in await session.execute(BIDDERS_SQL, {"auction": auction_id, "ids": people})}

    has_bid = {r.id for r in bidders.values() if r.has_bid}
    position = row["bid_count"]
    new_bids: list[dict[str, Any]] = []
    events: list[tuple[EventType, dict | None, dict]] = []
    for i, submission in enumerate(submissions):
        request = submission.request
        key = (request.bidder_id, submission.idempotency_key)
        if submission.idempotency_key and key in earlier:
            results[i] = _replay(earlier[key], request, auction)
            continue
        info = bidders.get(request.bidder_id)
        funds = None
        if info is not None:
            balance, held = wallets.get(request.bidder_id, (ZERO, ZERO))
            funds = Funds(available=balance - held, committed=info.committed,
                          kyc_approved=info.kyc_status == KycStatus.APPROVED,
                          has_bid_here=request.bidder_id in has_bid)
        try:
            outcome = rules.place_bid(state, request, funds, now)
        except DomainError as err:
            results[i] = err
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
        results[i] = Placed(rows[0], auction)
        if submission.idempotency_key:
            earlier[key] = rows[0]
    if new_bids:
        await session.execute(B.insert(), new_bids)
        await session.execute(
            Auction.__table__.update().where(Auction.__table__.c.id == auction_id).values(**_changed(state))
        )
        await session.execute(AuctionEvent.__table__.insert(),
                              event_rows(auction_id, row["sequence"] + 1, events, now, work.events))
    return results  # type: ignore[return-value]


def _changed(state: rules.AuctionState) -> dict[str, Any]:
    return {
        "current_price": state.current_price, "leader_id": state.leader_id, "leader_max": state.leader_max,
        "bid_count": state.bid_count, "bidder_count": state.bidder_count,
        "platform_bids": state.platform_bids, "end_time": state.end_time, "sequence": state.sequence,
    }


async def _earlier_bids(session: AsyncSession, auction_id: uuid.UUID,
                        submissions: list[Submission]) -> dict[tuple, dict[str, Any]]:
    keys = {(s.request.bidder_id, s.idempotency_key) for s in submissions if s.idempotency_key}
    if not keys:
        return {}
    rows = await session.execute(
        select(B).where(B.c.auction_id == auction_id,
                        tuple_(B.c.bidder_id, B.c.idempotency_key).in_(list(keys)))
    )
    return {(r["bidder_id"], r["idempotency_key"]): dict(r) for r in rows.mappings()}


def _replay(bid: dict[str, Any], request: BidRequest, auction: dict[str, Any]) -> Placed | DomainError:
    if bid["amount"] != request.amount or bid["max_amount"] != request.max_amount:
        return DomainError("IDEMPOTENCY_KEY_REUSED",
                           "This idempotency key was used for a different bid", ("idempotencyKey",))
    return Placed(bid, auction, replayed=True)


async def _lock_wallets(session: AsyncSession, people: list[uuid.UUID]) -> dict[uuid.UUID, tuple]:
    if not people:
        return {}
    rows = await session.execute(
        select(Wallet.user_id, Wallet.balance, Wallet.held).where(Wallet.user_id.in_(people))
        .order_by(Wallet.user_id).with_for_update()
    )
    return {r.user_id: (r.balance, r.held) for r in rows}


async def protection_candidates(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    rows = await session.execute(text(
        """
        SELECT id FROM auctions
        WHERE status = 'live' AND reserve_protection AND reserve_price IS NOT NULL
          AND end_time > :now AND end_time - :now < :window
          AND (current_price IS NULL OR current_price < reserve_price * :trigger)
        """), {"now": now, "window": rules.PROTECTION_WINDOW, "trigger": rules.PROTECTION_TRIGGER})
    return [r[0] for r in rows]


async def protect_reserve(work: Work, auction_id: uuid.UUID) -> int:
    """Place the platform's reserve-protection bid on one auction if one is due (re-checked
    under the lock, so two processes running the job bid once)."""
    row = await lock(work.session, auction_id)
    amount = rules.platform_bid(state_of(row), work.now) if row else None
    if amount is None:
        return 0
    [result] = await apply(work, auction_id, [Submission(BidRequest(None, amount))])
    return 0 if isinstance(result, DomainError) else 1


class BidWriter:
    """One per process. `place()` queues a bid for its auction's writer task and waits."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], publish: Callable[[Outbox], Any],
                 clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._publish = publish
        self._clock = clock
        self._waiting: dict[uuid.UUID, list[tuple[Submission, asyncio.Future]]] = {}
        self._tasks: set[asyncio.Task] = set()

    async def place(self, auction_id: uuid.UUID, submission: Submission) -> Placed | DomainError:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(auction_id)
        if queue is None:
            queue = self._waiting[auction_id] = []
            task = asyncio.create_task(self._drain(auction_id, queue), name=f"bids:{auction_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((submission, future))
        return await future

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
        outbox = Outbox()
        try:
            async with self._sessions() as session:
                work = Work(session, outbox, self._clock())
                async with session.begin():
                    results = await apply(work, auction_id, [s for s, _ in batch])
        except Exception as err:
            log.exception("bid batch on auction %s failed", auction_id)
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        await self._publish(outbox)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

