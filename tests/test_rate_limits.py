"""Seed 004: 100 requests a minute per IP for guests, 1000 per authenticated user."""

from datetime import UTC, datetime

import pytest

from tests.conftest import PASSWORD, REGISTER, make_settings
from tests.harness import GraphQLClient, LiveServer


async def _limited(tmp_path, database_url, clock, **limits):
    live = LiveServer(make_settings(tmp_path, **limits), database_url, clock).start()
    return live, GraphQLClient(live.url)


async def test_guests_are_limited_per_ip(tmp_path, database_url, clock):
    live, client = await _limited(tmp_path, database_url, clock, RATE_LIMIT_IP_PER_MINUTE=5,
                                  RATE_LIMIT_USER_PER_MINUTE=1000)
    try:
        statuses = [(await client.post("{ __typename }")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = await client.post("{ __typename }")
        assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
    finally:
        await client.close()
        live.stop()


async def test_signed_in_users_have_their_own_budget(tmp_path, database_url, clock):
    live, client = await _limited(tmp_path, database_url, clock, RATE_LIMIT_IP_PER_MINUTE=3,
                                  RATE_LIMIT_USER_PER_MINUTE=4)
    try:
        body = await client(REGISTER, {"input": {"email": "rl@example.com", "password": PASSWORD}})
        token = body["data"]["register"]["accessToken"]
        statuses = [(await client.post("{ me { id } }", token=token)).status_code for _ in range(5)]
        assert statuses == [200] * 4 + [429]
        # the guest budget of the same address is separate
        assert (await client.post("{ __typename }")).status_code == 200
    finally:
        await client.close()
        live.stop()


async def test_limits_are_shared_across_processes_through_redis(tmp_path, database_url, clock, redis_server):
    settings = make_settings(tmp_path, RATE_LIMIT_IP_PER_MINUTE=4, REDIS_URL=redis_server.url)
    a, b = LiveServer(settings, database_url, clock).start(), LiveServer(settings, database_url, clock).start()
    ca, cb = GraphQLClient(a.url), GraphQLClient(b.url)
    try:
        # a unique client address per run is not possible on loopback; flush the shared counter
        import redis.asyncio as redis
        r = redis.Redis.from_url(redis_server.url)
        await r.flushdb()
        await r.aclose()
        statuses = [(await (ca if i % 2 else cb).post("{ __typename }")).status_code for i in range(5)]
        assert statuses == [200] * 4 + [429]
    finally:
        await ca.close()
        await cb.close()
        a.stop()
        b.stop()


LOGIN = """mutation($email: String!, $password: String!) { login(input: {email: $email, password: $password}) {
  accessToken userErrors { code message } } }"""


async def _login(client, email, password):
    return (await client(LOGIN, {"email": email, "password": password}))["data"]["login"]


@pytest.mark.parametrize("counted_in", ["memory", "redis"])
async def test_failed_sign_ins_back_off_per_account(tmp_path, database_url, clock, request, counted_in):
    shared = {"REDIS_URL": request.getfixturevalue("redis_server").url} if counted_in == "redis" else {}
    live, client = await _limited(tmp_path, database_url, clock, LOGIN_FAILURE_WINDOW_SECONDS=10,
                                  LOGIN_FAILURES_PER_ACCOUNT=5, LOGIN_FAILURES_PER_IP=1000, **shared)
    try:
        await client(REGISTER, {"input": {"email": "victim@example.com", "password": PASSWORD}})
        longest = 10 * 4 ** 3  # the start of a window at every level
        clock.now = datetime.fromtimestamp((int(clock.now.timestamp()) // longest + 1) * longest, UTC)
        for _ in range(5):
            assert (await _login(client, "Victim@Example.com", "Wr0ng-guess!"))["userErrors"][0]["code"] == \
                "INVALID_CREDENTIALS"
        refused = await _login(client, "victim@example.com", PASSWORD)  # the right one, too soon
        assert refused["accessToken"] is None and refused["userErrors"][0]["code"] == "TOO_MANY_ATTEMPTS"
        assert "try again in 10 seconds" in refused["userErrors"][0]["message"]
        clock.advance(seconds=10)  # the window passed
        assert (await _login(client, "victim@example.com", PASSWORD))["accessToken"]

        for _ in range(5):  # five more: the next level's (40 s) window is spent too
            await _login(client, "victim@example.com", "Wr0ng-guess!")
        clock.advance(seconds=10)
        waits = (await _login(client, "victim@example.com", PASSWORD))["userErrors"][0]
        assert waits["code"] == "TOO_MANY_ATTEMPTS" and "try again in 20 seconds" in waits["message"]
        clock.advance(seconds=20)
        assert (await _login(client, "victim@example.com", PASSWORD))["accessToken"]
        other = await client(REGISTER, {"input": {"email": "other@example.com", "password": PASSWORD}})
        assert (await _login(client, "other@example.com", PASSWORD))["accessToken"]  # per account
        assert other["data"]["register"]["userErrors"] == []
    finally:
        await client.close()
        live.stop()


async def test_failed_sign_ins_are_counted_per_ip_too(tmp_path, database_url, clock):
    live, client = await _limited(tmp_path, database_url, clock, LOGIN_FAILURE_WINDOW_SECONDS=60,
                                  LOGIN_FAILURES_PER_ACCOUNT=5, LOGIN_FAILURES_PER_IP=3)
    try:
        await client(REGISTER, {"input": {"email": "mine@example.com", "password": PASSWORD}})
        clock.now = clock.now.replace(minute=0, second=0, microsecond=0)
        for n in range(3):  # one guess at each of three accounts (spraying)
            await _login(client, f"someone{n}@example.com", "Wr0ng-guess!")
        refused = await _login(client, "mine@example.com", PASSWORD)
        assert refused["userErrors"][0]["code"] == "TOO_MANY_ATTEMPTS"
    finally:
        await client.close()
        live.stop()
