"""Seed 004: 100 requests a minute per IP for guests, 1000 per authenticated user."""

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
