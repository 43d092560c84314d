"""The process's broadcast: in-memory by default, Redis when REDIS_URL is set."""

from __future__ import annotations

from broadcaster import Broadcast

from forecourt.config import Settings
from forecourt.subscriptions.redis_backend import RedisPubSubBackend


def create_broadcast(settings: Settings) -> Broadcast:
    if settings.redis_url:
        return Broadcast(backend=RedisPubSubBackend(settings.redis_url))
    return Broadcast("memory://")


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
