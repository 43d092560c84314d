"""Request rate limits (seed 004): per IP for guests, per user once authenticated.

Fixed one-minute windows, counted in Redis when REDIS_URL is set (so every server process
shares the count) and in process memory otherwise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis import asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after = retry_after


@dataclass
class _Window:
    started: int
    count: int


class MemoryCounter:
    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}

    async def hit(self, key: str, window: int) -> int:
        current = self._windows.get(key)
        if current is None or current.started != window:
            if len(self._windows) > 100_000:  # forget finished windows
                self._windows = {k: w for k, w in self._windows.items() if w.started == window}
            current = self._windows[key] = _Window(window, 0)
        current.count += 1
        return current.count


class RedisCounter:
    """Shared counts in Redis. While Redis is unreachable each process counts on its own: the
    limits hold per process instead of failing every request."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self._fallback = MemoryCounter()
        self._warned_at = 0.0

    async def hit(self, key: str, window: int) -> int:
        name = f"ratelimit:{key}:{window}"
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(name).expire(name, WINDOW_SECONDS * 2).execute()
            return int(count)
        except (RedisError, OSError) as err:
            if time.monotonic() - self._warned_at > 30:
                self._warned_at = time.monotonic()
                log.warning("rate limits counted per process: Redis unavailable (%s)", err)
            return await self._fallback.hit(key, window)

    async def close(self) -> None:
        await self._client.aclose()


class RateLimiter:
    def __init__(self, per_ip: int, per_user: int, redis_url: str | None = None, *,
                 credentials_per_ip: int = 0) -> None:
        self.per_ip = per_ip
        self.per_user = per_user
        self.credentials_per_ip = credentials_per_ip
        self.counter = RedisCounter(redis_url) if redis_url else MemoryCounter()

    async def check(self, *, user_id: object | None, ip: str | None) -> None:
        """Count one operation; raise RateLimited when the caller is over their limit."""
        key, limit = (f"user:{user_id}", self.per_user) if user_id else (f"ip:{ip}", self.per_ip)
        await self._hit(key, limit)

    async def check_credentials(self, *, ip: str | None) -> None:
        """Count one sign-in operation (login, register, refreshToken) against the client's
        address, whether or not it also holds a token."""
        await self._hit(f"credentials:{ip}", self.credentials_per_ip)

    async def _hit(self, key: str, limit: int) -> None:
        if limit <= 0:
            return
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        if await self.counter.hit(key, window) > limit:
            raise RateLimited(retry_after=max(1, int((window + 1) * WINDOW_SECONDS - now)))

    async def close(self) -> None:
        if isinstance(self.counter, RedisCounter):
            await self.counter.close()
