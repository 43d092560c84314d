"""Clients that misbehave on purpose, over HTTP and both WebSocket protocols: each attack is
refused with a clear error and leaves the process serving everyone else."""

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from tests.conftest import PASSWORD, REGISTER, make_settings
from tests.harness import GraphQLClient, LiveServer, free_port
from tests.test_subscriptions import open_transport_ws, receive

LOGIN = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken userErrors { code } } }"


async def live(tmp_path, database_url, clock, **overrides):
    server = LiveServer(make_settings(tmp_path, **overrides), database_url, clock).start()
    return server, GraphQLClient(server.url)


async def test_a_flood_of_mutations_on_one_socket_leaves_the_process_healthy(server, gql, make_user):
    """300 concurrent logins on one guest socket: each answered properly, and afterwards HTTP
    requests and every background job still succeed (no pooled connection left poisoned)."""
    user = await make_user()
    async with await open_transport_ws(server.ws_url, None) as ws:
        assert (await receive(ws))["type"] == "connection_ack"
        answers: dict[str, dict] = {}
        in_flight = asyncio.Semaphore(90)

        async def reader():
            while len(answers) < 300:
                message = await receive(ws, timeout=60)
                if message["type"] in ("next", "error"):
                    answers[message["id"]] = message
                    in_flight.release()

        reading = asyncio.create_task(reader())
        for n in range(300):
            await in_flight.acquire()
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {
                "query": LOGIN, "variables": {"e": user.email, "p": PASSWORD}}}))
        await asyncio.wait_for(reading, 120)
    failures = [m for m in answers.values() if m["type"] == "error" or m["payload"].get("errors")]
    assert failures == []
    tokens = [m["payload"]["data"]["login"]["accessToken"] for m in answers.values()]
    assert all(t is not None for t in tokens)

    state = server.state
    assert state.engine.pool.checkedout() == 0
    for _ in range(40):
        body = await gql("{ me { id } vehicles(first: 2) { totalCount } }", token=user.token)
        assert body["status"] == 200 and "errors" not in body, body
    from forecourt import jobs
    for job in (jobs.run_auctions, jobs.protect_reserves, jobs.revalue_inventory, jobs.index_vectors,
                jobs.renew_minutes):
        await server.call(job, state)


async def test_operations_on_one_socket_never_share_a_session(server, make_user):
    """Queries and mutations sent together on one socket run side by side, each on its own
    database session: none fails with SQLAlchemy's concurrent-use error."""
    user = await make_user()
    async with await open_transport_ws(server.ws_url, user.token) as ws:
        assert (await receive(ws))["type"] == "connection_ack"
        for n in range(40):
            query = "{ me { id email } }" if n % 2 else "mutation { createApiToken(input: {name: \"t\"}) { userErrors { code } } }"
            await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": query}}))
        results = {}
        while len(results) < 40:
            message = await receive(ws, timeout=30)
            if message["type"] in ("next", "error"):
                results[message["id"]] = message
    assert all(m["type"] == "next" and "errors" not in m["payload"] for m in results.values()), results


@pytest.mark.parametrize("message", [[], "x", 5, {"type": 5},
                                     {"type": "subscribe", "id": "1", "payload": "x"},
                                     {"type": "subscribe", "id": "1", "payload": {"query": 5}},
                                     {"type": "subscribe", "id": "x" * 1000, "payload": {"query": "{ __typename }"}}])
async def test_malformed_transport_ws_messages_close_the_socket(server, message):
    async with await open_transport_ws(server.ws_url, None) as ws:
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps(message))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd.code == 4400
    async with await open_transport_ws(server.ws_url, None) as ws:  # the server is fine
        assert (await receive(ws))["type"] == "connection_ack"


async def test_malformed_legacy_messages_close_the_socket(server):
    async with await websockets.connect(server.ws_url, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "start", "id": "1", "payload": ["x"]}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(ws)
        assert closed.value.rcvd.code == 4400


async def test_legacy_protocol_accepts_one_connection_init(server):
    async with await websockets.connect(server.ws_url, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await receive(ws))["type"] == "connection_ack"
        for _ in range(50):
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        keepalives = 0
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                keepalives += message["type"] == "ka"
        assert closed.value.rcvd.code == 4429
        assert keepalives <= 2


async def test_websocket_operations_are_rate_limited(tmp_path, database_url, clock):
    server, client = await live(tmp_path, database_url, clock, RATE_LIMIT_IP_PER_MINUTE=5)
    try:
        async with await open_transport_ws(server.ws_url, None) as ws:
            assert (await receive(ws))["type"] == "connection_ack"
            codes = []
            for n in range(7):
                await ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": {"query": "{ __typename }"}}))
                message = await receive(ws)
                if message["type"] == "next":
                    await receive(ws)  # complete
                    codes.append("OK")
                else:
                    codes.append(message["payload"][0]["extensions"]["code"])
            assert codes == ["OK"] * 5 + ["RATE_LIMITED"] * 2
        # the socket's operations came out of the same budget as HTTP requests
        assert (await client.post("{ __typename }")).status_code == 429
    finally:
        await client.close()
        server.stop()


async def test_one_sign_in_operation_per_request(server, gql, make_user):
    user = await make_user()
    aliased = "mutation {" + " ".join(
        f'a{n}: login(input: {{email: "{user.email}", password: "guess{n}"}}) {{ accessToken }}'
        for n in range(15)) + "}"
    body = await gql(aliased)
    assert body["status"] == 422 and body["errors"][0]["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED", body
    through_fragments = """mutation { ...A ...B }
      fragment A on Mutation { a: login(input: {email: "x@example.com", password: "y"}) { accessToken } }
      fragment B on Mutation { b: refreshToken(token: "z") { accessToken } }"""
    body = await gql(through_fragments)
    assert body["status"] == 422 and body["errors"][0]["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED", body


async def test_a_token_does_not_lift_the_sign_in_limit(tmp_path, database_url, clock):
    server, client = await live(tmp_path, database_url, clock, RATE_LIMIT_CREDENTIALS_PER_MINUTE=3)
    try:
        body = await client(REGISTER, {"input": {"email": "limited@example.com", "password": PASSWORD}})
        token = body["data"]["register"]["accessToken"]  # the first of three
        statuses = [(await client.post(LOGIN, {"e": "limited@example.com", "p": f"guess{n}"}, token=token)).status_code
                    for n in range(3)]
        assert statuses == [200, 200, 429]
        assert (await client.post("{ me { id } }", token=token)).status_code == 200  # other operations go on
    finally:
        await client.close()
        server.stop()


async def test_forwarded_addresses_are_not_believed_from_untrusted_peers(tmp_path, database_url, clock):
    server, client = await live(tmp_path, database_url, clock, RATE_LIMIT_IP_PER_MINUTE=3)
    try:
        statuses = [(await client.http.post("/graphql", json={"query": "{ __typename }"},
                                            headers={"X-Forwarded-For": f"203.0.113.{n}"})).status_code
                    for n in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
    finally:
        await client.close()
        server.stop()


async def test_forwarded_addresses_are_believed_from_trusted_proxies(tmp_path, database_url, clock):
    server, client = await live(tmp_path, database_url, clock, RATE_LIMIT_IP_PER_MINUTE=2,
                                TRUSTED_PROXIES=["127.0.0.1"])
    try:
        statuses = [(await client.http.post("/graphql", json={"query": "{ __typename }"},
                                            headers={"X-Forwarded-For": f"203.0.113.{n % 2}"})).status_code
                    for n in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        await client.close()
        server.stop()


@pytest.mark.parametrize("body", [b"null", b'"x"', b"5", b"true"])
async def test_json_bodies_that_are_not_objects_are_refused(server, body):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_database_down_answers_503_json_and_masked_errors(tmp_path, clock):
    """A server whose database cannot be reached: authenticated HTTP requests get a JSON 503,
    and a subscription's error is masked and says what happened, on both protocols."""
    unreachable = f"postgresql://forecourt@127.0.0.1:{free_port()}/forecourt"
    server = LiveServer(make_settings(tmp_path), unreachable, clock).start()
    try:
        from forecourt.schema.context import utc_now
        token = server.state.credentials.access_tokens.issue(uuid.uuid4(), utc_now())
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post("/graphql", json={"query": "{ me { id } }"},
                                       headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 503
            assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            body = (await http.post("/graphql", json={"query": "{ vehicles(first: 1) { totalCount } }"})).json()
            assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert "Errno" not in body["errors"][0]["message"]
        subscription = {"query": 'subscription { auctionEvents(auctionId: "QXVjdGlvbjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDE=") { sequence } }'}
        async with await open_transport_ws(server.ws_url, None) as ws:
            assert (await receive(ws))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscription}))
            message = await receive(ws, timeout=15)
            errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            assert errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", errors
            assert "Errno" not in errors[0]["message"]
        async with await websockets.connect(server.ws_url, subprotocols=["graphql-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert (await receive(ws))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "start", "payload": subscription}))
            message = await receive(ws, timeout=15)
            error = message["payload"] if message["type"] == "error" else message["payload"]["errors"][0]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", error
    finally:
        server.stop()


async def test_redis_down_is_events_unavailable_masked(tmp_path, database_url, clock, server, gql, seller):
    """Subscribing while the event bus is down: a masked EVENTS_UNAVAILABLE on both protocols,
    never the connection error's text under another code."""
    from tests.harness import RedisServer
    from tests.test_auctions import new_auction

    auction = await new_auction(gql, seller, clock)
    redis_server = RedisServer()
    events = LiveServer(make_settings(tmp_path, REDIS_URL=redis_server.url, BROADCAST_OUTAGE_GRACE_SECONDS=0.3),
                        database_url, clock).start()
    try:
        redis_server.stop()
        subscription = {"query": "subscription($id: ID!) { auctionEvents(auctionId: $id) { sequence } }",
                        "variables": {"id": auction["id"]}}
        for protocol, start in (("graphql-transport-ws", "subscribe"), ("graphql-ws", "start")):
            async with websockets.connect(events.ws_url, subprotocols=[protocol]) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                assert (await receive(ws))["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": start, "payload": subscription}))
                message = await receive(ws, timeout=15)
                payload = message["payload"]
                error = (payload[0] if isinstance(payload, list) else payload["errors"][0]
                         if "errors" in payload else payload)
                assert error["extensions"]["code"] == "EVENTS_UNAVAILABLE", message
                assert "connect" not in error["message"].lower() or "Error" not in error["message"]
    finally:
        events.stop()
        redis_server.stop()
