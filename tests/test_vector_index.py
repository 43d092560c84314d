"""Feature vectors indexed after commit: imported vehicles are queued, the vector-index job
copies their vectors into the HNSW-indexed table, and `similar` is the same before and after
(pending vehicles are compared exactly). The job under concurrency, changed vectors, archived
vehicles, createVehicle, reindex, the kick after an import, and migration 0010 both ways."""

import asyncio
import uuid

import asyncpg
import pytest
from alembic import command

from forecourt.db.engine import plain_url
from forecourt.db.migrate import alembic_config
from forecourt.db.queries import catalog as queries
from forecourt.jobs import index_vectors
from forecourt.schema.relay import to_global_id
from forecourt.services import vector_index
from tests.conftest import make_settings
from tests.harness import LiveServer
from tests.test_catalog import add_catalog, create
from tests.test_import import IMPORT, row, run

SIMILAR = """{ vehicles(first: 100, orderBy: PRICE_ASC) { edges { node { vin similar(first: 5) { vin } } } } }"""
IN_STEP = """SELECT count(*) FROM vehicles v FULL JOIN vehicle_vectors vv ON vv.vehicle_id = v.id
             WHERE v.feature_vector IS DISTINCT FROM vv.feature_vector"""


@pytest.fixture
def settings(tmp_path):
    """The job off: tests run it themselves (and see the queue before it runs)."""
    return make_settings(tmp_path, VECTOR_INDEX_INTERVAL_SECONDS=0)


@pytest.fixture
async def dealer(make_user):
    return await make_user("dealer")


@pytest.fixture
async def job(database_url):
    """The job's batches on a connection of their own."""
    conn = await asyncpg.connect(plain_url(database_url))
    yield conn
    await conn.close()


async def similar(gql) -> dict[str, list[str]]:
    body = await gql(SIMILAR)
    assert "errors" not in body, body
    return {e["node"]["vin"]: [s["vin"] for s in e["node"]["similar"]] for e in body["data"]["vehicles"]["edges"]}


async def mixed_inventory(gql, dealer, db, listed: int = 12, imported: int = 24) -> list[dict]:
    """Vehicles listed one by one (indexed at once) and imported (queued), of several kinds."""
    kinds = [
        await add_catalog(db, "Toyota", "RAV4", 2019, "SUV", drive="awd", hp=200),
        await add_catalog(db, "Toyota", "Corolla", 2019, "Sedan", hp=130),
        await add_catalog(db, "Ford", "Mustang", 2019, "Coupe", drive="rwd", hp=450),
    ]
    for i in range(listed):
        made = await create(gql, dealer, model=f"Listed {i}", year=2012 + i % 10, mileageKm=5000 * i,
                            price=f"{4_000_000 + 700_000 * i}", catalogEntryId=to_global_id("CatalogEntry", kinds[i % 3]))
        assert made["userErrors"] == []
    rows = [row(100 + i, model=f"Imported {i}", year=2012 + i % 10, mileageKm=3000 * i,
                price=f"{4_200_000 + 350_000 * i}", catalogEntryId=to_global_id("CatalogEntry", kinds[(i + 1) % 3]))
            for i in range(imported)]
    result = await run(gql, dealer.token, rows)
    assert result["created"] == imported
    return rows


async def exact_neighbours(db, vin: str, k: int) -> list[str]:
    """k-NN by brute force over every listed vehicle's current vector (no text embeddings here)."""
    return [r["vin"] for r in await db.fetch(
        """SELECT n.vin FROM vehicles s, vehicles n
           WHERE s.vin = $1 AND n.id <> s.id AND n.status <> 'archived' AND n.feature_vector IS NOT NULL
           ORDER BY n.feature_vector <-> s.feature_vector, n.id LIMIT $2""", vin, k)]


async def test_imported_vehicles_are_similar_exactly_as_once_indexed(gql, dealer, db, job):
    rows = await mixed_inventory(gql, dealer, db)
    # the import queued its vehicles and indexed none; createVehicle indexed its own at once
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == len(rows)
    assert await db.fetchval("SELECT count(*) FROM vehicle_vectors") == 12
    assert not await db.fetchval("""SELECT count(*) FROM vehicle_vectors vv JOIN vehicle_vector_queue q
                                    USING (vehicle_id)""")
    before = await similar(gql)
    assert len(before) == 36 and all(len(found) == 5 for found in before.values())
    # pending vehicles are found (and find others) just as indexed ones are
    assert any(vin.startswith("JTDBE32K") for found in before.values() for vin in found)
    for vin in (rows[0]["vin"], rows[-1]["vin"], next(v for v in before if not v.startswith("JTDBE32K"))):
        assert before[vin] == await exact_neighbours(db, vin, 5)

    assert await vector_index.index_all_queued(job) == len(rows)
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0
    assert await db.fetchval(IN_STEP) == 0
    assert await similar(gql) == before  # the same vehicles, in the same order


async def test_the_job_is_idempotent_and_rewrites_no_unchanged_vector(gql, dealer, db, job):
    rows = await mixed_inventory(gql, dealer, db, listed=0, imported=10)
    assert await vector_index.index_all_queued(job) == 10
    versions = await db.fetch("SELECT vehicle_id, xmin::text FROM vehicle_vectors ORDER BY vehicle_id")
    assert await vector_index.index_all_queued(job) == 0
    # an import that changes nothing queues nothing; queued again without a change: dequeued,
    # and the indexed copies are left as they are (no new row versions, no HNSW inserts)
    assert (await run(gql, dealer.token, rows))["updated"] == 0
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0
    await vector_index.queue(job, [r["vehicle_id"] for r in versions])
    assert await vector_index.index_all_queued(job) == 10
    assert await db.fetch("SELECT vehicle_id, xmin::text FROM vehicle_vectors ORDER BY vehicle_id") == versions
    assert await db.fetchval(IN_STEP) == 0


async def test_two_jobs_at_once_neither_duplicate_nor_lose_vehicles(gql, dealer, db, database_url, job):
    await run(gql, dealer.token, [row(i) for i in range(2500)])
    queued = {r[0] for r in await db.fetch("SELECT vehicle_id FROM vehicle_vector_queue")}
    assert len(queued) == 2500
    other = await asyncpg.connect(plain_url(database_url))
    try:
        # one job holds a batch in an open transaction: the other skips it and does the rest
        async with other.transaction():
            held = {r[0] for r in await other.fetch(queries.INDEX_QUEUED, 1000)}
            rest = {r[0] for r in await job.fetch(queries.INDEX_QUEUED, 5000)}
            assert len(held) == 1000 and len(rest) == 1500 and not held & rest
        assert held | rest == queued
        assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0
        assert await db.fetchval(IN_STEP) == 0

        # and two whole jobs racing, batch by batch, over a queue of every vehicle
        await vector_index.queue(job, list(queued))
        counts = await asyncio.gather(vector_index.index_all_queued(job, 100),
                                      vector_index.index_all_queued(other, 100))
        assert sum(counts) == 2500
        assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0
        assert await db.fetchval("SELECT count(*) FROM vehicle_vectors") == 2500
        assert await db.fetchval(IN_STEP) == 0
    finally:
        await other.close()


async def test_a_changed_vector_is_pending_until_reindexed(gql, dealer, db, job):
    rows = await mixed_inventory(gql, dealer, db, listed=6, imported=12)
    await vector_index.index_all_queued(job)
    before = await similar(gql)
    # the cheapest import becomes the dearest: its indexed copy is stale until the job runs
    changed = {**rows[0], "price": "90000000.00", "year": 2024, "mileageKm": 0}
    assert (await run(gql, dealer.token, [changed]))["updated"] == 1
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 1
    assert await db.fetchval(IN_STEP) == 1
    pending = await similar(gql)
    assert pending != before
    assert pending[changed["vin"]] == await exact_neighbours(db, changed["vin"], 5)
    assert pending == {vin: await exact_neighbours(db, vin, 5) for vin in pending}
    assert await vector_index.index_all_queued(job) == 1
    assert await db.fetchval(IN_STEP) == 0
    assert await similar(gql) == pending


async def test_a_writer_waits_for_a_job_copying_the_old_vector(gql, dealer, db, database_url, job):
    """The job holds a queued vehicle while an import changes its vector: the import waits for
    the job (its locking ON CONFLICT), then queues the vehicle again; nothing is left stale."""
    first = row(1)
    await run(gql, dealer.token, [first])
    async with job.transaction():
        assert len(await job.fetch(queries.INDEX_QUEUED, 10)) == 1  # the old vector, not committed
        importing = asyncio.create_task(run(gql, dealer.token, [{**first, "price": "77000000.00"}]))
        for _ in range(400):
            if await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND wait_event_type = 'Lock'"):
                break
            await asyncio.sleep(0.025)
        else:
            pytest.fail("the import never waited for the job")
    assert (await importing)["updated"] == 1
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 1  # queued again
    assert await db.fetchval(IN_STEP) == 1  # the copy is the old vector: ignored while queued
    await vector_index.index_all_queued(job)
    assert await db.fetchval(IN_STEP) == 0


async def test_archived_vehicles_are_never_similar_pending_or_indexed(gql, dealer, db, job):
    rows = await mixed_inventory(gql, dealer, db, listed=6, imported=6)
    await db.execute("UPDATE vehicles SET status = 'archived' WHERE vin = ANY($1::text[])",
                     [rows[0]["vin"], rows[1]["vin"]])
    listed_archived = await db.fetchval("UPDATE vehicles SET status = 'archived' WHERE model = 'Listed 0' "
                                        "RETURNING vin")
    archived = {rows[0]["vin"], rows[1]["vin"], listed_archived}
    for _ in range(2):  # pending, then indexed
        found = await similar(gql)  # (archived vehicles are not listed, so not sources here)
        assert not archived & {vin for vins in found.values() for vin in vins}
        assert all(len(vins) == 5 for vins in found.values())
        await vector_index.index_all_queued(job)


async def test_the_job_runs_right_after_an_import_commits(tmp_path, database_url, clock, gql, dealer, db):
    """With an hour between ticks, only the kick after commit can have indexed the rows."""
    settings = make_settings(tmp_path, VECTOR_INDEX_INTERVAL_SECONDS=3600)
    with LiveServer(settings, database_url, clock) as live:
        await asyncio.sleep(0.2)  # the job's first tick has found nothing to do
        body = await gql.http.post(live.url + "/graphql", headers={"Authorization": f"Bearer {dealer.token}"},
                                   json={"query": IMPORT, "variables": {"input": {"rows": [row(i) for i in range(50)]}}})
        assert body.json()["data"]["importVehicles"]["created"] == 50
        for _ in range(200):
            if not await db.fetchval("SELECT count(*) FROM vehicle_vector_queue"):
                break
            await asyncio.sleep(0.025)
        else:
            pytest.fail("the import did not wake the vector-index job up")
        assert await db.fetchval("SELECT count(*) FROM vehicle_vectors") == 50
        assert await live.call(index_vectors, live.state) == 0


async def test_dry_runs_and_rejected_imports_queue_nothing(gql, dealer, db):
    await run(gql, dealer.token, [row(0), row(1)], dryRun=True)
    await run(gql, dealer.token, [row(0), row(1, vin="BAD")], errorPolicy="REJECT_EVERYTHING")
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0
    assert await db.fetchval("SELECT count(*) FROM vehicle_vectors") == 0


async def test_the_job_drops_what_it_cannot_index(gql, dealer, db, job):
    await run(gql, dealer.token, [row(0), row(1)])
    await vector_index.index_all_queued(job)
    gone = await db.fetchval("UPDATE vehicles SET feature_vector = NULL WHERE vin = $1 RETURNING id", row(0)["vin"])
    await vector_index.queue(job, [gone, uuid.uuid4()])  # and an id of no vehicle
    assert await vector_index.index_all_queued(job) == 2
    assert await db.fetchval("SELECT count(*) FROM vehicle_vectors") == 1
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0


async def test_reindex_recomputes_and_indexes_every_vector(gql, dealer, db, database_url):
    from forecourt.db.engine import create_engine, session_factory
    from forecourt.schema.context import utc_now
    from forecourt.services import Work
    from forecourt.services.embeddings import rebuild_feature_vectors
    from forecourt.subscriptions.outbox import Outbox

    await mixed_inventory(gql, dealer, db, listed=4, imported=6)  # 6 pending
    await db.execute("UPDATE vehicles SET feature_vector = array_fill(0, ARRAY[24])::vector")  # all stale
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            assert await rebuild_feature_vectors(Work(session, Outbox(), utc_now())) == 10
            await session.commit()
    finally:
        await engine.dispose()
    assert await db.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0
    assert await db.fetchval(IN_STEP) == 0
    assert not await db.fetchval("SELECT count(*) FROM vehicles WHERE feature_vector = array_fill(0, ARRAY[24])::vector")


async def test_migration_0010_moves_the_index_and_back(database_url, db):
    config = alembic_config(database_url)
    await db.close()  # alembic needs the database to itself for DDL
    await asyncio.to_thread(command.downgrade, config, "0009")
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        assert await conn.fetchval("SELECT to_regclass('vehicle_vectors')") is None
        assert await conn.fetchval("SELECT to_regclass('ix_vehicles_feature_vector')::text") == "ix_vehicles_feature_vector"
        await conn.execute("""INSERT INTO vehicles (id, vin, year, make, model, feature_vector)
            SELECT gen_random_uuid(), 'MGR' || lpad(g::text, 14, '0'), 2019, 'Toyota', 'Camry',
                   CASE WHEN g % 5 <> 0 THEN array_fill(g::real / 100, ARRAY[24])::vector END
            FROM generate_series(1, 50) g""")
        await asyncio.to_thread(command.upgrade, config, "head")
        assert await conn.fetchval("SELECT count(*) FROM vehicle_vectors") == 40
        assert await conn.fetchval(IN_STEP) == 0
        assert await conn.fetchval("SELECT count(*) FROM vehicle_vector_queue") == 0
        assert await conn.fetchval("SELECT to_regclass('ix_vehicles_feature_vector')") is None
        assert "hnsw" in await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                             "'ix_vehicle_vectors_feature_vector'")
        await asyncio.to_thread(command.downgrade, config, "0009")
        assert await conn.fetchval("SELECT to_regclass('vehicle_vectors')") is None
        assert "hnsw" in await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_vehicles_feature_vector'")
        await asyncio.to_thread(command.upgrade, config, "head")
    finally:
        await conn.close()
