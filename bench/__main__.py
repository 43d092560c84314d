"""Benchmarks: each result is a ratio against a baseline measured in the same run.

    make bench            (or: .venv/bin/python -m bench [--seconds 5])

1. vehicles(first: N) with catalogEntry, activeAuction, listedBy and latestValuation through
   GraphQL over HTTP, against a hand-written asyncpg + orjson endpoint returning the same JSON
   (checked before timing).
2. importVehicles with 10,000 rows end to end through HTTP (the call returning: rows committed
   and visible to `similar`), then how long the vector index takes to catch up after it (the
   server's vector-index job, kicked by the import's commit); its write stage against a raw
   asyncpg COPY of the same rows: into a bare temporary table (the target's baseline), a bare
   logged table, and `vehicles` itself (same indexes, and the ids queued for the index as an
   import queues them); the vector-index job alone on 10,000 queued rows, in-process; the HNSW
   index's own insert cost; with and without the HNSW index on the indexed vector copies.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import asyncpg
import httpx

from forecourt.db.engine import plain_url
from tests.harness import EmbeddedPostgres, free_port

VEHICLES = """query($first: Int) { vehicles(first: $first) { edges { node {
  id vin make model year price status
  catalogEntry { id make model bodyType } activeAuction { currentPrice bidCount }
  listedBy { id displayName } latestValuation { marketValue signal } } } } }"""
AUCTIONS = """
INSERT INTO auctions (id, vehicle_id, seller_id, created_by, status, start_price, current_price,
                      start_time, end_time, original_end_time, bid_count, bidder_count)
SELECT gen_random_uuid(), id, listed_by, listed_by, 'live', price, CASE WHEN n % 2 = 0 THEN price + 50000 END,
       now() - interval '1 hour', now() + interval '7 days', now() + interval '7 days',
       CASE WHEN n % 2 = 0 THEN n % 7 + 1 ELSE 0 END, CASE WHEN n % 2 = 0 THEN 1 ELSE 0 END
FROM (SELECT id, listed_by, coalesce(price, 1000000) AS price, row_number() OVER (ORDER BY id) AS n
      FROM vehicles WHERE listed_by IS NOT NULL) v
WHERE n % 3 = 0
"""
IMPORT = """mutation($input: ImportVehiclesInput!) { importVehicles(input: $input) { created updated failed } }"""


def start(kind: str, database_url: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # The vector-index job runs when an import commits (what the import bench measures) and
    # not on a timer in between: the bench indexes the rows it writes itself.
    env = {**os.environ, "VECTOR_INDEX_INTERVAL_SECONDS": "3600"}
    proc = subprocess.Popen([sys.executable, "-m", "bench.serve", kind, str(port), database_url, data_dir],
                            env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/health" if kind == "graphql" else url + "/vehicles?first=1", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{kind} server did not start")


async def throughput(request, seconds: float, concurrency: int = 8) -> float:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        await request(client)  # warm caches
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                response = await request(client)
                assert response.status_code == 200, response.text[:300]
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return done / (time.perf_counter() - started)


async def seed_inventory(database_url: str, data_dir: str) -> None:
    from forecourt.auth.credentials import Credentials
    from forecourt.config import Settings
    from forecourt.db.engine import create_engine, session_factory
    from forecourt.schema.context import utc_now
    from forecourt.services import Work
    from forecourt.services.seed import seed
    from forecourt.services.valuation import revalue_stale
    from forecourt.subscriptions.outbox import Outbox

    settings = Settings(FORECOURT_ENV="test", FORECOURT_DATA_DIR=data_dir, JWT_SECRET="b" * 40)
    engine = create_engine(database_url, pool_size=1)
    async with session_factory(engine)() as session:
        work = Work(session, Outbox(), utc_now())
        await seed(work, Credentials.from_settings(settings), vehicles=600)
        while await revalue_stale(work, 200):
            pass
        # every third vehicle is in a live auction, some with bids
        await session.execute(__import__("sqlalchemy").text(AUCTIONS))
        await session.commit()
    await engine.dispose()


async def dealer_token(url: str, database_url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as client:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        body = (await client.post("/graphql", json={"query": """mutation($e: String!) {
            register(input: {email: $e, password: "Bench1234"}) { accessToken } }""",
            "variables": {"e": email}})).json()
    conn = await asyncpg.connect(plain_url(database_url))
    await conn.execute("UPDATE users SET role = 'dealer', kyc_status = 'approved' WHERE email = $1", email)
    await conn.close()
    return body["data"]["register"]["accessToken"]


def import_rows(n: int, offset: int) -> list[dict]:
    # The price follows the offset: each batch has feature vectors of its own (a vector equal to
    # one already indexed costs the HNSW index next to nothing, which flattered later batches).
    return [{"vin": f"BNCH{offset + i:013d}", "year": 2015 + i % 9, "make": "Toyota", "model": "Camry",
             "condition": "CLEAN", "price": f"{5_000_000 + offset + i}.00", "mileageKm": 10 * i,
             "features": ["Sunroof", "Bluetooth"], "color": "Black", "location": "Lagos"}
            for i in range(n)]


async def write_stage(database_url: str, rows: list[dict], jobs: list[float]) -> float:
    """The import service in-process, timing only its set-wise write (`_write`: here one COPY
    into vehicles and one of the ids into the vector queue, as every VIN is new) (rows/s).
    Then the vector-index job on the rows it queued, in-process: its rows/s go to `jobs`."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from forecourt.auth.principal import Principal
    from forecourt.db.engine import create_engine, session_factory
    from forecourt.domain.catalog import ImportErrorPolicy, ImportMode, VehicleCondition
    from forecourt.domain.identity import KycStatus, Role
    from forecourt.services import Work
    from forecourt.services import catalog as service
    from forecourt.subscriptions.outbox import Outbox

    engine = create_engine(database_url, pool_size=1)
    timings = []
    original = service._write

    async def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            timings.append(time.perf_counter() - started)

    service._write = timed
    try:
        async with session_factory(engine)() as session:
            actor = await session.scalar(
                __import__("sqlalchemy").text("SELECT id FROM users WHERE role = 'dealer' LIMIT 1"))
            work = Work(session, Outbox(), datetime.now(UTC), Principal(actor, Role.DEALER, KycStatus.APPROVED))
            drafts = [service.VehicleDraft(
                vin=r["vin"], year=r["year"], make=r["make"], model=r["model"],
                condition=VehicleCondition(r["condition"].lower()), mileage_km=r["mileageKm"],
                price=Decimal(r["price"]), features=r["features"], color=r["color"], location=r["location"],
            ) for r in rows]
            result = await service.import_vehicles(work, drafts, mode=ImportMode.UPSERT,
                                                   policy=ImportErrorPolicy.REJECT_FAILED_ROWS, dry_run=False)
            assert result.created == len(rows)
            await session.commit()
        jobs.append(len(rows) / await index_queued(database_url, len(rows)))
    finally:
        service._write = original
        await engine.dispose()
    return len(rows) / timings[0]


async def index_queued(database_url: str, expected: int) -> float:
    """The vector-index job's batches on one connection until the queue is empty (seconds)."""
    from forecourt.services import vector_index

    conn = await asyncpg.connect(plain_url(database_url))
    try:
        started = time.perf_counter()
        done = await vector_index.index_all_queued(conn)
        elapsed = time.perf_counter() - started
        assert done == expected and not await vector_index.queued_count(conn), (done, expected)
        return elapsed
    finally:
        await conn.close()


async def copy_baseline(database_url: str, rows: list[dict], temporary: bool = True) -> float:
    """Raw asyncpg COPY of the same rows into a bare table shaped like vehicles: no indexes, no
    constraints; a temporary table (no WAL either) unless `temporary` is False (rows/s)."""
    conn = await asyncpg.connect(plain_url(database_url))
    table = f"copy_target_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE {'TEMP ' if temporary else ''}TABLE {table} "
                           "(LIKE vehicles INCLUDING DEFAULTS INCLUDING GENERATED)")
        records = [(uuid.uuid4(), *_copy_values(r)) for r in rows]
        started = time.perf_counter()
        await conn.copy_records_to_table(table, records=records, columns=["id", *COPY_COLUMNS])
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()


COPY_COLUMNS = ["vin", "year", "make", "model", "condition", "mileage_km", "color", "price", "features", "location"]


def _copy_values(r: dict) -> tuple:
    from decimal import Decimal

    return (r["vin"], r["year"], r["make"], r["model"], r["condition"].lower(), r["mileageKm"], r["color"],
            Decimal(r["price"]), r["features"], r["location"])


def _vectors(rows: list[dict]) -> list[list[float]]:
    from datetime import UTC, datetime
    from decimal import Decimal

    from forecourt.domain.catalog import VehicleCondition, VehicleFacts, feature_vector

    year = datetime.now(UTC).year
    return [feature_vector(VehicleFacts(
        price=Decimal(r["price"]), year=r["year"], mileage_km=r["mileageKm"], horsepower=None,
        condition=VehicleCondition(r["condition"].lower()), body_type=None, fuel_type=None, drivetrain=None,
    ), reference_year=year) for r in rows]


async def copy_into_vehicles(database_url: str, rows: list[dict]) -> float:
    """Raw asyncpg COPY of the same rows, with their feature vectors, into `vehicles` itself,
    and of their ids into the vector queue, in one transaction: the least any import can do
    with the same indexes (rows/s). The rows are then indexed (untimed)."""
    from pgvector.asyncpg import register_vector

    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await register_vector(conn)
        dealer = await conn.fetchval("SELECT id FROM users WHERE role = 'dealer' LIMIT 1")
        records = [(uuid.uuid4(), *_copy_values(r), vector, dealer)
                   for r, vector in zip(rows, _vectors(rows), strict=True)]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("vehicles", records=records,
                                             columns=["id", *COPY_COLUMNS, "feature_vector", "listed_by"])
            await conn.copy_records_to_table("vehicle_vector_queue", records=[(r[0],) for r in records])
        rate = len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()
    await index_queued(database_url, len(rows))
    return rate


async def hnsw_alone(database_url: str, rows: list[dict]) -> float:
    """The HNSW index's own cost: the rows' feature vectors COPYed into a table that has only
    that index (same definition), holding the vectors `vehicle_vectors` holds now (rows/s)."""
    from pgvector.asyncpg import register_vector

    conn = await asyncpg.connect(plain_url(database_url))
    table = f"hnsw_only_{uuid.uuid4().hex[:8]}"  # logged, as vehicles is: the index's WAL counts
    try:
        await register_vector(conn)
        definition = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_vehicle_vectors_feature_vector'")
        await conn.execute(f"CREATE TABLE {table} AS SELECT feature_vector FROM vehicle_vectors")
        await conn.execute(definition.replace("ix_vehicle_vectors_feature_vector", f"ix_{table}")
                           .replace("public.vehicle_vectors", table))
        records = [(vector,) for vector in _vectors(rows)]
        started = time.perf_counter()
        await conn.copy_records_to_table(table, records=records, columns=["feature_vector"])
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


async def main(seconds: float, pg: EmbeddedPostgres, only: str = "all", rounds: int = 3) -> None:
    data_dir = tempfile.mkdtemp()
    url = pg.url(await pg.create_database())
    await seed_inventory(url, data_dir)
    graphql, gurl = start("graphql", url, data_dir)
    baseline, burl = start("baseline", url, data_dir)
    try:
        if only in ("all", "list"):
            await vehicles_list(gurl, burl, seconds, rounds)
        if only in ("all", "import"):
            await imports(gurl, url, rounds)
    finally:
        graphql.terminate()
        baseline.terminate()
        graphql.wait()
        baseline.wait()


async def same_json(gurl: str, burl: str, first: int) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        ours = (await client.post(f"{gurl}/graphql", json={"query": VEHICLES, "variables": {"first": first}})).json()
        base = (await client.get(f"{burl}/vehicles", params={"first": first})).json()
    ours.pop("extensions", None)
    assert ours == base, "the baseline does not return the same JSON as the GraphQL query"
    assert any(e["node"]["activeAuction"] for e in ours["data"]["vehicles"]["edges"])


async def vehicles_list(gurl: str, burl: str, seconds: float, rounds: int = 3) -> None:
    """Baseline and GraphQL measured in alternation, `rounds` times each; the medians compared
    (the machine's speed drifts: two measurements taken far apart are not comparable)."""
    print(f"vehicles list (requests/s, 8 concurrent clients, median of {rounds} alternating rounds)")
    for first in (50, 500):
        await same_json(gurl, burl, first)
        bases, ours = [], []
        for _ in range(rounds):
            bases.append(await throughput(
                lambda c, f=first: c.get(f"{burl}/vehicles", params={"first": f}), seconds))
            ours.append(await throughput(lambda c, f=first: c.post(f"{gurl}/graphql", json={
                "query": VEHICLES, "variables": {"first": f}}), seconds))
        base, our = statistics.median(bases), statistics.median(ours)
        print(f"  first={first}: graphql {our:8.1f}  asyncpg baseline {base:8.1f}  ratio {our / base:.2f}"
              f"   (rounds: graphql {', '.join(f'{x:.0f}' for x in ours)}; "
              f"baseline {', '.join(f'{x:.0f}' for x in bases)})")


async def imports(gurl: str, url: str, rounds: int = 3) -> None:
    """Each measurement `rounds` times, in alternation, every batch with rows (and feature
    vectors) of its own; medians compared. With the HNSW index, then without it. Nothing runs
    while the vector index catches up after an import: the next measurement waits for it."""
    print(f"importVehicles, 10,000 rows (rows/s, median of {rounds} alternating rounds)")
    token = await dealer_token(gurl, url)
    conn = await asyncpg.connect(plain_url(url))
    offsets = iter(range(0, 10**7, 10_000))
    async with httpx.AsyncClient(timeout=300) as client:
        await client.post(f"{gurl}/graphql", headers={"Authorization": f"Bearer {token}"},  # warm-up
                          json={"query": IMPORT, "variables": {"input": {"rows": import_rows(100, 9_990_000)}}})
    await caught_up(conn)
    catch_up: list[float] = []  # seconds from an import's answer until its vectors are indexed
    until_indexed: list[float] = []  # rows/s from sending the import until its vectors are indexed
    jobs: list[float] = []  # the vector-index job alone, in-process, rows/s

    async def end_to_end() -> float:
        async with httpx.AsyncClient(timeout=300) as client:
            started = time.perf_counter()
            response = await client.post(f"{gurl}/graphql", headers={"Authorization": f"Bearer {token}"}, json={
                "query": IMPORT, "variables": {"input": {"rows": import_rows(10_000, next(offsets))}}})
            answered = time.perf_counter()
        assert response.json()["data"]["importVehicles"]["created"] == 10_000, response.text[:300]
        await caught_up(conn)
        indexed = time.perf_counter()
        catch_up.append(indexed - answered)
        until_indexed.append(10_000 / (indexed - started))
        return 10_000 / (answered - started)

    for label, index in (("with the HNSW index", True), ("without the vector index", False)):
        if not index:
            await conn.execute("DROP INDEX ix_vehicle_vectors_feature_vector")
        catch_up.clear()
        until_indexed.clear()
        jobs.clear()
        measures = {
            "end to end (HTTP)": end_to_end,
            "write stage": lambda: write_stage(url, import_rows(10_000, next(offsets)), jobs),
            "raw COPY, bare temporary table": lambda: copy_baseline(url, import_rows(10_000, next(offsets))),
            "raw COPY, bare logged table": lambda: copy_baseline(url, import_rows(10_000, next(offsets)), False),
            "raw COPY into vehicles + queue": lambda: copy_into_vehicles(url, import_rows(10_000, next(offsets))),
        }
        if index:
            measures["HNSW index alone"] = lambda: hnsw_alone(url, import_rows(10_000, next(offsets)))
        results: dict[str, list[float]] = {name: [] for name in measures}
        for _ in range(rounds):
            for name, measure in measures.items():
                results[name].append(await measure())
        results["index catch-up after the import"] = [10_000 / s for s in catch_up]
        results["import until indexed (HTTP)"] = until_indexed
        results["vector-index job alone"] = jobs
        median = {name: statistics.median(values) for name, values in results.items()}
        print(f"  {label} ({await conn.fetchval('SELECT count(*) FROM vehicles'):,} vehicles at the end):")
        for name, values in results.items():
            print(f"    {name:32s} {median[name]:8.0f}   (rounds: {', '.join(f'{x:.0f}' for x in values)})")
        print(f"    index catch-up after the import: {statistics.median(catch_up):.2f} s "
              f"(rounds: {', '.join(f'{x:.2f}' for x in catch_up)})")
        write = median["write stage"]
        raw = median["raw COPY into vehicles + queue"]
        print(f"    end to end / raw COPY into vehicles + queue: {median['end to end (HTTP)'] / raw:.2f}"
              f"; import until indexed / the same: {median['import until indexed (HTTP)'] / raw:.2f}")
        print("    write stage / raw COPY into a bare temporary table: "
              f"{write / median['raw COPY, bare temporary table']:.2f}"
              f"; / bare logged table: {write / median['raw COPY, bare logged table']:.2f}"
              f"; / raw COPY into vehicles + queue: {write / raw:.2f}")
    await conn.close()


async def caught_up(conn: asyncpg.Connection, timeout: float = 120) -> None:
    """Wait until the vector queue is empty (the server's job has indexed what was imported)."""
    deadline = time.perf_counter() + timeout
    while await conn.fetchval("SELECT EXISTS (SELECT FROM vehicle_vector_queue)"):
        if time.perf_counter() > deadline:
            raise RuntimeError("the vector index did not catch up")
        await asyncio.sleep(0.005)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", choices=("all", "list", "import"), default="all")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement")
    args = parser.parse_args()
    postgres = EmbeddedPostgres()  # starts (and migrates) outside the event loop
    try:
        asyncio.run(main(args.seconds, postgres, args.only, args.rounds))
    finally:
        postgres.stop()
