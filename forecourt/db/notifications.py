"""A connection that LISTENs on one PostgreSQL channel for as long as the process runs,
reconnecting when it is lost (a restart, a failover, a network cut)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from forecourt.db.engine import plain_url

log = logging.getLogger(__name__)

# How often a quiet connection is checked: a peer that vanished without closing the socket
# is noticed within about this long.
PING_SECONDS = 5.0
MAX_RETRY_SECONDS = 10.0


async def listen(database_url: str, channel: str, on_message: Callable[[str], None],
                 on_listening: Callable[[], None], on_lost: Callable[[], None]) -> None:
    """Call `on_message(payload)` for each notification on `channel`, until cancelled.
    `on_listening()` once a connection listens; `on_lost()` when it stops (notifications
    may have been missed from then until the next `on_listening()`)."""
    url = plain_url(database_url)
    retry = 0.25
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=PING_SECONDS)
        except (OSError, asyncpg.PostgresError, TimeoutError) as err:
            log.warning("cannot listen on %s (retrying in %.1fs): %r", channel, retry, err)
            await asyncio.sleep(retry)
            retry = min(retry * 2, MAX_RETRY_SECONDS)
            continue
        try:
            await conn.add_listener(channel, lambda _conn, _pid, _channel, payload: on_message(payload))
            retry = 0.25
            on_listening()
            while True:
                await asyncio.sleep(PING_SECONDS)
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_SECONDS)
        except Exception as err:  # noqa: BLE001 (whatever broke it, listen again)
            log.warning("stopped listening on %s: %r", channel, err)
            await asyncio.sleep(retry)
        finally:
            on_lost()
            with contextlib.suppress(Exception):
                conn.terminate()
