"""Subscriptions over real WebSockets: both protocols, auth from connection_init, keepalive
pings, and fan-out across server processes through a real redis-server."""

import asyncio
import json

import pytest
import websockets

from tests.conftest import make_settings
from tests.harness import GraphQLClient, LiveServer
from tests.test_identity import APPLY, DEALER, REVIEW

ACCOUNT_EVENTS = "subscription { accountEvents { type approved application user { role kycStatus } } }"


async def receive(ws, *, skip=("ping", "pong", "ka"), timeout=5.0) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] in skip:
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            continue
        return message


async def open_transport_ws(url: str, token: str | None):
    ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"])
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    return ws


async def apply_and_approve(gql, make_user, applicant=None):
    applicant = applicant or await make_user()
    admin = await make_user("admin")
    await gql(APPLY, {"input": DEALER}, token=applicant.token)
    return applicant, admin


async def test_transport_ws_delivers_account_events(server, gql, make_user):
    applicant, admin = await apply_and_approve(gql, make_user)
    async with await open_transport_ws(server.ws_url, applicant.token) as ws:
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ACCOUNT_EVENTS}}))
        await asyncio.sleep(0.3)  # let the server subscribe before the event is published
        await gql(REVIEW, {"input": {"userId": applicant.id, "approve": True}}, token=admin.token)
        message = await receive(ws)
        assert message["type"] == "next" and message["id"] == "1"
        event = message["payload"]["data"]["accountEvents"]
        assert event == {"type": "KYC_REVIEWED", "approved": True, "application": "DEALER",
                         "user": {"role": "DEALER", "kycStatus": "APPROVED"}}


async def test_events_are_only_published_after_commit(server, gql, make_user):
    """A rejected review (no reason) rolls back and publishes nothing."""
    applicant, admin = await apply_and_approve(gql, make_user)
    async with await open_transport_ws(server.ws_url, applicant.token) as ws:
        await receive(ws)
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ACCOUNT_EVENTS}}))
        await asyncio.sleep(0.3)
        body = await gql(REVIEW, {"input": {"userId": applicant.id, "approve": False}}, token=admin.token)
        assert body["data"]["reviewKycApplication"]["userErrors"][0]["code"] == "REASON_REQUIRED"
        with pytest.raises(asyncio.TimeoutError):
            await receive(ws, timeout=0.7)


async def test_server_sends_keepalive_pings(tmp_path, database_url, clock, make_user):
    live = LiveServer(make_settings(tmp_path, WS_KEEPALIVE_SECONDS=0.2), database_url, clock).start()
    try:
        async with await open_transport_ws(live.ws_url, None) as ws:
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            pings = 0
            for _ in range(3):
                message = json.loads(await asyncio.wait_for(ws.recv(), 2))
                pings += message["type"] == "ping"
                await ws.send(json.dumps({"type": "pong"}))
            assert pings == 3
        async with await websockets.connect(live.ws_url, subprotocols=["graphql-ws"]) as legacy:
            await legacy.send(json.dumps({"type": "connection_init", "payload": {}}))
            types = [json.loads(await asyncio.wait_for(legacy.recv(), 2))["type"] for _ in range(3)]
            assert types[0] == "connection_ack" and types.count("ka") >= 2
    finally:
        live.stop()


async def test_invalid_token_is_refused_at_connection_init(server):
    async with await open_transport_ws(server.ws_url, "not-a-token") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4403


async def test_guest_cannot_subscribe_to_account_events(server):
    async with await open_transport_ws(server.ws_url, None) as ws:
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ACCOUNT_EVENTS}}))
        message = await receive(ws)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_legacy_graphql_ws_protocol(server, gql, make_user):
    applicant, admin = await apply_and_approve(gql, make_user)
    async with await websockets.connect(server.ws_url, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {applicant.token}"}}))
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "7", "type": "start", "payload": {"query": ACCOUNT_EVENTS}}))
        await asyncio.sleep(0.3)
        await gql(REVIEW, {"input": {"userId": applicant.id, "approve": False, "reason": "blurry scan"}},
                  token=admin.token)
        message = await receive(ws)
        assert message["type"] == "data" and message["id"] == "7"
        assert message["payload"]["data"]["accountEvents"]["approved"] is False


async def test_events_cross_server_processes_through_redis(tmp_path, database_url, clock, redis_server, make_user, gql):
    """A write on server A reaches a subscriber connected to server B."""
    settings = make_settings(tmp_path, REDIS_URL=redis_server.url)
    a = LiveServer(settings, database_url, clock).start()
    b = LiveServer(settings, database_url, clock).start()
    client_a = GraphQLClient(a.url)
    try:
        health = (await client_a.http.get("/health")).json()
        assert health["broadcast"] == {"backend": "redis", "status": "ok"}
        applicant, admin = await apply_and_approve(gql, make_user)
        async with await open_transport_ws(b.ws_url, applicant.token) as ws:
            assert (await receive(ws))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ACCOUNT_EVENTS}}))
            await asyncio.sleep(0.3)
            await client_a(REVIEW, {"input": {"userId": applicant.id, "approve": True}}, token=admin.token)
            message = await receive(ws)
            assert message["payload"]["data"]["accountEvents"]["user"]["role"] == "DEALER"
    finally:
        await client_a.close()
        a.stop()
        b.stop()


async def test_redis_backend_resubscribes_after_redis_restarts():
    """Kill redis-server under a subscriber; when it is back, events flow again."""
    from broadcaster import Broadcast

    from forecourt.subscriptions.redis_backend import RedisPubSubBackend
    from tests.harness import RedisServer

    redis_server = RedisServer()
    publisher = Broadcast(backend=RedisPubSubBackend(redis_server.url))
    subscriber = Broadcast(backend=RedisPubSubBackend(redis_server.url))
    await publisher.connect()
    await subscriber.connect()
    try:
        async with subscriber.subscribe("auction:1") as events:
            received = []

            async def consume():
                async for event in events:
                    received.append(event.message)
                    if event.message == "after":
                        return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.2)
            await publisher.publish("auction:1", "before")
            for _ in range(100):  # delivered before the outage
                if received:
                    break
                await asyncio.sleep(0.05)
            redis_server.stop()
            await asyncio.sleep(0.5)
            redis_server.start()
            for _ in range(50):  # publish until the resubscribed listener hears it
                try:
                    await publisher.publish("auction:1", "after")
                except Exception:
                    pass
                if task.done():
                    break
                await asyncio.sleep(0.1)
            await asyncio.wait_for(task, 5)
            assert received[0] == "before" and received[-1] == "after"
    finally:
        await publisher.disconnect()
        await subscriber.disconnect()
        redis_server.stop()
