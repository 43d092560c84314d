"""Background jobs: run in every server process, safe to overlap (row locks, SKIP LOCKED)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from forecourt.schema.context import AppState
from forecourt.services import Work
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


@contextlib.asynccontextmanager
async def running(state: AppState):
    tasks = []
    interval = state.settings.revalue_interval_seconds
    if interval > 0:
        tasks.append(
            asyncio.create_task(
                _every(interval, lambda: revalue_inventory(state), "revalue"), name="revalue"
            )
        )
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
