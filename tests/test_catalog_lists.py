"""The fast read path for lists of vehicles: relations and listing details loaded once per
page, the executor's short path, column pruning. Every answer must be exactly what the plain
strawberry/graphql-core execution and the per-vehicle DataLoaders give."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import asyncpg
import orjson
import pytest
from sqlalchemy.dialects import postgresql
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from forecourt.db.pagination import encode_cursor, page_statement
from forecourt.db.queries import catalog as queries
from forecourt.schema.context import Context
from forecourt.schema.execution import Executor
from forecourt.schema.relay import to_global_id
from forecourt.schema.root import build_schema
from tests.test_catalog import add_catalog, add_live_auction, create

NODE = """
  __typename id vin make model year price status condition mileageKm trim color location trustScore
  createdAt description features images history
  catalogEntry { __typename id make model bodyType specs priceBrandNew }
  listedBy { id displayName role }
  activeAuction { id status currentPrice bidCount minimumNextBid reserveMet isLeading }
  latestValuation { marketValue signal stale investmentScore depreciation { year value } }
"""

EVERYTHING = f"""query($first: Int) {{
  vehicles(first: $first) {{
    totalCount pageInfo {{ hasNextPage endCursor }}
    edges {{ cursor node {{ ...V similar(first: 2) {{ id vin catalogEntry {{ make }} activeAuction {{ bidCount }}
                                                 latestValuation {{ signal }} features }} }} }}
  }}
}}
fragment V on Vehicle {{ {NODE} }}"""

ALIASES_AND_DIRECTIVES = """query($skip: Boolean!) {
  a: vehicles(first: 3) { edges { node { id entry: catalogEntry { m: make } ... on Vehicle { vin }
    auction: activeAuction @skip(if: $skip) { price: currentPrice } latestValuation @include(if: $skip) { signal } } } }
  b: vehicles(first: 2) { edges { n: node { id, listedBy { displayName } } } }
}"""

AUCTIONS_WITH_VEHICLES = """{ auctions(first: 5) { edges { node { currentPrice vehicle {
  vin activeAuction { id } latestValuation { signal } catalogEntry { make } features } } } } }"""

GUARDED_IN_A_LIST = """{ vehicles(first: 3) { edges { node { id listedBy { id email } } } } }"""


@pytest.fixture
async def inventory(gql, db, make_user):
    """Vehicles with and without catalog entries, auctions (with and without bids) and
    valuations (one vehicle with two, the newest must win)."""
    dealer = await make_user("dealer")
    sedan = to_global_id("CatalogEntry", await add_catalog(db, "Toyota", "Camry", 2018, "Sedan"))
    ids = []
    for i in range(7):
        made = await create(gql, dealer, model=f"Camry {i}", catalogEntryId=sedan if i % 2 else None,
                            features=["Sunroof", f"Extra {i}"], description=f"number {i}")
        ids.append(made["vehicle"]["id"])
        if i % 3 == 0:
            await add_live_auction(db, made["vehicle"]["id"], dealer.raw_id, bids=i % 2)
    await db.execute(
        """INSERT INTO vehicle_valuations (id, vehicle_id, market_value, foreign_used, local_used, brand_new,
                                           investment_score, signal, depreciation, comparables, as_of)
           SELECT gen_random_uuid(), v.id, 8000000 + n, NULL, 7000000, 25000000, 6, s.signal,
                  '[{"year": 2027, "value": "7500000.00"}, {"year": 2028, "value": "7000000.00"}]'::jsonb, 3,
                  now() - s.age
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM vehicles) v
           CROSS JOIN (VALUES ('HOLD', interval '9 days'), ('BUY', interval '1 day')) AS s(signal, age)
           WHERE v.n % 2 = 1 OR s.signal = 'HOLD'""")
    return dealer, ids


async def run_both(server, query: str, variables: dict | None = None, token: str | None = None) -> list:
    """The operation through the plain strawberry executor and through Forecourt's, each on
    a fresh schema and context: [(data, errors), (data, errors)]."""
    state = server.state

    async def run(executor_class) -> tuple:
        schema = build_schema(state.settings)
        schema.execution_context_class = executor_class
        request = type("Request", (), {"client": None, "headers": {}})()
        ctx = Context(state, request, None)
        try:
            await ctx.authenticate(f"Bearer {token}" if token else None)
            result = await schema.execute(query, variables or {}, context_value=ctx)
        finally:
            await ctx.close()
        errors = sorted(
            (e.message, tuple(e.path or ()), orjson.dumps(e.extensions, option=orjson.OPT_SORT_KEYS))
            for e in result.errors or ()
        )
        # through JSON, as a client sees it (and as the response is serialised)
        return orjson.loads(orjson.dumps(result.data)), errors

    return [await server.call(run, StrawberryGraphQLCoreExecutionContext), await server.call(run, Executor)]


async def test_a_page_shows_exactly_what_each_vehicle_shows_alone(gql, inventory):
    dealer, _ = inventory
    body = await gql(EVERYTHING, {"first": 10}, token=dealer.token)
    assert "errors" not in body, body["errors"]
    edges = body["data"]["vehicles"]["edges"]
    assert len(edges) == 7
    nodes = [e["node"] for e in edges]
    assert sum(1 for n in nodes if n["activeAuction"]) == 3
    assert {n["latestValuation"]["signal"] for n in nodes} == {"BUY", "HOLD"}
    assert {n["latestValuation"]["stale"] for n in nodes} == {True, False}  # 9 days old, 1 day old
    assert all(n["latestValuation"]["depreciation"] == [{"year": 2027, "value": "7500000.00"},
                                                        {"year": 2028, "value": "7000000.00"}] for n in nodes)
    assert {n["catalogEntry"] is None for n in nodes} == {True, False}
    for node in nodes:
        alone = await gql(f"query($id: ID!) {{ vehicle(id: $id) {{ ...V similar(first: 2) {{ id vin "
                          f"catalogEntry {{ make }} activeAuction {{ bidCount }} latestValuation {{ signal }} "
                          f"features }} }} }} fragment V on Vehicle {{ {NODE} }}", {"id": node["id"]},
                          token=dealer.token)
        assert alone["data"]["vehicle"] == node


@pytest.mark.parametrize("guest", [True, False])
async def test_both_executors_give_the_same_answers(server, inventory, guest):
    dealer, ids = inventory
    token = None if guest else dealer.token
    for query, variables in [
        (EVERYTHING, {"first": 10}),
        (EVERYTHING, {"first": 0}),
        (ALIASES_AND_DIRECTIVES, {"skip": True}),
        (ALIASES_AND_DIRECTIVES, {"skip": False}),
        (GUARDED_IN_A_LIST, None),
        (f"query($id: ID!) {{ node(id: $id) {{ ... on Vehicle {{ {NODE} }} }} }}", {"id": ids[3]}),
        (AUCTIONS_WITH_VEHICLES, None),
    ]:
        plain, ours = await run_both(server, query, variables, token)
        assert ours == plain, query
        assert plain[0] and all(plain[0].values()), plain  # each root field answered


async def test_guarded_fields_in_a_list_are_still_checked(gql, inventory):
    dealer, _ = inventory
    body = await gql(GUARDED_IN_A_LIST)
    assert {e["extensions"]["code"] for e in body["errors"]} == {"UNAUTHENTICATED"}
    assert [e["path"][-1] for e in body["errors"]] == ["email"] * 3
    assert all(e["node"]["listedBy"] is None for e in body["data"]["vehicles"]["edges"])
    own = await gql(GUARDED_IN_A_LIST, token=dealer.token)  # the dealer listed them all
    assert "errors" not in own
    assert {e["node"]["listedBy"]["email"] for e in own["data"]["vehicles"]["edges"]} == {dealer.email}


async def test_a_page_reads_its_relations_in_one_statement(gql, inventory, server):
    query = """query($first: Int) { vehicles(first: $first) { edges { node {
        id features history catalogEntry { make } activeAuction { bidCount } listedBy { id }
        latestValuation { depreciation { value } } } } } }"""
    counts = {}
    for first in (2, 7):
        server.statements.reset()
        body = await gql(query, {"first": first})
        assert len(body["data"]["vehicles"]["edges"]) == first
        counts[first] = server.statements.count
    # the page, then its details, catalog entries, auctions, listers and valuations at once
    assert counts == {2: 2, 7: 2}, counts
    server.statements.reset()
    await gql("{ vehicles(first: 7) { edges { node { id vin price } } } }")
    assert server.statements.count == 1  # no relation asked for: nothing more read


async def test_a_list_reads_only_what_it_shows(gql, inventory, server):
    server.statements.reset()
    await gql("{ vehicles(first: 7) { edges { node { id latestValuation { signal } } } } }")
    page, valuations = server.statements.statements
    assert "history" not in page and "features" not in page
    assert "vehicle_valuations.depreciation" not in valuations  # the curve is not shown
    server.statements.reset()
    await gql("{ vehicles(first: 7) { edges { node { id latestValuation { depreciation { year } } } } } }")
    assert "vehicle_valuations.depreciation" in server.statements.statements[1]


async def test_reads_run_without_a_transaction(gql, inventory, monkeypatch):
    """The read path is autocommit: no BEGIN (and ROLLBACK) round trips around a query's
    statements, and no ping transaction when a connection is taken from the pool."""
    started = []
    original = asyncpg.transaction.Transaction.start

    async def start(self):
        started.append(self)
        return await original(self)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", start)
    for _ in range(3):
        body = await gql("{ vehicles(first: 3) { edges { node { id catalogEntry { make } latestValuation { signal } } } } }")
        assert "errors" not in body
    assert started == []
    dealer, _ = inventory
    await create(gql, dealer)  # a mutation still runs in a transaction
    assert started


@pytest.mark.parametrize(("order", "filters", "after"), [
    ("PRICE_ASC", {}, None),
    ("PRICE_DESC", {}, (D("25000.00"), "00000000-0000-0000-0000-000000000000")),
    ("PRICE_ASC", {"price_min": D("1000"), "price_max": D("2000")}, None),
])
async def test_price_pages_and_filters_use_the_price_index(db, order, filters, after):
    await db.execute("""INSERT INTO vehicles (id, vin, year, make, model, price)
        SELECT gen_random_uuid(), 'PRC' || lpad(g::text, 14, '0'), 2019, 'Toyota', 'X',
               CASE WHEN g % 7 <> 0 THEN g * 10 END
        FROM generate_series(1, 5000) g""")
    await db.execute("ANALYZE vehicles")
    keys, descending = queries.order_keys(order, None)
    cursor = encode_cursor([after[0], uuid.UUID(after[1])]) if after else None
    statement = page_statement(queries.filtered(queries.VehicleQuery(**filters)), keys, first=20,
                               after=cursor, descending=descending)
    text = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + text))
        assert "ix_vehicles_price" in plan and "Sort" not in plan, plan
        rows = await db.fetch(text)
    prices = [r["price"] for r in rows]
    assert len(rows) == 21  # a page and one more (is there a next page)
    if after:
        assert all((p or 0) < after[0] for p in prices)
    if filters:
        assert all(D("1000") <= p <= D("2000") for p in prices)
    expected = sorted(prices, key=lambda p: p or 0, reverse=descending)
    assert prices == expected
