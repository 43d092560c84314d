"""GraphQL over HTTP: status codes, error bodies, GraphiQL, health and body limits."""


import httpx

from tests.conftest import make_settings
from tests.harness import LiveServer


async def test_typename_and_cost_extension(gql):
    response = await gql.post("{ __typename }")
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"__typename": "Query"}
    assert body["extensions"]["cost"]["maximumAvailable"] == 5000


async def test_graphiql_renders_for_browsers(gql):
    response = await gql.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_query_over_get(gql):
    response = await gql.http.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}


async def test_malformed_json_is_400(gql):
    response = await gql.http.post("/graphql", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_missing_query_is_400(gql):
    response = await gql.http.post("/graphql", json={"variables": {}})
    assert response.status_code == 400
    assert "errors" in response.json()


async def test_parse_error_is_400_without_data(gql):
    response = await gql.post("{ me { id ")
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_validation_error_is_422(gql):
    response = await gql.post("{ noSuchField }")
    assert response.status_code == 422
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_mutation_over_get_is_405(gql):
    response = await gql.http.get(
        "/graphql", params={"query": 'mutation { login(input: {email: "a@b.c", password: "x"}) { accessToken } }'}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_bad_variable_is_400_bad_user_input(gql):
    response = await gql.post(
        "query($first: Int) { kycApplications(first: $first) { totalCount } }", {"first": "ten"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_bad_bearer_token_is_401(gql):
    response = await gql.post("{ me { id } }", token="not-a-token")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_wrong_auth_scheme_is_401(gql):
    response = await gql.http.post("/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": "Basic abc"})
    assert response.status_code == 401


async def test_guest_me_is_null(gql):
    body = await gql("{ me { id } }")
    assert body["data"] == {"me": None} and "errors" not in body


async def test_health_reports_database_and_broadcast(gql):
    response = await gql.http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["broadcast"] == {"backend": "memory", "status": "ok"}
    assert body["version"] and body["uptimeSeconds"] >= 0


async def test_health_degrades_when_redis_goes_away(tmp_path, database_url, clock):
    from tests.harness import RedisServer

    redis_server = RedisServer()
    live = LiveServer(make_settings(tmp_path, REDIS_URL=redis_server.url), database_url, clock).start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            assert (await client.get("/health")).json()["broadcast"]["status"] == "ok"
            redis_server.stop()
            response = await client.get("/health")
            assert response.status_code == 503
            body = response.json()
            assert body["status"] == "degraded"
            assert body["broadcast"] == {"backend": "redis", "status": "unavailable"}
            assert body["database"]["status"] == "ok"
    finally:
        live.stop()
        redis_server.stop()


async def test_oversized_body_is_413(tmp_path, database_url, clock):
    live = LiveServer(make_settings(tmp_path, MAX_BODY_BYTES=10_000), database_url, clock).start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            big = {"query": "{ __typename }", "variables": {"pad": "x" * 20_000}}
            response = await client.post("/graphql", json=big)
            assert response.status_code == 413
            assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    finally:
        live.stop()


async def test_unexpected_errors_are_masked(monkeypatch, gql, make_user):
    """An internal failure shows no details to the client but keeps a code."""
    from forecourt.resolvers import identity

    async def broken(ctx):
        raise RuntimeError("secret connection string postgres://admin:pw@db")

    monkeypatch.setattr(identity, "me", broken)
    account = await make_user()
    body = await gql("{ me { id } }", token=account.token)
    error = body["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL"
    assert "secret" not in str(body)

