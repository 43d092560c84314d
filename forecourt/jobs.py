"""Background jobs: run in every server process, safe to overlap (row locks, SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from forecourt.domain.auctions import AuctionStatus
from forecourt.integrations.openai import OpenAI
from forecourt.schema.context import AppState
from forecourt.services import Work, auctions, bidding, billing, vector_index
from forecourt.services.embeddings import embed_pending
from forecourt.services.valuation import revalue_stale
from forecourt.subscriptions.outbox import Outbox

log = logging.getLogger(__name__)


async def revalue_inventory(state: AppState) -> int:
    """One batch of re-valuations, in its own transaction."""
    async with state.sessions() as session:
        work = Work(session, Outbox(), state.clock())
        count = await revalue_stale(work)
        await session.commit()
        await work.events.flush(state.broadcast)
        return count


async def _in_own_transaction(state: AppState, step: Callable[[Work], Awaitable[object]]) -> object:
    """Run one step in its own transaction; publish its events after commit."""
    async with state.sessions() as session:
        work = Work(session, Outbox(), state.clock())
        async with session.begin():
            result = await step(work)
        await work.events.flush(state.broadcast)
        return result


async def _each_due(state: AppState, status: AuctionStatus, column, handle) -> int:
    """Handle due auctions one transaction each. SKIP LOCKED lets several processes share the
    work; `handle` re-checks the state under the lock, so each auction is handled once."""
    handled = 0
    while True:
        async def step(work: Work) -> bool:
            ids = await auctions.due(work.session, status, column, work.now, limit=1)
            if ids:
                await handle(work, ids[0])
            return bool(ids)

        if not await _in_own_transaction(state, step):
            return handled
        handled += 1


async def run_auctions(state: AppState) -> dict[str, int]:
    """Start scheduled auctions, close ended ones, and pass expired settlements on."""
    started = await _in_own_transaction(state, auctions.start_due)
    closed = await _each_due(state, AuctionStatus.LIVE, auctions.A.c.end_time, auctions.close)
    expired = await _each_due(state, AuctionStatus.PENDING_SETTLEMENT, auctions.A.c.settlement_deadline,
                              auctions.expire_settlement)
    return {"started": started, "closed": closed, "expired": expired}


async def protect_reserves(state: AppState) -> int:
    """Reserve-protection bids due now (seed 004: checked every 30 s)."""
    ids = await _in_own_transaction(state, lambda work: bidding.protection_candidates(work.session, work.now))
    return sum([await state.bid_writer.protect_reserve(auction_id) for auction_id in ids])


async def _every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        try:
            await job()
        except Exception:
            log.exception("background job %s failed; retrying in %ss", name, seconds)
        await asyncio.sleep(seconds)


async def embed_listings(state: AppState, client: OpenAI) -> int:
    """Text-embed vehicles that have none yet, batch by batch until none are left."""
    total = 0
    while True:
        async with state.sessions() as session:
            count = await embed_pending(Work(session, Outbox(), state.clock()), client)
            await session.commit()
        total += count
        if count == 0:
            return total


async def index_vectors(state: AppState) -> int:
    """Copy queued feature vectors into the HNSW-indexed table, batch by batch (each one
    statement, atomic) until none are left. On the driver connection: the index's work is not
    the requests' (the engine's statement events do not see it)."""
    async with state.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        return await vector_index.index_all_queued(raw)


async def _every_or_when_kicked(seconds: float, job: Callable[[], Awaitable[object]], name: str,
                                wake: asyncio.Event) -> None:
    """Like _every, and also as soon as `wake` is set (a kick during a run runs it again)."""
    while True:
        wake.clear()
        try:
            await job()
        except Exception:
            log.exception("background job %s failed; retrying in %ss", name, seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


async def renew_minutes(state: AppState) -> int:
    """Unbilled organizations' training minutes come back every period."""
    return await _in_own_transaction(state, billing.renew_unbilled_periods)


@contextlib.asynccontextmanager
async def running(state: AppState):
    settings = state.settings
    schedule = []
    if settings.revalue_interval_seconds > 0:
        schedule.append(
            ("revalue", settings.revalue_interval_seconds, lambda: revalue_inventory(state))
        )
    if settings.auction_job_interval_seconds > 0:
        schedule.append(("auctions", settings.auction_job_interval_seconds, lambda: run_auctions(state)))
    if settings.reserve_protection_interval_seconds > 0:
        schedule.append(("reserve-protection", settings.reserve_protection_interval_seconds,
                         lambda: protect_reserves(state)))
    if settings.minute_renewal_interval_seconds > 0:
        schedule.append(("minute-renewal", settings.minute_renewal_interval_seconds, lambda: renew_minutes(state)))
    openai = OpenAI.maybe(settings)
    if openai is not None and settings.embed_interval_seconds > 0:
        schedule.append(
            ("embed", settings.embed_interval_seconds, lambda: embed_listings(state, openai))
        )
    tasks = [asyncio.create_task(_every(i, job, name), name=name) for name, i, job in schedule]
    wakeup = contextlib.ExitStack()
    if settings.vector_index_interval_seconds > 0:
        wake = wakeup.enter_context(vector_index.wakeup())
        tasks.append(asyncio.create_task(
            _every_or_when_kicked(settings.vector_index_interval_seconds, lambda: index_vectors(state),
                                  "vector-index", wake),
            name="vector-index",
        ))
    try:
        yield
    finally:
        wakeup.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if openai is not None:
            await openai.close()
