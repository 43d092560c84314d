"""The feature-vector index, kept in step after commit.

`vehicles.feature_vector` is the truth and carries no index, so that writing vehicles (an
import's COPY of 10,000 rows) does not pay for HNSW inserts. `similar` searches an indexed copy
(`vehicle_vectors`). A vehicle whose vector is new or changed is queued
(`vehicle_vector_queue`) in the transaction that writes it; `index_queued` copies queued
vectors into `vehicle_vectors` and dequeues them. Until then `similar` compares queued vehicles
by an exact scan of their current vectors, so a vehicle is found the same before and after.

The job runs in every server process (jobs.py), every VECTOR_INDEX_INTERVAL_SECONDS and as soon
as an import that queued vectors commits in the process (`kick`); batches take queued rows with
`FOR UPDATE SKIP LOCKED`, so processes share the work and never copy a vehicle twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.db.queries import catalog as queries

BATCH = 1000


async def index_queued(raw: Any, limit: int = BATCH) -> int:
    """One batch, in one statement (atomic on its own, or part of the caller's transaction) on
    an asyncpg connection: the number of vehicles dequeued."""
    return len(await raw.fetch(queries.INDEX_QUEUED, limit))


async def index_all_queued(raw: Any, limit: int = BATCH) -> int:
    """Batches until the queue is empty (or what is left is held by other processes)."""
    total = 0
    while count := await index_queued(raw, limit):
        total += count
    return total


async def queue(raw: Any, vehicle_ids: list[uuid.UUID]) -> None:
    """Queue vehicles whose vectors this transaction changed (after changing them)."""
    if vehicle_ids:
        await raw.execute(queries.QUEUE_VECTORS, vehicle_ids)


async def index_now(raw: Any, vehicle_ids: list[uuid.UUID]) -> None:
    """Index vehicles whose vectors this transaction has just changed (so it holds their rows)
    in this transaction, instead of queueing them (`forecourt reindex`)."""
    if vehicle_ids:
        await raw.execute(queries.DEQUEUE, vehicle_ids)
        await raw.execute(queries.INDEX_NOW, vehicle_ids)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def queued_count(raw: Any) -> int:
    return await raw.fetchval(queries.QUEUED_COUNT)


# ---------------------------------------------------------------- waking the job up
# Each running job loop registers an event; `kick` sets them all (from any thread: a test runs
# the server's loop in a thread of its own).

_wakeups: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


@contextlib.contextmanager
def wakeup() -> Iterator[asyncio.Event]:
    """An event set whenever vectors were queued and committed in this process."""
    entry = (asyncio.get_running_loop(), asyncio.Event())
    _wakeups.add(entry)
    try:
        yield entry[1]
    finally:
        _wakeups.discard(entry)


def kick() -> None:
    for loop, wake in list(_wakeups):
        with contextlib.suppress(RuntimeError):  # its loop has just closed
            loop.call_soon_threadsafe(wake.set)


_KICK = "kick_vector_index"


def kick_after_commit(session: AsyncSession) -> None:
    """Wake the job up when `session` next commits (not before: it would not see the queue
    rows; and not if it rolls back)."""
    sync = session.sync_session
    if not event.contains(sync, "after_commit", _kick_if_asked):
        event.listen(sync, "after_commit", _kick_if_asked)
        event.listen(sync, "after_rollback", _forget)
    sync.info[_KICK] = True


def _kick_if_asked(session: Any) -> None:
    if session.info.pop(_KICK, False):
        kick()


def _forget(session: Any) -> None:
    session.info.pop(_KICK, None)
