"""The database connections behind reads: no ping on every checkout, but a connection that sat
idle through a database restart (or failover) is found dead and replaced, not handed out."""

from __future__ import annotations

import asyncpg

from forecourt.db import engine

QUERY = "{ vehicles(first: 3) { edges { node { id } } } }"


async def kill_server_connections(db) -> int:
    return await db.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()"""
    )


async def test_a_connection_lost_while_idle_is_replaced(gql, db, monkeypatch):
    assert (await gql(QUERY))["status"] == 200  # the pool now holds a connection
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.0)  # "idle long enough"
    assert await kill_server_connections(db) >= 1
    body = await gql(QUERY)
    assert body["status"] == 200 and "errors" not in body, body


async def test_busy_connections_are_not_pinged(gql, monkeypatch):
    pings = []
    original = asyncpg.connection.Connection.fetchrow

    async def fetchrow(self, query, *args, **kwargs):
        if query == ";":
            pings.append(query)
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", fetchrow)
    for _ in range(3):  # back to back: the connection was in use a moment ago
        assert (await gql(QUERY))["status"] == 200
    assert pings == []
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert (await gql(QUERY))["status"] == 200
    assert pings == [";"]  # one checkout (the read session), one ping
