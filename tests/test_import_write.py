"""The import's write: time-ordered ids for new vehicles, and the partial indexes on
vehicles.owner_id / catalog_id (migration 0011) still serving the lookups that use them."""

from __future__ import annotations

import asyncio
import gc
import uuid

import asyncpg
from alembic import command
from sqlalchemy.dialects import postgresql

from forecourt.db.engine import plain_url
from forecourt.db.migrate import alembic_config
from forecourt.db.queries import catalog as queries
from forecourt.schema.relay import from_global_id
from forecourt.services.catalog import _collector_paused, new_vehicle_ids
from tests.test_catalog import add_catalog
from tests.test_import import dealer, row, run  # noqa: F401 (fixture)


def test_new_vehicle_ids_are_uuid7_ascending_and_unique():
    ids = new_vehicle_ids(10_000)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 10_000
    later = new_vehicle_ids(3)
    assert later[0] > ids[0]  # the millisecond leads: a later batch sorts after an earlier one's start
    assert len({i.int & ((1 << 60) - 1) for i in ids}) > 9_990  # 60 random bits each


async def test_imported_vehicles_get_ascending_ids_in_row_order(gql, dealer, db):  # noqa: F811
    result = await run(gql, dealer.token, [row(i) for i in range(30)])
    assert result["created"] == 30
    ids = [from_global_id(r["vehicle"]["id"])[1] for r in result["rows"]]
    assert ids == sorted(ids) and all(i.version == 7 for i in ids)
    stored = await db.fetch("SELECT id, vin FROM vehicles ORDER BY id")
    assert [r["vin"] for r in stored] == [r["vehicle"]["vin"] for r in result["rows"]]


def sql(statement) -> str:
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def test_body_type_filter_and_foreign_key_checks_use_the_partial_indexes(db):
    suv = await add_catalog(db, "Toyota", "RAV4", 2019, "SUV")
    sedan = await add_catalog(db, "Toyota", "Camry", 2019, "Sedan")
    await db.execute("""INSERT INTO vehicles (id, vin, year, make, model, catalog_id)
        SELECT gen_random_uuid(), 'PXX' || lpad(g::text, 14, '0'), 2019, 'Toyota', 'X',
               CASE g % 10 WHEN 0 THEN $1::uuid WHEN 1 THEN $2::uuid END
        FROM generate_series(1, 5000) g""", suv, sedan)
    await db.execute("ANALYZE vehicles")
    statement = sql(queries.filtered(queries.VehicleQuery(body_type="suv")))
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN " + statement))
        assert "ix_vehicles_catalog_id" in plan, plan
        assert len(await db.fetch(statement)) == 500
        # the foreign keys' own lookups (a referenced row deleted or its key changed): by value,
        # also in a generic plan
        await db.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for column in ("catalog_id", "owner_id"):
            await db.execute(f"PREPARE by_{column}(uuid) AS SELECT 1 FROM vehicles WHERE {column} = $1 FOR KEY SHARE")
            plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN EXECUTE by_{column}('{suv}')"))
            assert f"ix_vehicles_{column}" in plan, plan
            await db.execute(f"DEALLOCATE by_{column}")


INDEXDEF = "SELECT indexdef FROM pg_indexes WHERE indexname = $1"


async def test_migration_0011_makes_the_indexes_partial_and_back(database_url, db):
    config = alembic_config(database_url)
    await db.close()  # alembic needs the database to itself for DDL
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        for column in ("owner_id", "catalog_id"):
            assert await conn.fetchval(INDEXDEF, f"ix_vehicles_{column}") == (
                f"CREATE INDEX ix_vehicles_{column} ON public.vehicles USING btree ({column}) "
                f"WHERE ({column} IS NOT NULL)")
        await asyncio.to_thread(command.downgrade, config, "0010")
        for column in ("owner_id", "catalog_id"):
            assert await conn.fetchval(INDEXDEF, f"ix_vehicles_{column}") == (
                f"CREATE INDEX ix_vehicles_{column} ON public.vehicles USING btree ({column})")
        await asyncio.to_thread(command.upgrade, config, "head")
        assert "IS NOT NULL" in await conn.fetchval(INDEXDEF, "ix_vehicles_catalog_id")
    finally:
        await conn.close()


async def test_the_collector_is_held_off_while_imports_run_and_only_then():
    assert gc.isenabled()
    first_in, second_in, both_out = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def importing(entered, leave):
        with _collector_paused():
            entered.set()
            await leave.wait()

    first = asyncio.create_task(importing(first_in, second_in))
    await first_in.wait()
    assert not gc.isenabled()
    second = asyncio.create_task(importing(second_in, both_out))
    await first  # the first import ends while the second still runs
    assert not gc.isenabled()
    both_out.set()
    await second
    assert gc.isenabled()
    gc.disable()  # someone else's choice is left alone
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
