"""Tenant isolation, walked: every object that belongs to a user or an organization, reached by
id, by `node`, by list and through nested fields, over HTTP and over both WebSocket protocols,
by everyone who may and may not see it — and again after a caller loses the right, on the
sockets they opened before."""

import asyncio
import itertools
import json
from dataclasses import dataclass

import websockets

from tests.test_identity import KYC, SUBMIT_KYC
from tests.test_organizations import REMOVE
from tests.test_subscriptions import open_transport_ws, receive
from tests.test_training import APPEND, EVENTS, START, explorer_scenario

_ids = itertools.count(1)


class Socket:
    """One graphql-transport-ws connection, kept open for the whole walk."""

    def __init__(self, ws) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, url, token):
        ws = await open_transport_ws(url, token)
        assert (await receive(ws))["type"] == "connection_ack"
        return cls(ws)

    async def __call__(self, query, variables=None) -> dict:
        operation_id = str(next(_ids))
        await self.ws.send(json.dumps({"id": operation_id, "type": "subscribe",
                                       "payload": {"query": query, "variables": variables or {}}}))
        while True:
            message = await receive(self.ws, timeout=10)
            if message.get("id") != operation_id:
                continue
            if message["type"] == "error":
                return {"data": None, "errors": message["payload"]}
            if message["type"] == "next":
                return message["payload"]


async def first_event(url, token, protocol, session_id) -> dict:
    """The first answer to a trainingSessionEvents subscription replaying from the start."""
    async with websockets.connect(url, subprotocols=[protocol]) as ws:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert (await receive(ws))["type"] == "connection_ack"
        start = "subscribe" if protocol == "graphql-transport-ws" else "start"
        await ws.send(json.dumps({"id": "1", "type": start, "payload": {
            "query": EVENTS, "variables": {"id": session_id, "after": 0}}}))
        message = await receive(ws, timeout=10)
        if message["type"] == "error":
            return {"data": None, "errors": message["payload"]}
        return message["payload"]


@dataclass
class World:
    session: str
    scenario: str
    organization: str
    trainee: str
    application: str


def seen_by_id(body, field):
    return (body.get("data") or {}).get(field) is not None


def path(body, *keys):
    value = body.get("data")
    for key in keys:
        if value is None:
            return None
        value = value[key]
    return value


def ids(body, *keys):
    return [edge["node"]["id"] for edge in path(body, *keys, "edges") or []]


def reaches(world: World):
    """(what, whose, query, variables, seen(body)) for every way to the world's objects; `whose`
    names who may see it (MAY_SEE)."""
    s, c, o, u, k = world.session, world.scenario, world.organization, world.trainee, world.application
    return [
        ("session by id", "session", "query($id: ID!) { trainingSession(id: $id) { id transcript { text } } }",
         {"id": s}, lambda b: seen_by_id(b, "trainingSession")),
        ("session by node", "session",
         "query($id: ID!) { node(id: $id) { ... on TrainingSession { id transcript { text } } } }",
         {"id": s}, lambda b: seen_by_id(b, "node")),
        ("session in a list", "session", "{ trainingSessions(first: 100) { edges { node { id } } } }", {},
         lambda b: s in ids(b, "trainingSessions")),
        ("session's trainee and scenario", "session",
         "query($id: ID!) { trainingSession(id: $id) { trainee { id } scenario { id } } }",
         {"id": s}, lambda b: path(b, "trainingSession", "trainee") is not None),
        ("scenario by node", "organization", "query($id: ID!) { node(id: $id) { ... on Scenario { id objections } } }",
         {"id": c}, lambda b: seen_by_id(b, "node")),
        ("scenario in a list", "organization", "{ scenarios(first: 100) { edges { node { id } } } }", {},
         lambda b: c in ids(b, "scenarios")),
        ("organization by node", "organization",
         "query($id: ID!) { node(id: $id) { ... on Organization { id members { edges { node { id } } } } } }",
         {"id": o}, lambda b: seen_by_id(b, "node")),
        ("organization through me", "member of it",
         "{ me { organization { id members { totalCount } billing { plan } } } }", {},
         lambda b: (path(b, "me", "organization") or {}).get("id") == o),
        ("trainee's wallet", "trainee's own", "query($id: ID!) { node(id: $id) { ... on User { wallet { balance } } } }",
         {"id": u}, lambda b: path(b, "node", "wallet") is not None),
        ("trainee's API tokens", "trainee's own",
         "query($id: ID!) { node(id: $id) { ... on User { apiTokens { id } } } }",
         {"id": u}, lambda b: path(b, "node", "apiTokens") is not None),
        ("trainee's email", "trainee's own", "query($id: ID!) { node(id: $id) { ... on User { email } } }",
         {"id": u}, lambda b: path(b, "node", "email") is not None),
        ("trainee's role and KYC status", "trainee's profile",
         "query($id: ID!) { node(id: $id) { ... on User { role kycStatus } } }",
         {"id": u}, lambda b: path(b, "node", "kycStatus") is not None),
        ("trainee's application by node", "trainee's own",
         "query($id: ID!) { node(id: $id) { ... on KycApplication { id details } } }",
         {"id": k}, lambda b: seen_by_id(b, "node")),
        ("applications in a list", "platform", "{ kycApplications(first: 100) { edges { node { id } } } }", {},
         lambda b: k in ids(b, "kycApplications")),
    ]


async def build_world(gql, db, make_organization, make_user):
    team = await make_organization(members=3)
    trainee, manager, member = team.members
    await db.execute("UPDATE users SET role = 'manager' WHERE id = $1", manager.raw_id)
    rival = await make_organization("Rival Motors")
    platform_admin = await make_user("admin")
    scenario = await explorer_scenario(gql, db, team.admin)
    started = await gql(START, {"id": scenario["id"]}, token=trainee.token)
    session_id = started["data"]["startTrainingSession"]["session"]["id"]
    await gql(APPEND, {"id": session_id, "role": "trainee", "text": "Welcome in"}, token=trainee.token)
    organization = (await gql("{ me { organization { id } } }", token=team.admin.token)
                    )["data"]["me"]["organization"]["id"]
    applied = await gql(SUBMIT_KYC, {"input": KYC}, token=trainee.token)
    assert applied["data"]["submitKyc"]["userErrors"] == [], applied
    listed = await gql("{ kycApplications(first: 1) { edges { node { id } } } }", token=platform_admin.token)
    application = listed["data"]["kycApplications"]["edges"][0]["node"]["id"]
    actors = {"trainee": trainee, "org admin": team.admin, "manager": manager, "member": member,
              "rival admin": rival.admin, "platform admin": platform_admin, "guest": None}
    return World(session_id, scenario["id"], organization, trainee.id, application), team, actors


# Who may see what: the session is its trainee's and their organization's managers'; the
# scenario and the organization are its members'; the trainee's email, wallet, tokens and
# application are theirs (and platform admins'), their role and KYC status staff's too.
MEMBERS = {"trainee", "org admin", "manager", "member"}
MAY_SEE = {
    "session": {"trainee", "org admin", "manager", "platform admin"},
    "organization": MEMBERS | {"platform admin"},
    "member of it": MEMBERS,
    "trainee's own": {"trainee", "platform admin"},
    "trainee's profile": {"trainee", "manager", "platform admin"},  # staff (a platform role)
    "platform": {"platform admin"},
}
THROUGH_THE_ORGANIZATION = {"session", "organization", "member of it"}


def expected(whose: str, actor: str, removed: frozenset = frozenset()) -> bool:
    """`removed`: those who have left the organization, and with it what they saw through it."""
    return actor in MAY_SEE[whose] and not (actor in removed and whose in THROUGH_THE_ORGANIZATION)


async def walk(server, gql, world, actors, sockets, removed=frozenset()):
    wrong = []
    for actor, account in actors.items():
        token = account.token if account else None
        for what, whose, query, variables, seen in reaches(world):
            want = expected(whose, actor, removed)
            for transport, run in (("http", lambda q, v, token=token: gql(q, v, token=token)), ("ws", sockets[actor])):
                body = await run(query, variables)
                if seen(body) != want:
                    wrong.append((actor, what, transport, body))
        for protocol in ("graphql-transport-ws", "graphql-ws"):
            body = await first_event(server.ws_url, token, protocol, world.session)
            got = path(body, "trainingSessionEvents") is not None
            if got != expected("session", actor, removed):
                wrong.append((actor, "session events", protocol, body))
    assert wrong == []


async def test_every_owned_object_by_every_path_and_transport(server, gql, db, make_organization, make_user):
    world, team, actors = await build_world(gql, db, make_organization, make_user)
    sockets = {actor: await Socket.open(server.ws_url, account.token if account else None)
               for actor, account in actors.items()}
    try:
        await walk(server, gql, world, actors, sockets)
        # The manager and the member leave the organization; their sockets stay open.
        for leaving in ("manager", "member"):
            body = await gql(REMOVE, {"id": actors[leaving].id}, token=team.admin.token)
            assert body["data"]["removeOrganizationMember"]["userErrors"] == []
        await asyncio.sleep(0.3)  # the announcement reaches the open sockets
        await walk(server, gql, world, actors, sockets, removed=frozenset({"manager", "member"}))
    finally:
        for socket in sockets.values():
            await socket.ws.close()
