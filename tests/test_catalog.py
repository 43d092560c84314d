"""Catalog & inventory through the real API: listing, duplicate VINs, browsing, search,
pagination under concurrent inserts, similar vehicles, and statement counts."""

import asyncio
import uuid

import asyncpg
import pytest

from forecourt.schema.relay import from_global_id, to_global_id

CREATE = """mutation($input: CreateVehicleInput!) { createVehicle(input: $input) {
  vehicle { id vin year make model trim condition mileageKm price status features history
            catalogEntry { id bodyType } listedBy { id } }
  userErrors { field code message } } }"""

VEHICLES = """query($filter: VehicleFilter, $search: String, $orderBy: VehicleOrder, $first: Int, $after: String) {
  vehicles(filter: $filter, search: $search, orderBy: $orderBy, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id vin make model year price } } } }"""

_vins = iter(range(10**6))


def vin() -> str:
    n = next(_vins)
    return f"1HGCM{n:06d}A{uuid.uuid4().hex[:5].upper().replace('O', '0')}".replace("I", "1").replace("Q", "9")[:17]


async def add_catalog(db, make, model, year, body, fuel="petrol", drive="fwd", hp=150) -> uuid.UUID:
    return await db.fetchval(
        """INSERT INTO vehicle_catalog (id, make, model, year_start, body_type, fuel_type, drivetrain, horsepower,
           price_foreign_used, price_local_used, price_brand_new)
           VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7, 9000000, 7000000, 25000000) RETURNING id""",
        make, model, year, body, fuel, drive, hp,
    )


def vehicle_input(**over):
    return {"vin": vin(), "year": 2019, "make": "Toyota", "model": "Camry", "condition": "CLEAN",
            "price": "8500000.00", "mileageKm": 60000, **over}


@pytest.fixture
async def dealer(make_user):
    return await make_user("dealer")


async def create(gql, dealer, **over):
    body = await gql(CREATE, {"input": vehicle_input(**over)}, token=dealer.token)
    return body["data"]["createVehicle"]


async def test_dealer_lists_a_vehicle(gql, dealer, db):
    entry = await add_catalog(db, "Toyota", "Camry", 2018, "Sedan")
    payload = await create(gql, dealer, vin="jtdbe32k020123456", catalogEntryId=to_global_id("CatalogEntry", entry),
                           features=["Sunroof", "sunroof", "Leather seats"], trim="XLE")
    assert payload["userErrors"] == []
    v = payload["vehicle"]
    assert v["vin"] == "JTDBE32K020123456" and v["status"] == "AVAILABLE" and v["price"] == "8500000.00"
    assert v["features"] == ["Sunroof", "Leather seats"]
    assert v["catalogEntry"]["bodyType"] == "Sedan" and v["listedBy"]["id"] == dealer.id
    assert v["history"][0]["event"] == "listed"
    assert await db.fetchval("SELECT feature_vector IS NOT NULL FROM vehicles") is True
    # one vehicle is indexed in its own transaction: nothing pending
    assert await db.fetchval("SELECT v.feature_vector = vv.feature_vector FROM vehicles v "
                             "JOIN vehicle_vectors vv ON vv.vehicle_id = v.id") is True
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0


async def test_only_the_trade_may_list(gql, make_user, db):
    user = await make_user()
    body = await gql(CREATE, {"input": vehicle_input()}, token=user.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    guest = await gql(CREATE, {"input": vehicle_input()})
    assert guest["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 0


async def test_duplicate_vin_names_the_existing_vehicle(gql, dealer, db):
    first = await create(gql, dealer, vin="JTDBE32K020123456")
    again = await create(gql, dealer, vin="jtdbe32k020123456", make="Honda")
    error = again["userErrors"][0]
    assert error["code"] == "DUPLICATE_VIN" and error["field"] == ["input", "vin"]
    assert first["vehicle"]["id"] in error["message"]
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 1


async def test_concurrent_listings_of_one_vin_create_one_vehicle(gql, dealer, db):
    results = await asyncio.gather(*[create(gql, dealer, vin="JTDBE32K020999999") for _ in range(6)])
    assert sum(1 for r in results if not r["userErrors"]) == 1
    assert {r["userErrors"][0]["code"] for r in results if r["userErrors"]} == {"DUPLICATE_VIN"}
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 1


BAD = {
    "short vin": ({"vin": "JTDBE32K02012345"}, "INVALID_VIN"),
    "vin with O": ({"vin": "JTDBE32K0201234O5"[:17]}, "INVALID_VIN"),
    "vin with I": ({"vin": "ITDBE32K020123456"}, "INVALID_VIN"),
    "vin with Q": ({"vin": "QTDBE32K020123456"}, "INVALID_VIN"),
    "vin with symbols": ({"vin": "JTDBE32K0201234-6"}, "INVALID_VIN"),
    "sql vin": ({"vin": "'; DROP TABLE v;--"}, "INVALID_VIN"),
    "negative price": ({"price": "-1.00"}, "INVALID_PRICE"),
    "zero price": ({"price": "0"}, "INVALID_PRICE"),
    "ancient year": ({"year": 1800}, "INVALID_YEAR"),
    "future year": ({"year": 2999}, "INVALID_YEAR"),
    "negative mileage": ({"mileageKm": -5}, "INVALID_MILEAGE"),
    "1MB make": ({"make": "x" * 1_000_000}, "TOO_LONG"),
    "markup model": ({"model": "<img src=x>"}, "INVALID_CHARACTERS"),
    "too many features": ({"features": [f"f{i}" for i in range(51)]}, "TOO_MANY"),
    "http image": ({"images": ["http://insecure.example/a.jpg"]}, "INVALID_IMAGE"),
    "1MB description": ({"description": "x" * 1_000_000}, "TOO_LONG"),
    "unknown catalog entry": ({"catalogEntryId": to_global_id("CatalogEntry", uuid.uuid4())}, "NOT_FOUND"),
    "catalog id of another type": ({"catalogEntryId": to_global_id("User", uuid.uuid4())}, "INVALID_ID"),
}


@pytest.mark.parametrize("case", BAD, ids=str)
async def test_bad_vehicle_input_is_refused_and_writes_nothing(case, gql, dealer, db):
    over, code = BAD[case]
    payload = await create(gql, dealer, **over)
    assert payload["vehicle"] is None
    assert code in {e["code"] for e in payload["userErrors"]}, payload["userErrors"]
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 0


@pytest.mark.parametrize("over", [{"condition": "SHINY"}, {"price": 1.5}, {"year": "new"}], ids=str)
async def test_malformed_values_are_request_errors(over, gql, dealer, db):
    response = await gql.post(CREATE, {"input": vehicle_input(**over)}, token=dealer.token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 0


async def test_browse_filter_and_search(gql, dealer, db):
    suv = await add_catalog(db, "Toyota", "RAV4", 2019, "SUV", drive="awd")
    await create(gql, dealer, make="Toyota", model="RAV4", year=2020, price="15000000", catalogEntryId=to_global_id("CatalogEntry", suv),
                 features=["Panoramic roof"], condition="EXCELLENT")
    await create(gql, dealer, make="Toyota", model="Camry", year=2015, price="6000000", features=["Leather seats"])
    await create(gql, dealer, make="Honda", model="Accord", year=2018, price="9000000", condition="ROUGH",
                 description="One owner, full service history")
    archived = await create(gql, dealer, make="Honda", model="Civic", year=2017, price="5000000")
    await db.execute("UPDATE vehicles SET status = 'archived' WHERE vin = $1", archived["vehicle"]["vin"])

    async def makes(**variables):
        body = await gql(VEHICLES, variables)  # guests may browse
        conn = body["data"]["vehicles"]
        return sorted(e["node"]["model"] for e in conn["edges"]), conn["totalCount"]

    assert await makes() == (["Accord", "Camry", "RAV4"], 3)
    assert await makes(filter={"make": "toyota"}) == (["Camry", "RAV4"], 2)
    assert await makes(filter={"model": "ACCORD"}) == (["Accord"], 1)
    assert await makes(filter={"yearMin": 2018, "yearMax": 2019}) == (["Accord"], 1)
    assert await makes(filter={"priceMin": "6000000", "priceMax": "9000000"}) == (["Accord", "Camry"], 2)
    assert await makes(filter={"condition": ["EXCELLENT", "ROUGH"]}) == (["Accord", "RAV4"], 2)
    assert await makes(filter={"bodyType": "suv"}) == (["RAV4"], 1)
    assert await makes(filter={"features": ["Leather seats"]}) == (["Camry"], 1)
    assert await makes(filter={"status": ["ARCHIVED"]}) == (["Civic"], 1)
    assert await makes(search="panoramic") == (["RAV4"], 1)
    assert await makes(search="service history") == (["Accord"], 1)
    assert await makes(search="toyota -rav4") == (["Camry"], 1)

    ordered = await gql(VEHICLES, {"orderBy": "PRICE_ASC"})
    assert [e["node"]["model"] for e in ordered["data"]["vehicles"]["edges"]] == ["Camry", "Accord", "RAV4"]
    ordered = await gql(VEHICLES, {"orderBy": "YEAR_DESC"})
    assert [e["node"]["model"] for e in ordered["data"]["vehicles"]["edges"]] == ["RAV4", "Accord", "Camry"]
    ranked = await gql(VEHICLES, {"search": "toyota", "orderBy": "RELEVANCE"})
    assert len(ranked["data"]["vehicles"]["edges"]) == 2


async def test_zero_results_offer_the_nearest_match_and_its_similar(gql, dealer):
    await create(gql, dealer, make="Toyota", model="Corolla")
    await create(gql, dealer, make="Toyota", model="Camry")
    body = await gql("""{ vehicles(search: "Toyota Corola sport") { totalCount
        nearestMatch { model similar(first: 3) { model } } } }""")
    conn = body["data"]["vehicles"]
    assert conn["totalCount"] == 0
    assert conn["nearestMatch"]["model"] == "Corolla"
    assert [v["model"] for v in conn["nearestMatch"]["similar"]] == ["Camry"]


async def test_pagination_is_stable_under_concurrent_inserts(gql, dealer):
    for i in range(9):
        await create(gql, dealer, model=f"Model {i}")
    seen, after, inserted = [], None, 0
    while True:
        page = (await gql(VEHICLES, {"first": 4, "after": after}))["data"]["vehicles"]
        seen += [e["node"]["model"] for e in page["edges"]]
        await create(gql, dealer, model=f"Newer {inserted}")  # lands before the cursor: never seen
        inserted += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"Model {i}" for i in reversed(range(9))]


async def test_similar_prefers_the_same_kind_of_vehicle(gql, dealer, db):
    suv = to_global_id("CatalogEntry", await add_catalog(db, "Toyota", "RAV4", 2019, "SUV", drive="awd", hp=200))
    suv2 = to_global_id("CatalogEntry", await add_catalog(db, "Honda", "CR-V", 2019, "SUV", drive="awd", hp=190))
    sedan = to_global_id("CatalogEntry", await add_catalog(db, "Toyota", "Corolla", 2019, "Sedan", hp=130))
    coupe = to_global_id("CatalogEntry", await add_catalog(db, "Ford", "Mustang", 2019, "Coupe", drive="rwd", hp=450))
    target = await create(gql, dealer, make="Toyota", model="RAV4", catalogEntryId=suv, price="14000000")
    await create(gql, dealer, make="Honda", model="CR-V", catalogEntryId=suv2, price="13500000")
    await create(gql, dealer, make="Toyota", model="Corolla", catalogEntryId=sedan, price="7000000")
    await create(gql, dealer, make="Ford", model="Mustang", catalogEntryId=coupe, price="30000000")
    body = await gql("query($id: ID!) { vehicle(id: $id) { similar(first: 3) { model } } }",
                     {"id": target["vehicle"]["id"]})
    models = [v["model"] for v in body["data"]["vehicle"]["similar"]]
    assert models[0] == "CR-V" and "RAV4" not in models and len(models) == 3


async def test_vehicle_lookups(gql, dealer):
    made = await create(gql, dealer, vin="JTDBE32K020123456")
    by_vin = await gql('{ vehicleByVin(vin: " jtdbe32k020123456 ") { id } }')
    assert by_vin["data"]["vehicleByVin"]["id"] == made["vehicle"]["id"]
    assert (await gql('{ vehicleByVin(vin: "nope") { id } }'))["data"]["vehicleByVin"] is None
    assert (await gql('{ vehicle(id: "garbage") { id } }'))["data"]["vehicle"] is None
    node = await gql("query($id: ID!) { node(id: $id) { ... on Vehicle { vin } } }", {"id": made["vehicle"]["id"]})
    assert node["data"]["node"]["vin"] == "JTDBE32K020123456"


async def add_live_auction(db, vehicle_id: str, seller: uuid.UUID, *, bids: int = 0) -> None:
    """A live auction of a vehicle (global ID), arranged directly in the database."""
    await db.execute(
        """INSERT INTO auctions (id, vehicle_id, seller_id, created_by, status, start_price, current_price,
                                 start_time, end_time, original_end_time, bid_count, bidder_count)
           VALUES (gen_random_uuid(), $1, $2, $2, 'live', 5000000, $3, now() - interval '1 hour',
                   now() + interval '1 day', now() + interval '1 day', $4, $5)""",
        from_global_id(vehicle_id, "Vehicle")[1], seller, 5100000 if bids else None, bids, min(bids, 1),
    )


async def test_statements_do_not_grow_with_page_size(gql, dealer, db, server):
    entry = to_global_id("CatalogEntry", await add_catalog(db, "Toyota", "Camry", 2018, "Sedan"))
    for i in range(12):
        made = await create(gql, dealer, model=f"Camry {i}", catalogEntryId=entry if i % 2 else None)
        if i % 3 == 0:
            await add_live_auction(db, made["vehicle"]["id"], dealer.raw_id, bids=i % 2)
    query = """query($first: Int) { vehicles(first: $first) { totalCount edges { node {
        id vin catalogEntry { make bodyType } listedBy { id displayName } latestValuation { marketValue }
        activeAuction { currentPrice bidCount } features history
        similar(first: 3) { id catalogEntry { id } latestValuation { signal } activeAuction { bidCount } } } } } }"""
    counts = {}
    for first in (2, 12):
        server.statements.reset()
        body = await gql(query, {"first": first})
        edges = body["data"]["vehicles"]["edges"]
        assert len(edges) == first
        counts[first] = server.statements.count
    assert sum(1 for e in edges if e["node"]["activeAuction"]) == 4
    # never more for a bigger page (fewer when loaders find rows already fetched)
    assert counts[12] <= counts[2], counts


async def test_vehicles_are_never_deleted_and_history_only_grows(gql, dealer, db):
    await create(gql, dealer)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("DELETE FROM vehicles")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("UPDATE vehicles SET history = '[]'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("""UPDATE vehicles SET history = jsonb_set(history, '{0,event}', '"forged"')""")
    await db.execute("""UPDATE vehicles SET history = history || '[{"event": "price_changed"}]'""")
    assert await db.fetchval("SELECT jsonb_array_length(history) FROM vehicles") == 2
