"""Valuation through the API and the weekly re-valuation job (two processes, each vehicle once)."""

import asyncio

from forecourt.jobs import revalue_inventory
from tests.test_catalog import add_catalog, create

VALUATION = """query($input: ValuationInput!) { valuation(input: $input) {
  marketValue foreignUsed localUsed brandNew investmentScore signal comparables asOf stale
  depreciation { year value } } }"""
LATEST = """query($id: ID!) { vehicle(id: $id) { latestValuation { marketValue signal stale asOf comparables } } }"""


async def test_guest_valuation(gql, db, clock):
    await add_catalog(db, "Toyota", "Camry", 2018, "Sedan")
    body = await gql(VALUATION, {"input": {"make": "toyota", "model": "CAMRY", "year": 2020, "mileageKm": 50000,
                                           "condition": "EXCELLENT"}})
    v = body["data"]["valuation"]
    assert v["brandNew"] == "25000000.00" and v["localUsed"] == "7000000.00" and v["foreignUsed"] == "9000000.00"
    assert 0 < float(v["marketValue"]) < 25_000_000
    assert 1 <= v["investmentScore"] <= 10 and v["signal"] in ("BUY", "HOLD", "SELL")
    assert v["comparables"] == 1 and v["stale"] is False
    assert v["asOf"].startswith(clock.now.isoformat()[:19])
    values = [float(p["value"]) for p in v["depreciation"]]
    assert len(values) == 6 and values == sorted(values, reverse=True)


async def test_valuation_without_market_data_or_with_bad_input(gql):
    body = await gql(VALUATION, {"input": {"make": "Unknown", "model": "Car", "year": 2020}})
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "reason": "NO_MARKET_DATA"}
    body = await gql(VALUATION, {"input": {"make": "Toyota", "model": "Camry", "year": 1066}})
    assert body["errors"][0]["extensions"]["reason"] == "INVALID_YEAR"


async def test_revaluation_job_values_once_and_marks_stale(gql, db, make_user, server, clock):
    dealer = await make_user("dealer")
    await add_catalog(db, "Toyota", "Camry", 2018, "Sedan")
    made = [await create(gql, dealer, model="Camry", year=2019 + i % 3) for i in range(6)]
    await create(gql, dealer, make="Nobody", model="Knows")  # no market data: skipped, not fatal
    first = made[0]["vehicle"]["id"]
    assert (await gql(LATEST, {"id": first}))["data"]["vehicle"]["latestValuation"] is None

    state = server.state
    # two processes' worth of job runs at once: SKIP LOCKED gives each vehicle to one of them
    counts = await asyncio.gather(server.call(revalue_inventory, state), server.call(revalue_inventory, state))
    assert sum(counts) == 6
    assert await db.fetchval("SELECT count(*) FROM vehicle_valuations") == 6
    assert await db.fetchval("SELECT count(DISTINCT vehicle_id) FROM vehicle_valuations") == 6
    latest = (await gql(LATEST, {"id": first}))["data"]["vehicle"]["latestValuation"]
    assert latest["stale"] is False and latest["comparables"] == 6  # five other Camrys and the catalog

    assert await server.call(revalue_inventory, state) == 0  # nothing is due within the week
    clock.advance(days=8)
    assert (await gql(LATEST, {"id": first}))["data"]["vehicle"]["latestValuation"]["stale"] is True
    assert await server.call(revalue_inventory, state) == 6
    latest = (await gql(LATEST, {"id": first}))["data"]["vehicle"]["latestValuation"]
    assert latest["stale"] is False
    assert await db.fetchval("SELECT count(*) FROM vehicle_valuations") == 12
