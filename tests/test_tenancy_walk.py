"""Tenant isolation, walked: every object that belongs to a user or an organization, reached by
id, by `node`, by list and through nested fields, over HTTP and over both WebSocket protocols,
by everyone who may and may not see it — and again after a caller loses the right, on the
sockets they opened before."""

import asyncio
import itertools
import json
from dataclasses import dataclass

import websockets

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


def seen_by_id(body, field):
    return (body.get("data") or {}).get(field) is not None


def path(body, *keys):
    value = body.get("data")
    for key in keys:
        if value is None:
            return None
        value = value[key]
    return value


def reaches(world: World):
    """(what, query, variables, seen(body)) for every way to the world's objects."""
    s, c, o = world.session, world.scenario, world.organization
    return [
        ("session by id", "query($id: ID!) { trainingSession(id: $id) { id transcript { text } } }",
         {"id": s}, lambda b: seen_by_id(b, "trainingSession")),
        ("session by node", "query($id: ID!) { node(id: $id) { ... on TrainingSession { id transcript { text } } } }",
         {"id": s}, lambda b: seen_by_id(b, "node")),
        ("session in a list", "{ trainingSessions(first: 100) { edges { node { id } } } }", {},
         lambda b: s in [e["node"]["id"] for e in path(b, "trainingSessions", "edges") or []]),
        ("session's trainee and scenario (nested)",
         "query($id: ID!) { trainingSession(id: $id) { trainee { id } scenario { id } } }",
         {"id": s}, lambda b: path(b, "trainingSession", "trainee") is not None),
        ("scenario by node", "query($id: ID!) { node(id: $id) { ... on Scenario { id objections } } }",
         {"id": c}, lambda b: seen_by_id(b, "node")),
        ("scenario in a list", "{ scenarios(first: 100) { edges { node { id } } } }", {},
         lambda b: c in [e["node"]["id"] for e in path(b, "scenarios", "edges") or []]),
        ("organization by node",
         "query($id: ID!) { node(id: $id) { ... on Organization { id members { edges { node { id } } } } } }",
         {"id": o}, lambda b: seen_by_id(b, "node")),
        ("organization through me", "{ me { organization { id members { totalCount } billing { plan } } } }", {},
         lambda b: (path(b, "me", "organization") or {}).get("id") == o),
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
    actors = {"trainee": trainee, "org admin": team.admin, "manager": manager, "member": member,
              "rival admin": rival.admin, "platform admin": platform_admin, "guest": None}
    return World(session_id, scenario["id"], organization), team, actors


# Who may see what: the session is its trainee's and their organization's managers'; the
# scenario and the organization are its members'; platform admins see everything.
MAY_SEE = {
    "session": {"trainee", "org admin", "manager", "platform admin"},
    "scenario": {"trainee", "org admin", "manager", "member", "platform admin"},
    "organization": {"trainee", "org admin", "manager", "member", "platform admin"},
}


def expected(what: str, actor: str, removed: frozenset = frozenset()) -> bool:
    if what == "organization through me":  # one's own organization: members only
        return actor in MAY_SEE["organization"] - {"platform admin"} and actor not in removed
    return actor in MAY_SEE[what.split()[0].removesuffix("'s")] and actor not in removed


async def walk(server, gql, world, actors, sockets, removed=frozenset()):
    wrong = []
    for actor, account in actors.items():
        token = account.token if account else None
        for what, query, variables, seen in reaches(world):
            want = expected(what, actor, removed)
            for transport, run in (("http", lambda q, v: gql(q, v, token=token)), ("ws", sockets[actor])):
                body = await run(query, variables)
                if seen(body) != want:
                    wrong.append((actor, what, transport, body))
        for protocol in ("graphql-transport-ws", "graphql-ws"):
            body = await first_event(server.ws_url, token, protocol, world.session)
            got = path(body, "trainingSessionEvents") is not None
            if got != expected("session events", actor, removed):
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
