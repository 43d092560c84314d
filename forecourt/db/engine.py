"""The async engine and sessions. Sessions commit at the request (mutation) boundary only;
reads run on their own session in autocommit (no BEGIN/ROLLBACK round trips)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

# A connection that was in use this recently is taken to be alive: a busy pool checks out
# connections without a ping round trip; one that sat idle longer is pinged first.
PING_AFTER_IDLE_SECONDS = 1.0


def asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+asyncpg"
    if scheme != "postgresql+asyncpg":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got scheme {parts.scheme!r}")
    return urlunsplit((scheme, *parts[1:]))


def plain_url(url: str) -> str:
    """The libpq/asyncpg form (postgresql://) of a database URL."""
    parts = urlsplit(asyncpg_url(url))
    return urlunsplit(("postgresql", *parts[1:]))


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # Instead of pool_pre_ping (BEGIN, a ping and ROLLBACK: three round trips on every
        # checkout), connections idle for a while are pinged once; see _ping_if_idle.
        pool_pre_ping=False,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )
    event.listen(engine.sync_engine, "checkin", _mark_checked_in)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


def _mark_checked_in(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pessimistic disconnect check for connections that sat idle in the pool (a database
    restart or failover meanwhile): one `;` round trip; a dead connection is replaced."""
    checked_in = record.info.get("checked_in")
    if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE_SECONDS:
        return  # new, or in use a moment ago
    try:
        await_(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as err:
        raise DisconnectionError("connection lost while idle in the pool") from err


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads outside any mutation: autocommit, so no BEGIN and ROLLBACK round
    trips. Each statement sees the data committed when it starts, as in a READ COMMITTED
    transaction."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        autoflush=False,
    )
