"""importVehicles: per-row validation, error policies, dry runs, upserts, idempotence, the
write path (COPY for new VINs, ON CONFLICT for listed ones and for VINs listed meanwhile) and
the feature vectors it writes."""

import asyncio
import json
import time

import asyncpg
import pytest

from forecourt.db.engine import plain_url
from forecourt.db.queries import catalog as queries
from forecourt.schema.relay import to_global_id
from tests.test_catalog import CREATE, add_catalog

IMPORT = """mutation($input: ImportVehiclesInput!) { importVehicles(input: $input) {
  created updated failed userErrors { field code message }
  rows { index created vehicle { id vin price } userErrors { field code message } } } }"""


def row(i: int, **over) -> dict:
    return {"vin": f"JTDBE32K{i:09d}", "year": 2015 + i % 8, "make": "Toyota", "model": f"Camry {i}",
            "condition": "CLEAN", "price": f"{5_000_000 + i}.00", "mileageKm": 10 * i, **over}


@pytest.fixture
async def dealer(make_user):
    return await make_user("dealer")


async def run(gql, token, rows, **options):
    body = await gql(IMPORT, {"input": {"rows": rows, **options}}, token=token)
    assert "errors" not in body, body
    return body["data"]["importVehicles"]


async def count(db):
    return await db.fetchval("SELECT count(*) FROM vehicles")


async def test_insert_rows_in_one_call(gql, dealer, db):
    entry = to_global_id("CatalogEntry", await add_catalog(db, "Toyota", "Camry", 2015, "Sedan"))
    result = await run(gql, dealer.token, [row(i, catalogEntryId=entry) for i in range(25)], mode="INSERT")
    assert (result["created"], result["updated"], result["failed"]) == (25, 0, 0)
    assert all(r["created"] and r["vehicle"]["vin"] == row(r["index"])["vin"] for r in result["rows"])
    assert await count(db) == 25
    assert await db.fetchval("SELECT count(*) FROM vehicles WHERE feature_vector IS NULL") == 0
    assert await db.fetchval("SELECT history->0->>'event' FROM vehicles LIMIT 1") == "imported"


async def test_bad_rows_are_reported_and_good_rows_written(gql, dealer, db):
    rows = [row(0), row(1, vin="BAD"), row(2, price="-5"), row(3), row(4, vin=row(0)["vin"]), row(5, year=1700)]
    result = await run(gql, dealer.token, rows)
    assert (result["created"], result["failed"]) == (2, 4)
    errors = {r["index"]: [e["code"] for e in r["userErrors"]] for r in result["rows"] if r["userErrors"]}
    assert errors == {1: ["INVALID_VIN"], 2: ["INVALID_PRICE"], 4: ["DUPLICATE_VIN_IN_IMPORT"], 5: ["INVALID_YEAR"]}
    assert result["rows"][1]["userErrors"][0]["field"] == ["input", "rows", "1", "vin"]
    assert await count(db) == 2


async def test_reject_everything_writes_nothing(gql, dealer, db):
    result = await run(gql, dealer.token, [row(0), row(1), row(2, vin="I" * 17)], errorPolicy="REJECT_EVERYTHING")
    assert (result["created"], result["failed"]) == (0, 1)
    assert await count(db) == 0


async def test_dry_run_reports_and_writes_nothing(gql, dealer, db):
    result = await run(gql, dealer.token, [row(0), row(1), row(2, vin="short")], dryRun=True)
    assert (result["created"], result["failed"]) == (2, 1)
    assert await count(db) == 0


async def test_upsert_is_idempotent_and_updates_only_what_changed(gql, dealer, db):
    rows = [row(i) for i in range(5)]
    first = await run(gql, dealer.token, rows)
    assert (first["created"], first["updated"]) == (5, 0)
    again = await run(gql, dealer.token, rows)
    assert (again["created"], again["updated"], again["failed"]) == (0, 0, 0)
    assert all(r["vehicle"] for r in again["rows"])
    assert await db.fetchval("SELECT max(jsonb_array_length(history)) FROM vehicles") == 1
    rows[2]["price"] = "1234567.00"
    changed = await run(gql, dealer.token, rows)
    assert (changed["created"], changed["updated"]) == (0, 1)
    assert changed["rows"][2]["vehicle"]["price"] == "1234567.00"
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 5


async def test_insert_mode_refuses_existing_vins(gql, dealer, db):
    await run(gql, dealer.token, [row(0)])
    result = await run(gql, dealer.token, [row(0), row(1)], mode="INSERT")
    assert result["rows"][0]["userErrors"][0]["code"] == "DUPLICATE_VIN"
    assert (result["created"], result["failed"]) == (1, 1)


async def test_a_dealer_cannot_overwrite_another_dealers_vehicle(gql, dealer, make_user, db):
    other = await make_user("dealer")
    await run(gql, other.token, [row(0)])
    result = await run(gql, dealer.token, [row(0, price="1.00")])
    assert result["rows"][0]["userErrors"][0]["code"] == "NOT_YOUR_VEHICLE"
    assert await db.fetchval("SELECT price FROM vehicles") == 5_000_000


async def test_vehicles_in_an_auction_are_locked(gql, dealer, db):
    await run(gql, dealer.token, [row(0)])
    await db.execute("UPDATE vehicles SET status = 'in_auction'")
    result = await run(gql, dealer.token, [row(0, price="1.00")])
    assert result["rows"][0]["userErrors"][0]["code"] == "VEHICLE_LOCKED"


async def test_too_many_rows_is_one_call_error(gql, dealer, db):
    body = await gql(IMPORT, {"input": {"rows": [row(i) for i in range(10_001)]}}, token=dealer.token)
    payload = body["data"]["importVehicles"]
    assert payload["userErrors"][0]["code"] == "TOO_MANY_ROWS" and payload["rows"] == []
    assert await count(db) == 0


async def test_only_dealers_and_staff_import(gql, make_user):
    user = await make_user("verified_seller")
    body = await gql(IMPORT, {"input": {"rows": [row(0)]}}, token=user.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_ten_thousand_rows(gql, dealer, db):
    rows = [row(i) for i in range(10_000)]
    started = time.perf_counter()
    result = await run(gql, dealer.token, rows)
    elapsed = time.perf_counter() - started
    assert result["created"] == 10_000 and result["failed"] == 0
    assert await count(db) == 10_000
    print(f"10,000-row import through HTTP: {elapsed:.2f}s ({10_000 / elapsed:,.0f} rows/s)")


async def test_new_and_listed_vins_in_one_import(gql, dealer, db):
    await run(gql, dealer.token, [row(i) for i in range(5)])
    rows = [row(i) for i in range(3, 8)]
    rows[0]["price"] = "1234567.00"  # VIN 3 changes, VIN 4 does not, 5-7 are new
    result = await run(gql, dealer.token, rows)
    assert (result["created"], result["updated"], result["failed"]) == (3, 1, 0)
    assert [r["created"] for r in result["rows"]] == [False, False, True, True, True]
    assert all(r["vehicle"]["vin"] == rows[r["index"]]["vin"] for r in result["rows"])
    assert await count(db) == 8
    history = await db.fetch("SELECT vin, history FROM vehicles ORDER BY vin")
    assert [len(json.loads(h)) for _, h in history] == [1, 1, 1, 2, 1, 1, 1, 1]


async def test_imported_vehicles_have_the_same_vectors_as_listed_ones_and_are_similar(gql, dealer, db):
    suv = to_global_id("CatalogEntry", await add_catalog(db, "Toyota", "RAV4", 2019, "SUV", drive="awd", hp=200))
    suv2 = to_global_id("CatalogEntry", await add_catalog(db, "Honda", "CR-V", 2019, "SUV", drive="awd", hp=190))
    sedan = to_global_id("CatalogEntry", await add_catalog(db, "Toyota", "Corolla", 2019, "Sedan", hp=130))
    rav4 = row(1, make="Toyota", model="RAV4", catalogEntryId=suv, price="14000000")
    listed = await gql(CREATE, {"input": {**rav4, "vin": row(0)["vin"]}}, token=dealer.token)
    assert listed["data"]["createVehicle"]["userErrors"] == []
    imported = await run(gql, dealer.token, [
        rav4,
        row(2, make="Honda", model="CR-V", catalogEntryId=suv2, price="13500000"),
        row(3, make="Toyota", model="Corolla", catalogEntryId=sedan, price="7000000"),
    ])
    assert imported["created"] == 3
    # the same facts give the same vector whether listed one by one (text) or imported (binary COPY)
    vectors = dict(await db.fetch("SELECT vin, feature_vector::text FROM vehicles"))
    assert vectors[row(0)["vin"]] == vectors[row(1)["vin"]] and None not in vectors.values()
    # imported vehicles find, and are found by, their neighbours
    query = "query($id: ID!) { vehicle(id: $id) { similar(first: 2) { vin } } }"
    body = await gql(query, {"id": imported["rows"][0]["vehicle"]["id"]})
    assert [v["vin"] for v in body["data"]["vehicle"]["similar"]] == [row(0)["vin"], row(2)["vin"]]
    body = await gql(query, {"id": listed["data"]["createVehicle"]["vehicle"]["id"]})
    assert [v["vin"] for v in body["data"]["vehicle"]["similar"]] == [row(1)["vin"], row(2)["vin"]]


async def import_while_a_rival_lists(gql, dealer, rival_dealer, database_url, db, vin, **options):
    """Run an import of rows 0-2 while another dealer lists `vin` in a transaction that commits
    only once the import waits for it: the import's check found the VIN free, its write meets it."""
    rival = await asyncpg.connect(plain_url(database_url))
    try:
        transaction = rival.transaction()
        await transaction.start()
        await rival.execute(
            "INSERT INTO vehicles (id, vin, year, make, model, listed_by) "
            "VALUES (gen_random_uuid(), $1, 2019, 'Honda', 'Civic', $2)", vin, rival_dealer.raw_id)
        importing = asyncio.create_task(run(gql, dealer.token, [row(0), row(1), row(2)], **options))
        for _ in range(400):
            if await db.fetchval("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND wait_event_type = 'Lock'"):
                break
            await asyncio.sleep(0.025)
        else:
            pytest.fail("the import never waited for the rival's VIN")
        await transaction.commit()
        return await importing
    finally:
        await rival.close()


@pytest.mark.parametrize("mode", ["INSERT", "UPSERT"])
async def test_a_vin_listed_by_another_dealer_while_the_import_writes(mode, gql, dealer, make_user, db, database_url):
    """The COPY meets the rival's VIN, the rows go through ON CONFLICT instead, and that row is
    reported, not written."""
    result = await import_while_a_rival_lists(gql, dealer, await make_user("dealer"), database_url, db,
                                              row(1)["vin"], mode=mode)
    assert (result["created"], result["updated"], result["failed"]) == (2, 0, 1)
    code = "DUPLICATE_VIN" if mode == "INSERT" else "NOT_YOUR_VEHICLE"
    assert [e["code"] for e in result["rows"][1]["userErrors"]] == [code]
    assert await db.fetchval("SELECT make FROM vehicles WHERE vin = $1", row(1)["vin"]) == "Honda"
    assert await db.fetchval("SELECT count(*) FROM vehicles WHERE feature_vector IS NOT NULL") == 2


async def test_a_vin_listed_meanwhile_rejects_everything_under_reject_everything(gql, dealer, make_user, db,
                                                                                database_url):
    result = await import_while_a_rival_lists(gql, dealer, await make_user("dealer"), database_url, db,
                                              row(1)["vin"], errorPolicy="REJECT_EVERYTHING")
    assert (result["created"], result["updated"], result["failed"]) == (0, 0, 1)
    assert not any(r["created"] or (r["vehicle"] and r["index"] != 1) for r in result["rows"])
    assert await count(db) == 1  # the rival's


async def test_binary_vectors_are_confined_to_the_block_even_when_a_statement_fails(db):
    await db.execute("CREATE TEMP TABLE vectors (v vector(3))")
    async with db.transaction():
        async with queries.binary_vectors(db):
            await db.copy_records_to_table("vectors", records=[([1.0, 2.0, 3.0],)])
            assert await db.fetchval("SELECT v FROM vectors") == [1.0, 2.0, 3.0]
        assert await db.fetchval("SELECT v FROM vectors") == "[1,2,3]"  # text again
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with queries.binary_vectors(db):
                await db.execute("SELECT 1 / 0")
        # the transaction is still usable and the codec was reset
        assert await db.fetchval("SELECT v FROM vectors") == "[1,2,3]"
