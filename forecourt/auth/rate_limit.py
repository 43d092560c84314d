"""Request rate limits (seed 004): per IP for guests, per user once authenticated; and failed
sign-ins, per account and per IP, with a growing backoff.

Fixed windows, counted in Redis when REDIS_URL is set (so every server process shares the
count) and in process memory otherwise.
"""

from __future__ import annotations

import logging
import math
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

    async def count(self, key: str, window: int) -> int:
        current = self._windows.get(key)
        return current.count if current is not None and current.started == window else 0

    async def hit(self, key: str, window: int, ttl: int = WINDOW_SECONDS * 2) -> int:
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

    async def count(self, key: str, window: int) -> int:
        try:
            return int(await self._client.get(f"ratelimit:{key}:{window}") or 0)
        except (RedisError, OSError) as err:
            self._warn(err)
            return await self._fallback.count(key, window)

    async def hit(self, key: str, window: int, ttl: int = WINDOW_SECONDS * 2) -> int:
        """Count one more in `window`; `ttl` seconds keep the count (longer than the window)."""
        name = f"ratelimit:{key}:{window}"
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(name).expire(name, ttl).execute()
            return int(count)
        except (RedisError, OSError) as err:
            self._warn(err)
            return await self._fallback.hit(key, window)

    def _warn(self, err: Exception) -> None:
        if time.monotonic() - self._warned_at > 30:
            self._warned_at = time.monotonic()
            log.warning("rate limits counted per process: Redis unavailable (%s)", err)

    async def close(self) -> None:
        await self._client.aclose()


class LoginThrottle:
    """Failed sign-ins, per account and per IP. Each backoff level counts failures in windows
    BACKOFF_GROWTH times longer than the level before and allows `limit` more of them: with
    the defaults (5, 60 s) an account past 5 failures waits out the minute, past 10 the
    4-minute window, past 15 the 16-minute one and past 20 the 64-minute one. While refused,
    even the right password is refused, and not checked. A success does not reset the count:
    it fades as the windows pass."""

    BACKOFF_LEVELS = 4
    BACKOFF_GROWTH = 4

    def __init__(self, counter: MemoryCounter | RedisCounter, *, per_account: int, per_ip: int,
                 window_seconds: int) -> None:
        self.counter = counter
        self.per_account, self.per_ip, self.window_seconds = per_account, per_ip, window_seconds

    def _scopes(self, account: str, ip: str | None) -> list[tuple[str, int]]:
        scopes = [(f"login-failures:account:{account}", self.per_account), (f"login-failures:ip:{ip}", self.per_ip)]
        return [(key, limit) for key, limit in scopes if limit > 0 and not key.endswith(":None")]

    def _levels(self, now: float) -> list[tuple[int, int, int]]:
        """(level, its window's length, the window `now` is in) for each level."""
        lengths = [self.window_seconds * self.BACKOFF_GROWTH**level for level in range(self.BACKOFF_LEVELS)]
        return [(level, length, int(now // length)) for level, length in enumerate(lengths)]

    async def retry_after(self, *, account: str, ip: str | None, now: float) -> int | None:
        """Seconds until `account` from `ip` may try again; None when it may now."""
        wait = 0
        for key, limit in self._scopes(account, ip):
            for level, length, window in self._levels(now):
                if await self.counter.count(f"{key}:{level}", window) >= limit * (level + 1):
                    wait = max(wait, math.ceil((window + 1) * length - now))
        return wait or None

    async def failed(self, *, account: str, ip: str | None, now: float) -> None:
        for key, _ in self._scopes(account, ip):
            for level, length, window in self._levels(now):
                await self.counter.hit(f"{key}:{level}", window, ttl=length * 2)


class RateLimiter:
    def __init__(self, per_ip: int, per_user: int, redis_url: str | None = None, *,
                 credentials_per_ip: int = 0,
                 login_failures_per_account: int = 5, login_failures_per_ip: int = 50,
                 login_failure_window_seconds: int = 60) -> None:
        self.per_ip = per_ip
        self.per_user = per_user
        self.credentials_per_ip = credentials_per_ip
        self.counter = RedisCounter(redis_url) if redis_url else MemoryCounter()
        self.logins = LoginThrottle(self.counter, per_account=login_failures_per_account,
                                    per_ip=login_failures_per_ip, window_seconds=login_failure_window_seconds)

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
