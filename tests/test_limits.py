"""Depth, alias, token and cost limits."""

from graphql import parse

from forecourt.config import Settings
from forecourt.schema.limits import operation_cost
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
    cost = lambda q, v=None: operation_cost(schema, parse(q), None, v or {}, 20)  # noqa: E731
    assert cost("{ __typename me { id displayName } }") == 1
    assert cost("{ me { organization { name } } }") == 2
    # default page size (20) when `first` is not given
    assert cost("{ kycApplications { edges { node { id } } } }") == 1 + 20 * 2
    assert cost("{ kycApplications(first: 2) { edges { node { id } } } }") == 1 + 2 * 2
    # fragments are followed
    assert cost("{ ...F } fragment F on Query { me { organization { id } } }") == 2
    # mutations cost more than reads
    assert cost('mutation { login(input: {email: "", password: ""}) { user { id } } }') == 11
