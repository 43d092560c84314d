"""Background jobs: run in every server process, safe to overlap (row locks, SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from forecourt.integrations.openai import OpenAI
from forecourt.schema.context import AppState
from forecourt.services import Work
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


@contextlib.asynccontextmanager
async def running(state: AppState):
    settings = state.settings
    schedule = []
    if settings.revalue_interval_seconds > 0:
        schedule.append(
            ("revalue", settings.revalue_interval_seconds, lambda: revalue_inventory(state))
        )
    openai = OpenAI.maybe(settings)
    if openai is not None and settings.embed_interval_seconds > 0:
        schedule.append(
            ("embed", settings.embed_interval_seconds, lambda: embed_listings(state, openai))
        )
    tasks = [asyncio.create_task(_every(i, job, name), name=name) for name, i, job in schedule]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if openai is not None:
            await openai.close()
