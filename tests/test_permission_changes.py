"""A change to who a user is (role, KYC, organization, activity, a revoked token) applies to
their next request and next subscription event, in every process, whoever made it."""

import asyncio
import json

import pytest
import websockets

from tests.conftest import PASSWORD, make_settings
from tests.harness import GraphQLClient, LiveServer
from tests.test_catalog import CREATE, vehicle_input
from tests.test_hostile_clients import LOGIN
from tests.test_identity import APPLY, DEALER, LOGOUT_EVERYWHERE, REVIEW
from tests.test_organizations import INVITE, REMOVE
from tests.test_subscriptions import ACCOUNT_EVENTS, open_transport_ws, receive
from tests.test_training import APPEND, EVENTS, START, explorer_scenario


async def subscribe(ws, operation_id, query, variables=None):
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe",
                              "payload": {"query": query, "variables": variables or {}}}))


def errors_of(message):
    return message["payload"] if message["type"] == "error" else message["payload"].get("errors")


async def watching_account(server, token):
    """A socket subscribed to its caller's account events."""
    ws = await open_transport_ws(server.ws_url, token)
    assert (await receive(ws))["type"] == "connection_ack"
    await subscribe(ws, "1", ACCOUNT_EVENTS)
    await asyncio.sleep(0.3)  # subscribed before what the test does next
    return ws


async def closed_as_forbidden(ws):
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await receive(ws, timeout=5)
    assert closed.value.rcvd.code == 4403


async def test_a_removed_manager_stops_receiving_transcripts(server, gql, make_organization, db):
    team = await make_organization(members=2)
    trainee, manager = team.members
    await db.execute("UPDATE users SET role = 'manager' WHERE id = $1", manager.raw_id)  # a sales manager
    scenario = await explorer_scenario(gql, db, team.admin)
    session_id = (await gql(START, {"id": scenario["id"]}, token=trainee.token)
                  )["data"]["startTrainingSession"]["session"]["id"]
    async with await open_transport_ws(server.ws_url, manager.token) as ws:
        assert (await receive(ws))["type"] == "connection_ack"
        await subscribe(ws, "live", EVENTS, {"id": session_id})
        await asyncio.sleep(0.3)
        await gql(APPEND, {"id": session_id, "role": "trainee", "text": "Welcome in, folks"}, token=trainee.token)
        assert (await receive(ws))["payload"]["data"]["trainingSessionEvents"]["sequence"] == 1
        with pytest.raises(asyncio.TimeoutError):  # the turn's score update, if any
            while True:
                assert (await receive(ws, timeout=0.7))["type"] == "next"

        removed = await gql(REMOVE, {"id": manager.id}, token=team.admin.token)
        assert removed["data"]["removeOrganizationMember"]["userErrors"] == []
        ended = await receive(ws)
        assert ended["type"] == "error" and ended["id"] == "live"
        assert errors_of(ended)[0]["extensions"]["code"] == "PERMISSIONS_CHANGED"

        await gql(APPEND, {"id": session_id, "role": "customer", "text": "We need seven seats"}, token=trainee.token)
        await subscribe(ws, "replay", EVENTS, {"id": session_id, "after": 0})  # the same socket, again
        refused = await receive(ws)
        assert errors_of(refused), refused
        with pytest.raises(asyncio.TimeoutError):  # and nothing of the session follows
            while True:
                message = await receive(ws, timeout=0.7)
                assert message["type"] == "complete" and message["id"] == "replay", message


async def test_a_deactivated_users_socket_is_closed(server, make_user, db):
    """Deactivated by an operator's SQL, not through the API: the database announces it."""
    user = await make_user()
    async with await watching_account(server, user.token) as ws:
        await db.execute("UPDATE users SET is_active = false WHERE id = $1", user.raw_id)
        await closed_as_forbidden(ws)


async def test_a_revoked_api_tokens_socket_is_closed(server, gql, make_user):
    user = await make_user()
    made = await gql('mutation { createApiToken(input: {name: "script"}) { token apiToken { id } } }', token=user.token)
    created = made["data"]["createApiToken"]
    async with await watching_account(server, created["token"]) as ws:
        await gql("mutation($id: ID!) { revokeApiToken(id: $id) { revoked userErrors { code } } }",
                  {"id": created["apiToken"]["id"]}, token=user.token)
        await closed_as_forbidden(ws)


async def test_signing_out_everywhere_closes_the_users_sockets(server, gql, make_user):
    user = await make_user()
    async with await watching_account(server, user.token) as ws:
        fresh = await gql(LOGIN, {"e": user.email, "p": PASSWORD})
        ended = await gql(LOGOUT_EVERYWHERE, token=fresh["data"]["login"]["accessToken"])
        assert ended["data"]["logoutEverywhere"] == {"userErrors": []}
        await closed_as_forbidden(ws)


@pytest.fixture
async def cached(tmp_path, database_url, clock):
    """Two server processes' worth of apps sharing one database, each caching callers for a
    minute: only announcements can make a change visible in time."""
    settings = make_settings(tmp_path, PRINCIPAL_CACHE_SECONDS=60)
    servers = [LiveServer(settings, database_url, clock).start() for _ in range(2)]
    clients = [GraphQLClient(server.url) for server in servers]
    for server in servers:
        for _ in range(100):  # listening
            if server.state.credentials.principals.listening:
                break
            await asyncio.sleep(0.05)
    yield clients
    for client, server in zip(clients, servers, strict=True):
        await client.close()
        server.stop()


async def eventually(check, seconds=2.0):
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not applied in time"
        await asyncio.sleep(0.05)


async def test_own_changes_apply_to_the_next_request(cached, make_user):
    one, _ = cached
    user = await make_user()
    await one("{ me { id } }", token=user.token)  # cached: no organization
    created = await one('mutation { createOrganization(input: {name: "Ikeja Autos"}) { userErrors { code } } }',
                        token=user.token)
    assert created["data"]["createOrganization"]["userErrors"] == []
    invited = await one(INVITE, {"email": "rep@example.com"}, token=user.token)
    assert invited["data"]["inviteToOrganization"]["userErrors"] == [], invited


async def test_an_approved_dealer_can_list_at_once_in_every_process(cached, make_user):
    one, two = cached
    applicant, admin = await make_user(), await make_user("admin")
    await one(APPLY, {"input": DEALER}, token=applicant.token)
    for client in cached:  # both processes cache the applicant as a plain user
        refused = await client(CREATE, {"input": vehicle_input()}, token=applicant.token)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await one(REVIEW, {"input": {"userId": applicant.id, "approve": True}}, token=admin.token)
    listed = await one(CREATE, {"input": vehicle_input()}, token=applicant.token)
    assert listed["data"]["createVehicle"]["userErrors"] == [], listed

    async def allowed_in_two():
        body = await two(CREATE, {"input": vehicle_input()}, token=applicant.token)
        return "errors" not in body
    await eventually(allowed_in_two)


async def test_a_demoted_admin_loses_admin_power_in_every_process(cached, make_user, db):
    admin = await make_user("admin")
    for client in cached:
        assert "errors" not in await client("{ kycApplications(first: 1) { totalCount } }", token=admin.token)
    await db.execute("UPDATE users SET role = 'user' WHERE id = $1", admin.raw_id)  # an operator's SQL
    for client in cached:
        async def refused(client=client):
            body = await client("{ kycApplications(first: 1) { totalCount } }", token=admin.token)
            return bool(body.get("errors")) and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await eventually(refused, seconds=1.0)
