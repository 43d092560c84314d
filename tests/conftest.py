from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

import asyncpg
import pytest

from forecourt.config import Settings
from forecourt.db.engine import plain_url
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.stripe_server import FakeStripe
from tests.harness import (
    Clock,
    EmbeddedPostgres,
    GraphQLClient,
    LiveServer,
    RedisServer,
    ThreadServer,
)

PASSWORD = "Sup3rSecret!"
_emails = itertools.count(1)


@pytest.fixture(scope="session")
def postgres():
    pg = EmbeddedPostgres()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
async def database_url(postgres):
    name = await postgres.create_database()
    yield postgres.url(name)
    await postgres.drop_database(name)


@pytest.fixture
async def db(database_url):
    """A plain asyncpg connection to the test's database, for arranging and asserting."""
    conn = await asyncpg.connect(plain_url(database_url))
    yield conn
    await conn.close()


def make_settings(tmp_path, **overrides) -> Settings:
    values = {
        "FORECOURT_ENV": "test",
        "FORECOURT_DATA_DIR": str(tmp_path),
        "JWT_SECRET": "test-secret-" + "x" * 40,
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_KIB": 1024,
        "WS_KEEPALIVE_SECONDS": 8,
        # Tests send hundreds of requests from one address; test_rate_limits sets real limits.
        "RATE_LIMIT_IP_PER_MINUTE": 100_000,
        "RATE_LIMIT_USER_PER_MINUTE": 100_000,
        "RATE_LIMIT_CREDENTIALS_PER_MINUTE": 100_000,
        "REVALUE_INTERVAL_SECONDS": 0,  # tests run the jobs themselves, with the clock injected
        "AUCTION_JOB_INTERVAL_SECONDS": 0,
        "MINUTE_RENEWAL_INTERVAL_SECONDS": 0,
        "PRINCIPAL_CACHE_SECONDS": 0,  # tests change roles directly in the database
        "RESERVE_PROTECTION_INTERVAL_SECONDS": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_openai():
    """The local stand-in for the OpenAI API (tests/fakes/openai_server.py); its base URL is `.url`."""
    fake = FakeOpenAI()
    with ThreadServer(fake.app) as server:
        fake.url = server.url + "/v1"
        yield fake


@pytest.fixture
def stripe_api():
    """The local stand-in for the Stripe API (tests/fakes/stripe_server.py) at `.url`."""
    fake = FakeStripe()
    with ThreadServer(fake.app) as server:
        fake.url = server.url
        yield fake


@pytest.fixture
def server(settings, database_url, clock):
    live = LiveServer(settings, database_url, clock).start()
    yield live
    live.stop()


@pytest.fixture
async def gql(server):
    client = GraphQLClient(server.url)
    yield client
    await client.close()


REGISTER = """
mutation($input: RegisterInput!) {
  register(input: $input) {
    accessToken refreshToken user { id email role kycStatus }
    userErrors { field code message }
  }
}"""


class Account:
    def __init__(self, token: str, refresh: str, user_id: str, raw_id: uuid.UUID, email: str) -> None:
        self.token, self.refresh, self.id, self.raw_id, self.email = token, refresh, user_id, raw_id, email


@pytest.fixture
def make_user(gql, db):
    """Register a user through the API; give them a role (and approved KYC) directly."""

    async def make(role: str = "user", *, kyc: str | None = None) -> Account:
        email = f"user{next(_emails)}-{uuid.uuid4().hex[:6]}@example.com"
        body = await gql(REGISTER, {"input": {"email": email, "password": PASSWORD}})
        payload = body["data"]["register"]
        assert payload["userErrors"] == [], payload
        raw = await db.fetchval("SELECT id FROM users WHERE email = $1", email)
        if role != "user" or kyc:
            status = kyc or ("approved" if role in ("dealer", "verified_seller") else "none")
            await db.execute("UPDATE users SET role = $1, kyc_status = $2 WHERE id = $3", role, status, raw)
        return Account(payload["accessToken"], payload["refreshToken"], payload["user"]["id"], raw, email)

    return make


CREATE_ORGANIZATION = """mutation($name: String!) { createOrganization(input: {name: $name}) {
  organization { id } userErrors { code } } }"""


class OrganizationAccounts:
    """An organization founded through the API by `admin`, with `members` added to it."""

    def __init__(self, raw_id: uuid.UUID, admin: Account, members: list[Account]) -> None:
        from forecourt.schema.relay import to_global_id

        self.raw_id, self.id = raw_id, to_global_id("Organization", raw_id)
        self.admin, self.members = admin, members


@pytest.fixture
def make_organization(gql, make_user, db):
    async def make(name: str = "Lagos Motors", members: int = 1, plan: str = "free",
                   minutes: int | None = None) -> OrganizationAccounts:
        admin = await make_user("user")
        body = await gql(CREATE_ORGANIZATION, {"name": name}, token=admin.token)
        assert body["data"]["createOrganization"]["userErrors"] == [], body
        raw = await db.fetchval("SELECT organization_id FROM users WHERE id = $1", admin.raw_id)
        await db.execute("UPDATE organizations SET plan = $1 WHERE id = $2", plan, raw)
        if minutes is not None:
            await db.execute("UPDATE minute_quotas SET total_minutes = $1 WHERE organization_id = $2", minutes, raw)
        people = []
        for _ in range(members):
            member = await make_user("user")
            await db.execute("UPDATE users SET organization_id = $1, org_role = 'member' WHERE id = $2",
                             raw, member.raw_id)
            people.append(member)
        return OrganizationAccounts(raw, admin, people)

    return make


async def fund(db, account, amount) -> None:
    """Credit a user's wallet through the ledger (a deposit row; the trigger updates the wallet)."""
    await db.execute(
        "INSERT INTO transactions (id, user_id, type, amount, balance_delta, held_delta, created_at) "
        "VALUES (gen_random_uuid(), $1, 'deposit', $2, $2, 0, now())", account.raw_id, Decimal(amount))


@pytest.fixture
async def seller(make_user):
    return await make_user("dealer")


@pytest.fixture
async def alice(make_user, db):
    """A KYC-approved bidder with 100,000,000 in her wallet."""
    account = await make_user("user", kyc="approved")
    await fund(db, account, "100000000")
    return account


@pytest.fixture
async def bob(make_user, db):
    """Another KYC-approved bidder with 100,000,000."""
    account = await make_user("user", kyc="approved")
    await fund(db, account, "100000000")
    return account
