"""Schemathesis in GraphQL mode against the live server: every query and mutation of the schema,
as a guest, a user, a dealer and an admin, with a bounded, reproducible number of examples.

Every response must be below 500, be JSON, give every error an `extensions.code`, and leak no
internal detail (see `response_problems`). An INTERNAL error is a masked crash, so it fails too.

One server and one database (seeded with the demo catalog, a few vehicles, an auction, an
organization and the training presets) serve the whole module. Examples per operation:
FORECOURT_FUZZ_EXAMPLES (default 12); the data is derandomized, so a CI run is reproducible.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import graphql
import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

from forecourt import jobs
from forecourt.db.engine import plain_url
from forecourt.schema.relay import to_global_id
from forecourt.schema.root import build_schema
from forecourt.schema.scalars import MONEY_MAX
from tests.conftest import PASSWORD, REGISTER, make_settings
from tests.harness import Clock, LiveServer

EXAMPLES = int(os.environ.get("FORECOURT_FUZZ_EXAMPLES", "12"))
ROLES = ("guest", "user", "dealer", "admin")
# Valid documents as every role; invalid arguments (wrong types, missing fields: the validation
# path, where the role hardly matters) as a user and as an admin.
RUNS = [(GenerationMode.POSITIVE, role) for role in ROLES] + [
    (GenerationMode.NEGATIVE, role) for role in ("user", "admin")]

# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

# What an unmasked internal error looks like: a traceback, a driver or ORM name, an OS error,
# or the name of a Python exception class.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    "Errno",
    "forecourt/",
    "site-packages",
    "object has no attribute",
    "NoneType",
    "unexpected keyword argument",
    "positional argument",
)
PYTHON_EXCEPTIONS = re.compile(
    r"\b(?:[A-Z][A-Za-z]*(?:Error|Exception)|KeyError|StopIteration|StopAsyncIteration|"
    r"OverflowError|RecursionError|AssertionError|NotImplementedError|UnicodeDecodeError|"
    r"InvalidOperation|DataError|IntegrityError|ProgrammingError|InterfaceError)\b"
    r"|\bforecourt\.(?:schema|resolvers|services|domain|db|auth|loaders)\b"  # a module path
)
# Exception-like words that are legitimate in a message (graphql-core's own wording).
ALLOWED_WORDS = {"GraphQLError"}


def leaks(message: str) -> str | None:
    """The marker of internal detail `message` contains, if any."""
    for marker in LEAK_MARKERS:
        if marker.lower() in message.lower():
            return marker
    for match in PYTHON_EXCEPTIONS.finditer(message):
        if match.group(0) not in ALLOWED_WORDS:
            return match.group(0)
    return None


def response_problems(status: int, content_type: str, text: str) -> list[str]:
    """Everything wrong with one response to a generated operation (empty when it is fine)."""
    problems = []
    if status >= 500:
        problems.append(f"status {status}")
    try:
        body = json.loads(text)
    except ValueError:
        return [*problems, f"body is not JSON ({content_type}): {text[:200]!r}"]
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        return [*problems, f"not a GraphQL response: {text[:200]!r}"]
    for error in body.get("errors") or []:
        message = str(error.get("message", ""))
        code = (error.get("extensions") or {}).get("code")
        if not code:
            problems.append(f"error without extensions.code: {message[:200]!r}")
        elif code == "INTERNAL":
            problems.append(f"INTERNAL error (a masked crash) at {error.get('path')}")
        marker = leaks(message)
        if marker:
            problems.append(f"unmasked error ({marker}): {message[:300]!r}")
    return problems


def outcome(status: int, text: str) -> str:
    """A response in a word, for the summary: its status and first error code (or `data`)."""
    try:
        errors = json.loads(text).get("errors")
    except (ValueError, AttributeError):
        return f"{status} not-json"
    return f"{status} {(errors[0].get('extensions') or {}).get('code') if errors else 'data'}"


class ServerErrors(logging.Handler):
    """Keeps the tracebacks `forecourt.errors` logs, so a failure can show the real cause."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def drain(self) -> str:
        text = "\n".join(self.format(r) for r in self.records)
        self.records.clear()
        return text[-4000:]


# ---------------------------------------------------------------------------------------------
# The scalars: one strategy per custom scalar of the schema (and ID, to reach real objects)
# ---------------------------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)


def money() -> st.SearchStrategy:
    valid = st.decimals(min_value=-MONEY_MAX, max_value=MONEY_MAX, places=2, allow_nan=False,
                        allow_infinity=False).map(lambda d: f"{d:.2f}")
    plausible = st.integers(min_value=1, max_value=50_000_000).map(lambda n: f"{n}.00")
    edges = st.sampled_from(["0.00", "0.01", "-0.01", "1", "9999999999999.99", "10000000000000.00",
                             "1.005", "1e3", "NaN", "Infinity", "", " 12.50 ", "12,50", "-0"])
    return st.one_of(plausible, valid, edges).map(nodes.String)


def datetimes() -> st.SearchStrategy:
    near = st.integers(min_value=-24 * 60, max_value=30 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m))
    anywhere = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                            timezones=st.just(UTC))
    text = st.one_of(near, anywhere).map(lambda d: d.isoformat())
    edges = st.sampled_from(["2026-13-01T00:00:00Z", "not a date", "", "2026-01-01", "2026-01-01T00:00:00",
                             "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+00:00"])
    return st.one_of(text, text.map(lambda s: s.replace("+00:00", "Z")), edges).map(nodes.String)


def json_values() -> st.SearchStrategy:
    leaves = st.one_of(
        st.none().map(lambda _: nodes.Null),
        st.booleans().map(nodes.Boolean),
        st.integers(min_value=-(2**31), max_value=2**31 - 1).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False, width=32).map(nodes.Float),
        st.text(max_size=20).map(nodes.String),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(nodes.List),
            st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), children, max_size=3)
            .map(lambda d: nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
                                         for k, v in d.items()])),
        ),
        max_leaves=6,
    )


def ids(pool: list[str]) -> st.SearchStrategy:
    real = st.sampled_from(pool)
    typed = st.tuples(st.sampled_from(sorted({p.split(":")[0] for p in _decoded(pool)} | {"Nope"})),
                      st.one_of(st.uuids().map(str), st.text(max_size=12))).map(_encode)
    junk = st.one_of(st.text(max_size=30), st.uuids().map(str), st.sampled_from(["", "=", "Vm", "0", "-1"]))
    return st.one_of(real, real, typed, junk).map(nodes.String)


def _decoded(pool: list[str]) -> list[str]:
    import base64

    return [base64.b64decode(p).decode() for p in pool]


def _encode(parts: tuple[str, str]) -> str:
    import base64

    return base64.b64encode(f"{parts[0]}:{parts[1]}".encode()).decode()


# ---------------------------------------------------------------------------------------------
# The schema, loaded from the SDL the app builds (so tests can be parametrized per operation)
# ---------------------------------------------------------------------------------------------

_SETTINGS = make_settings(Path(tempfile.gettempdir()))
SDL = build_schema(_SETTINGS).as_str()
SCHEMA = schemathesis.graphql.from_file(SDL)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CUSTOM_SCALAR_NAMES = sorted(set(re.findall(r"^scalar (\w+)", SDL, flags=re.MULTILINE)))


# ---------------------------------------------------------------------------------------------
# The live server, its data, and one account per role
# ---------------------------------------------------------------------------------------------

# These end their caller's sessions: they run as accounts of their own, so the other
# operations keep theirs.
ENDS_SESSIONS = {"Mutation.changePassword", "Mutation.logout", "Mutation.logoutEverywhere"}


def _headers(tokens: dict[str, str | None]) -> dict[str, dict]:
    return {role: ({"Authorization": f"Bearer {t}"} if t else {}) for role, t in tokens.items()}


class Fuzz:
    def __init__(self, url: str, tokens: dict[str, str | None], spare_tokens: dict[str, str | None],
                 errors: ServerErrors) -> None:
        self.url = url + "/graphql"
        self.headers = _headers(tokens)
        self.spare_headers = _headers(spare_tokens)
        self.session = requests.Session()
        self.errors = errors
        self.cases = 0
        self.outcomes: Counter[str] = Counter()  # "200 data", "422 GRAPHQL_VALIDATION_FAILED", ...
        self.operations = 0
        self.started = time.monotonic()


class Summary:
    """Prints the one-line count at the end of the run (a plugin registered at teardown)."""

    def __init__(self, line: str) -> None:
        self.line = line

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(self.line)


async def _seed(settings, url: str) -> None:
    from forecourt.cli import _seed as seed_demo

    await seed_demo(settings, url, 12)


def _api(client: httpx.Client, query: str, variables: dict, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


async def _sql(url: str, *statements: tuple) -> list:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return [await conn.fetch(sql, *args) for sql, *args in statements]
    finally:
        await conn.close()


def _register(client: httpx.Client, url: str, role: str, kyc: str = "none") -> tuple[str, uuid.UUID]:
    email = f"fuzz-{role}-{uuid.uuid4().hex[:6]}@example.com"
    payload = _api(client, REGISTER, {"input": {"email": email, "password": PASSWORD}})["register"]
    assert payload["userErrors"] == [], payload
    (rows,) = asyncio.run(_sql(url, ("UPDATE users SET role = $1, kyc_status = $2 WHERE email = $3 RETURNING id",
                                     role, kyc, email)))
    return payload["accessToken"], rows[0]["id"]


ID_TYPES = {  # table -> global ID type
    "vehicles": "Vehicle", "auctions": "Auction", "bids": "Bid", "users": "User",
    "organizations": "Organization", "organization_invitations": "OrganizationInvitation",
    "vehicle_catalog": "CatalogEntry", "kyc_applications": "KycApplication", "scenarios": "Scenario",
    "buyer_personas": "BuyerPersona", "training_products": "TrainingProduct",
    "training_sessions": "TrainingSession", "api_tokens": "ApiToken", "transactions": "Transaction",
}


@pytest.fixture(scope="module")
def fuzz(postgres, request):
    database = asyncio.run(postgres.create_database())
    url = postgres.url(database)
    settings = make_settings(Path(tempfile.mkdtemp(prefix="forecourt-fuzz-")))
    asyncio.run(_seed(settings, url))
    errors = ServerErrors()
    logging.getLogger("forecourt").addHandler(errors)
    clock = Clock(NOW)
    server = LiveServer(settings, url, clock).start()
    saved_scalars = dict(CUSTOM_SCALARS)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            tokens: dict[str, str | None] = {"guest": None}
            tokens["user"], user_id = _register(client, url, "user", "approved")
            tokens["dealer"], _ = _register(client, url, "dealer", "approved")
            tokens["admin"], _ = _register(client, url, "admin")
            asyncio.run(_sql(url, (
                "INSERT INTO transactions (id, user_id, type, amount, balance_delta, held_delta, created_at) "
                "VALUES (gen_random_uuid(), $1, 'deposit', $2, $2, 0, now())", user_id, Decimal("100000000"))))
            _arrange(client, tokens, server)
            spare_tokens = {role: token and _register(client, url, role, "approved")[0]
                            for role, token in tokens.items()}
        tables = asyncio.run(_sql(url, *((f"SELECT id FROM {table} LIMIT 20",) for table in ID_TYPES)))
        pool = [to_global_id(kind, row["id"]) for kind, rows in zip(ID_TYPES.values(), tables, strict=True)
                for row in rows]
        for name, strategy in {"Money": money(), "DateTime": datetimes(), "JSON": json_values(),
                               "ID": ids(pool)}.items():
            schemathesis.graphql.scalar(name, strategy)
        state = Fuzz(server.url, tokens, spare_tokens, errors)
        yield state
        line = (f"fuzz_graphql: {state.cases} cases over {state.operations} operation runs "
                f"({len(OPERATIONS)} operations x {len(RUNS)} role/mode runs, max {EXAMPLES} examples each) "
                f"in {time.monotonic() - state.started:.0f}s; "
                f"outcomes: {dict(state.outcomes.most_common())}")
        request.config.pluginmanager.register(Summary(line), "fuzz-graphql-summary")
    finally:
        CUSTOM_SCALARS.clear()
        CUSTOM_SCALARS.update(saved_scalars)
        logging.getLogger("forecourt").removeHandler(errors)
        server.stop()
        asyncio.run(postgres.drop_database(database))


def _arrange(client: httpx.Client, tokens: dict[str, str | None], server: LiveServer) -> None:
    """A little of everything through the API: an organization, vehicles, a running auction, a bid."""
    org = _api(client, "mutation { createOrganization(input: {name: \"Fuzz Motors\"}) "
                       "{ organization { id } userErrors { code message } } }", {}, tokens["user"])
    assert org["createOrganization"]["userErrors"] == [], org
    vehicle_ids = []
    for n in range(2):
        created = _api(client, """mutation($input: CreateVehicleInput!) { createVehicle(input: $input) {
            vehicle { id } userErrors { code message } } }""", {"input": {
            "vin": f"1HGCM8263{n}A00{uuid.uuid4().int % 10**4:04d}", "year": 2019, "make": "Toyota",
            "model": "Camry", "condition": "CLEAN", "price": "8500000.00", "mileageKm": 60000}}, tokens["dealer"])
        assert created["createVehicle"]["userErrors"] == [], created
        vehicle_ids.append(created["createVehicle"]["vehicle"]["id"])
    now = NOW
    auction = _api(client, """mutation($input: CreateAuctionInput!) { createAuction(input: $input) {
        auction { id } userErrors { code message } } }""", {"input": {
        "vehicleId": vehicle_ids[0], "startPrice": "1000000.00", "bidIncrement": "50000.00",
        "startTime": now.isoformat(), "endTime": (now + timedelta(days=2)).isoformat()}}, tokens["dealer"])
    assert auction["createAuction"]["userErrors"] == [], auction
    loop = server.server.servers[0].get_loop()
    asyncio.run_coroutine_threadsafe(jobs.run_auctions(server.state), loop).result(30)  # it goes live
    bid = _api(client, """mutation($input: PlaceBidInput!) { placeBid(input: $input) {
        userErrors { code message } } }""", {"input": {
        "auctionId": auction["createAuction"]["auction"]["id"], "amount": "1000000.00"}}, tokens["user"])
    assert bid["placeBid"]["userErrors"] == [], bid


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, text, expected", [
    (200, '{"data": {"me": null}}', []),
    (200, '{"data": null, "errors": [{"message": "Sign in first", "extensions": {"code": "UNAUTHENTICATED"}}]}', []),
    (500, "Internal Server Error", ["status 500", "body is not JSON"]),
    (200, '{"data": null, "errors": [{"message": "boom"}]}', ["error without extensions.code"]),
    (200, '{"data": null, "errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL"}}]}',
     ["INTERNAL error"]),
    (400, '{"errors": [{"message": "KeyError: \'id\'", "extensions": {"code": "BAD_USER_INPUT"}}]}',
     ["unmasked error (KeyError)"]),
    (200, '{"errors": [{"message": "(sqlalchemy.dbapi.Error) <class \'asyncpg.exceptions.DataError\'>", '
          '"extensions": {"code": "BAD_USER_INPUT"}}]}', ["unmasked error (sqlalchemy)"]),
    (200, '{"errors": [{"message": "[Errno 111] Connection refused", "extensions": {"code": "X"}}]}',
     ["unmasked error (Errno)"]),
    (200, '{"errors": [{"message": "in forecourt.services.auctions", "extensions": {"code": "X"}}]}',
     ["unmasked error (forecourt.services)"]),
    (200, '{"errors": [{"message": "demo@forecourt.example.com is taken", "extensions": {"code": "X"}}]}', []),
])
def test_the_check_itself(status, text, expected):
    problems = response_problems(status, "application/json", text)
    assert len(problems) == len(expected) and all(p.startswith(e) for p, e in zip(problems, expected, strict=True)), \
        problems


def test_every_custom_scalar_has_a_strategy(fuzz):
    missing = [name for name in CUSTOM_SCALAR_NAMES if name not in CUSTOM_SCALARS]
    assert CUSTOM_SCALAR_NAMES and missing == []


def test_live_schema_matches_the_fuzzed_one(fuzz):
    """The operations fuzzed (built from the SDL at collection) are the live server's."""
    live = schemathesis.graphql.from_url(fuzz.url, headers=fuzz.headers["admin"])
    assert sorted(op.ok().label for op in live.get_all_operations()) == sorted(op.label for op in OPERATIONS)


@pytest.mark.parametrize("mode, role", RUNS, ids=[f"{mode.value}-{role}" for mode, role in RUNS])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_fuzz(fuzz, operation, mode, role):
    fuzz.operations += 1

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink],
              print_blob=False)
    def run(case):
        headers = (fuzz.spare_headers if operation.label in ENDS_SESSIONS else fuzz.headers)[role]
        response = case.call(base_url=fuzz.url, session=fuzz.session, headers=headers, timeout=30)
        fuzz.cases += 1
        text = response.content.decode("utf-8", "replace")
        problems = response_problems(response.status_code, response.headers.get("content-type", ""), text)
        fuzz.outcomes[outcome(response.status_code, text)] += 1
        if not problems:
            return
        raise AssertionError(
            f"{operation.label} as {role} ({mode.value}): {problems}\nquery: {case.body}\n"
            f"response {response.status_code}: {text[:1000]}\nserver log:\n{fuzz.errors.drain()}")

    run()
