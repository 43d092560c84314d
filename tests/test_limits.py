"""Depth, alias, token and cost limits; query length and response size."""

import json
import time

import orjson
from graphql import parse

from forecourt.config import Settings
from forecourt.schema.limits import COST_CEILING, operation_cost
from forecourt.schema.root import build_schema
from tests.conftest import make_settings
from tests.harness import GraphQLClient, LiveServer


async def test_depth_limit(tmp_path, database_url, clock):
    live = LiveServer(make_settings(tmp_path, MAX_QUERY_DEPTH=3), database_url, clock).start()
    client = GraphQLClient(live.url)
    try:
        ok = await client.post("{ me { organization { id } } }")
        assert ok.status_code == 200
        deep = await client.post("{ kycApplications { edges { node { applicant { organization { id } } } } } }")
        assert deep.status_code == 422
        error = deep.json()["errors"][0]
        assert error["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"
        assert "depth" in error["message"]
    finally:
        await client.close()
        live.stop()


async def test_alias_limit(gql):
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(16)) + " }"
    response = await gql.post(query)
    assert response.status_code == 422
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"
    fine = await gql.post("{ " + " ".join(f"a{i}: __typename" for i in range(15)) + " }")
    assert fine.status_code == 200


async def test_token_limit(gql):
    query = "{ " + " ".join("__typename" for _ in range(2100)) + " }"
    response = await gql.post(query)
    assert response.status_code == 400
    assert "tokens" in response.json()["errors"][0]["message"]


async def test_cost_budget(tmp_path, database_url, clock):
    live = LiveServer(make_settings(tmp_path, MAX_QUERY_COST=50), database_url, clock).start()
    client = GraphQLClient(live.url)
    try:
        query = "query($n: Int) { kycApplications(first: $n) { edges { node { id applicant { id } } } } }"
        small = await client.post(query, {"n": 5})
        # rejected for permissions (guest), but only after passing the cost check
        assert small.status_code == 200
        assert small.json()["extensions"]["cost"]["requestedQueryCost"] == 1 + 5 * (1 + 1 + 1)
        big = await client.post(query, {"n": 100})
        assert big.status_code == 422
        body = big.json()
        assert body["errors"][0]["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"
        assert "cost" in body["errors"][0]["message"]
        # costs are cached per document and page size: each size keeps its own
        for n, status, cost in ((5, 200, 16), (100, 422, None), (2, 200, 7), (5, 200, 16)):
            again = await client.post(query, {"n": n})
            assert again.status_code == status
            if cost is not None:
                assert again.json()["extensions"]["cost"]["requestedQueryCost"] == cost
    finally:
        await client.close()
        live.stop()


def test_cost_model():
    schema = build_schema(Settings(FORECOURT_ENV="test"))._schema
    cost = lambda q, v=None: operation_cost(schema, parse(q), None, v or {}, 20, 100)  # noqa: E731
    assert cost("{ __typename me { id displayName } }") == 1
    assert cost("{ me { organization { name } } }") == 2
    # default page size (20) when `first` is not given
    assert cost("{ kycApplications { edges { node { id } } } }") == 1 + 20 * 2
    assert cost("{ kycApplications(first: 2) { edges { node { id } } } }") == 1 + 2 * 2
    # fragments are followed
    assert cost("{ ...F } fragment F on Query { me { organization { id } } }") == 2
    # mutations cost more than reads
    assert cost('mutation { login(input: {email: "", password: ""}) { user { id } } }') == 11


# Costs through abstract types and fragments. Found by an attacker: `node(id:)` with an inline
# fragment on Vehicle was costed as 1 (a 238 MB answer to a 179-byte query).

SIMILAR_TWICE = "similar(first: 20) { similar(first: 20) { id } }"


def test_cost_follows_fragments_through_interfaces():
    schema = build_schema(Settings(FORECOURT_ENV="test"))._schema
    cost = lambda q: operation_cost(schema, parse(q), None, {}, 20, 100)  # noqa: E731
    direct = cost(f'{{ vehicle(id: "x") {{ {SIMILAR_TWICE} }} }}')
    assert direct == 1 + (1 + 20 * 1)
    # the argument's default (5) when none is given
    assert cost('{ vehicle(id: "x") { similar { similar { id } } } }') == 1 + (1 + 5 * 1)
    # an inline fragment on a concrete type under an interface field
    assert cost(f'{{ node(id: "x") {{ ... on Vehicle {{ {SIMILAR_TWICE} }} }} }}') == direct
    # a named fragment, and fragments nested in fragments (named in inline, inline in named)
    named = """{ node(id: "x") { ...V } }
        fragment V on Vehicle { similar(first: 20) { ...S } }
        fragment S on Node { ... on Vehicle { similar(first: 20) { id } } }"""
    assert cost(named) == direct
    nested_inline = f'{{ node(id: "x") {{ ... on Node {{ ... {{ ... on Vehicle {{ {SIMILAR_TWICE} }} }} }} }} }}'
    assert cost(nested_inline) == direct
    # an object is one of the possible types: the most expensive one is charged, not the sum
    either = """{ node(id: "x") {
        ... on Vehicle { similar(first: 3) { similar(first: 3) { id } } }
        ... on User { organization { id } } } }"""
    assert cost(either) == 1 + max(1 + 3 * 1, 1)
    # a fragment on another type never applies
    assert cost('{ vehicle(id: "x") { ... on Node { ... on User { organization { id } } } } }') == 1


ABSTRACT_SDL = """
interface Animal { name: String friends(first: Int): [Pet!]! }
type Dog implements Animal { name: String friends(first: Int): [Pet!]! owner: Dog }
type Cat implements Animal { name: String friends(first: Int): [Pet!]! }
union Pet = Dog | Cat
type Query { pet: Pet animal: Animal }
"""


def test_cost_follows_unions_and_fields_of_interfaces():
    from graphql import build_schema as build_sdl

    schema = build_sdl(ABSTRACT_SDL)
    cost = lambda q: operation_cost(schema, parse(q), None, {}, 20, 100)  # noqa: E731
    # a list field selected on the interface itself, multiplied by its own argument
    assert cost("{ animal { friends(first: 3) { ... on Dog { owner { name } } } } }") == 1 + 1 + 3 * 1
    # a union's members through inline and named fragments
    assert cost("{ pet { ... on Dog { owner { owner { name } } } } }") == 3
    assert cost("{ pet { ...D } } fragment D on Dog { owner { owner { name } } }") == 3
    assert cost("{ pet { ... on Animal { friends(first: 2) { ... on Dog { owner { name } } } } } }") == 1 + 1 + 2


def test_cost_saturates():
    schema = build_schema(Settings(FORECOURT_ENV="test"))._schema
    cost = lambda q: operation_cost(schema, parse(q), None, {}, 20, 100)  # noqa: E731
    # a page never holds more than MAX_PAGE_SIZE items, whatever `first` asks for
    assert cost("{ kycApplications(first: 2147483647) { edges { node { id } } } }") == 1 + 100 * 2
    assert cost('{ vehicle(id: "x") { similar(first: 2147483647) { id } } }') == 1 + 1
    # and the cost stops growing at a number every JSON reader carries exactly
    deep = "id"
    for _ in range(12):
        deep = f"similar(first: 100) {{ {deep} }}"
    assert cost(f'{{ vehicle(id: "x") {{ {deep} }} }}') == COST_CEILING == 2**53 - 1


async def test_cost_bypass_through_node_is_refused(gql):
    levels = "id"
    for _ in range(5):
        levels = f"similar(first: 20) {{ {levels} }}"
    for query in (
        f'{{ node(id: "VmVoaWNsZTox") {{ ... on Vehicle {{ {levels} }} }} }}',
        f'{{ node(id: "VmVoaWNsZTox") {{ ...V }} }} fragment V on Vehicle {{ {levels} }}',
    ):
        response = await gql.post(query)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"


async def test_cost_overflow_is_a_422(gql):
    levels = "id"
    for _ in range(4):
        levels = f"similar(first: 2147483647) {{ {levels} }}"
    for query in (f'{{ vehicle(id: "x") {{ {levels} }} }}', f'{{ node(id: "x") {{ ... on Vehicle {{ {levels} }} }} }}'):
        response = await gql.post(query)
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"
        assert body["extensions"]["cost"]["requestedQueryCost"] == 1 + (1 + 100 * (1 + 100 * (1 + 100)))


async def test_oversized_query_text_is_refused_before_lexing(gql):
    # 15 MB of whitespace and comments: under the body limit, far over the query length limit
    query = "{ __typename }" + (" " * 7_500_000) + ("#" + "x" * 7_499_998 + "\n")
    body = orjson.dumps({"query": query})
    started = time.perf_counter()
    response = await gql.http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 413, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_TOO_LARGE"
    assert "65536" in error["message"]
    assert elapsed < 1.0  # lexing it took 2.9 s
    # a named operation too (strawberry looks the name up before validation)
    named = {"query": "query Q { __typename }" + " " * 70_000, "operationName": "Q"}
    response = await gql.http.post("/graphql", json=named)
    assert response.status_code == 413, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"


async def test_oversized_query_text_is_refused_over_websocket(server):
    from tests.test_subscriptions import open_transport_ws, receive

    ws = await open_transport_ws(server.ws_url, None)
    try:
        assert (await receive(ws))["type"] == "connection_ack"
        query = "subscription { accountEvents { type } }" + " " * 70_000
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message = await receive(ws)
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_LARGE"
    finally:
        await ws.close()


async def test_oversized_response_is_refused(tmp_path, database_url, clock):
    live = LiveServer(make_settings(tmp_path, MAX_RESPONSE_BYTES=2000), database_url, clock).start()
    client = GraphQLClient(live.url)
    try:
        small = await client.post("{ __typename }")
        assert small.json()["data"] == {"__typename": "Query"}
        big = await client.post("{ __schema { types { name description } } }")
        assert len(big.content) < 2000
        body = big.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "RESPONSE_TOO_LARGE"
    finally:
        await client.close()
        live.stop()


async def test_fragments_spread_twice_at_each_level_are_measured_quickly(gql):
    # Each fragment spreads the next twice: 2^18 expansions of the last one. Strawberry's
    # depth and alias validators expanded them all (4 s here, 16 s at 20 levels).
    levels = 18
    fragments = " ".join(
        f"fragment F{i} on Vehicle {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)
    )
    query = f'{{ vehicle(id: "x") {{ ...F0 }} }} {fragments} fragment F{levels} on Vehicle {{ s: id }}'
    started = time.perf_counter()
    response = await gql.post(query)
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"
    assert error["message"] == f"{2**levels} aliases found. Allowed: 15"
