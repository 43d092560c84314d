"""A Redis pub/sub backend for broadcaster.

broadcaster's own Redis backend loses its listener when a subscription races the first
`listen()` (it waits forever), and hangs silently when Redis drops (encode/broadcaster#144).
This one subscribes before it listens, and on a dropped connection reconnects with backoff,
subscribes again to every channel it had, and reports the outage and the recovery on the
control channel (see fanout.py) so subscribers catch up from the database or end cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis import asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from forecourt.subscriptions.fanout import (
    CONNECTION_LOST,
    CONNECTION_RESTORED,
    CONTROL_CHANNEL,
)

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)


class RedisPubSubBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=5, health_check_interval=15, retry_on_timeout=True
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._channels: set[str] = set()
        self._has_channels = asyncio.Event()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listener: asyncio.Task | None = None

    async def connect(self) -> None:
        await self._client.ping()
        self._listener = asyncio.create_task(self._listen(), name="redis-pubsub-listener")

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pubsub.aclose()
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        await self._pubsub.subscribe(channel)
        self._has_channels.set()

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if not self._channels:
            self._has_channels.clear()
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._client.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def _listen(self) -> None:
        failures = 0
        while True:
            await self._has_channels.wait()
            try:
                if failures:
                    await self._resubscribe()
                    self._queue.put_nowait(Event(CONTROL_CHANNEL, CONNECTION_RESTORED))
                    log.warning("redis pub/sub connection restored")
                    failures = 0
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError) as err:
                # RuntimeError: redis-py's "pubsub connection not set" after a failed resubscribe
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                if not failures:
                    self._queue.put_nowait(Event(CONTROL_CHANNEL, CONNECTION_LOST))
                failures += 1
                log.warning("redis pub/sub connection lost (%s); retrying in %.2fs", err, delay)
                await asyncio.sleep(delay)
                continue
            if message is not None and message.get("type") == "message":
                channel, data = message["channel"], message["data"]
                self._queue.put_nowait(
                    Event(
                        channel=channel.decode() if isinstance(channel, bytes) else channel,
                        message=data.decode() if isinstance(data, bytes) else data,
                    )
                )

    async def _resubscribe(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        if self._channels:
            await self._pubsub.subscribe(*self._channels)
