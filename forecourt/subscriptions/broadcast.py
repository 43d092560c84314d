"""The process's broadcast: in-memory by default, Redis when REDIS_URL is set."""

from __future__ import annotations

from broadcaster import Broadcast

from forecourt.config import Settings
from forecourt.subscriptions.fanout import FanOut
from forecourt.subscriptions.redis_backend import RedisPubSubBackend


def create_broadcast(settings: Settings) -> FanOut:
    limits = {"mailbox_size": settings.subscriber_mailbox_size,
              "outage_grace_seconds": settings.broadcast_outage_grace_seconds}
    if settings.redis_url:
        return FanOut(backend=RedisPubSubBackend(settings.redis_url), **limits)
    return FanOut("memory://", **limits)


def backend_name(settings: Settings) -> str:
    return "redis" if settings.redis_url else "memory"


async def ping(broadcast: Broadcast, settings: Settings) -> None:
    """Raise if the broadcast backend is unreachable."""
    if settings.redis_url:
        import redis.asyncio as redis

        client = redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()
