"""Vehicle queries in SQLAlchemy Core: only the columns the API shows, no ORM objects."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    case,
    column,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, distinct_on

from forecourt.db.models import Auction, CatalogEntry, User, Vehicle, VehicleValuation
from forecourt.db.models.catalog import VehicleVector, VehicleVectorQueue
from forecourt.domain.auctions import ACTIVE
from forecourt.domain.catalog import VehicleCondition, VehicleStatus

v = Vehicle.__table__.c

# What a list of vehicles reads (in VehicleType.build's order) ...
VEHICLE_COLUMNS = (
    v.id, v.catalog_id, v.listed_by, v.vin, v.year, v.make, v.model, v.trim, v.condition,
    v.mileage_km, v.color, v.price, v.status, v.trust_score, v.location, v.created_at,
)
# ... and the listing details, most of a row's bytes and of its decoding (arrays, JSON),
# read only when asked for: VEHICLE_DETAILS, one statement for a page.
DETAIL_COLUMNS = (v.features, v.images, v.description, v.history)
# Archived vehicles are soft-deleted: hidden unless asked for by status.
DEFAULT_STATUSES = tuple(s for s in VehicleStatus if s is not VehicleStatus.ARCHIVED)


@dataclass(frozen=True)
class VehicleQuery:
    make: str | None = None
    model: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    conditions: tuple[VehicleCondition, ...] = ()
    statuses: tuple[VehicleStatus, ...] = ()
    body_type: str | None = None
    features: tuple[str, ...] = ()
    search: str | None = None


def search_query(text: str) -> ColumnElement:
    return func.websearch_to_tsquery("english", text)


# Prices as listings sort and filter by them: unpriced vehicles as 0, so a cursor never holds a
# NULL. ix_vehicles_price is on this expression (with a literal 0, as the index has it).
PRICE_KEY = func.coalesce(v.price, literal_column("0"))


@lru_cache(maxsize=256)
def filtered(q: VehicleQuery) -> Select:
    """The vehicles `q` asks for (statements are immutable: the same filter reuses one)."""
    # `= ANY(array)` rather than `IN (...)`: one parameter, nothing to expand per execution.
    statuses = [s.value for s in (q.statuses or DEFAULT_STATUSES)]
    conditions = [v.status == any_(bindparam("statuses", statuses, type_=ARRAY(v.status.type)))]
    if q.make:
        conditions.append(func.lower(v.make) == q.make.strip().lower())
    if q.model:
        conditions.append(func.lower(v.model) == q.model.strip().lower())
    if q.year_min is not None:
        conditions.append(v.year >= q.year_min)
    if q.year_max is not None:
        conditions.append(v.year <= q.year_max)
    if q.price_min is not None or q.price_max is not None:
        conditions.append(v.price.is_not(None))  # a price filter never matches an unpriced vehicle
    if q.price_min is not None:
        conditions.append(PRICE_KEY >= q.price_min)
    if q.price_max is not None:
        conditions.append(PRICE_KEY <= q.price_max)
    if q.conditions:
        conditions.append(v.condition.in_([c.value for c in q.conditions]))
    if q.features:
        conditions.append(v.features.contains(list(q.features)))
    if q.body_type:
        body = (
            select(CatalogEntry.id)
            .where(func.lower(CatalogEntry.body_type) == q.body_type.strip().lower())
            .scalar_subquery()
        )
        conditions.append(v.catalog_id.in_(body))
    if q.search:
        conditions.append(v.search.op("@@")(search_query(q.search)))
    return select(*VEHICLE_COLUMNS).where(and_(*conditions))


def order_keys(order: str, search: str | None) -> tuple[list[ColumnElement], bool]:
    """The unique ordering key for a VehicleOrder, and whether it runs descending."""
    if order == "PRICE_ASC":
        return [PRICE_KEY.label("k_price"), v.id], False
    if order == "PRICE_DESC":
        return [PRICE_KEY.label("k_price"), v.id], True
    if order == "YEAR_DESC":
        return [v.year, v.id], True
    if order == "RELEVANCE" and search:
        return [func.ts_rank(v.search, search_query(search)).label("k_rank"), v.id], True
    return [v.created_at, v.id], True


def by_ids(ids) -> Select:
    return select(*VEHICLE_COLUMNS).where(v.id.in_(ids))


# Nearest neighbours come from the feature-vector index (vehicle_vectors, HNSW) and, for the
# vehicles whose vector is not indexed yet (vehicle_vector_queue: imported or changed since the
# vector-index job last ran), from an exact scan of their current vectors: the two candidate
# lists are merged by the same distance, so a pending vehicle is found exactly as it will be
# once indexed. Where both vehicles have text embeddings, the candidates are re-ranked with the
# listing text's meaning as well.
CANDIDATES_PER_RESULT = 4
TEXT_WEIGHT = 2.0
vvec = VehicleVector.__table__.c
queued = VehicleVectorQueue.__table__


def similar_to(ids, k: int) -> Select:
    """The k most similar vehicles to each of `ids`, in one LATERAL query."""
    source = (
        select(
            v.id.label("source_id"),
            v.feature_vector.label("fv"),
            v.text_embedding.label("te"),
        )
        .where(v.id.in_(ids), v.feature_vector.is_not(None))
        .subquery("source")
    )
    limit = k * CANDIDATES_PER_RESULT
    listed = [s.value for s in DEFAULT_STATUSES]

    def candidates_from(joined, nc, vector, *where) -> Select:
        text_distance = case(
            (
                and_(source.c.te.is_not(None), nc.text_embedding.is_not(None)),
                nc.text_embedding.cosine_distance(source.c.te),
            ),
            else_=literal(0.0),
        )
        return (
            select(
                *[nc[c.name] for c in VEHICLE_COLUMNS],
                vector.l2_distance(source.c.fv).label("feature_distance"),
                text_distance.label("text_distance"),
            )
            .select_from(joined)
            .where(nc.id != source.c.source_id, *where)
            .order_by(vector.l2_distance(source.c.fv))
            .limit(limit)
            .correlate(source)
        )

    # Indexed vehicles through the HNSW index, except those queued again (their copy may be
    # older than their vector) ...
    n = Vehicle.__table__.alias("n")
    indexed = candidates_from(
        VehicleVector.__table__.join(n, n.c.id == vvec.vehicle_id), n.c, vvec.feature_vector,
        n.c.status.in_(listed),
        ~select(queued.c.vehicle_id).where(queued.c.vehicle_id == vvec.vehicle_id).exists(),
    )
    # ... and the queued ones by their vector as it is now: read once for all the sources
    # (MATERIALIZED: not once per source), then compared with each source exactly.
    p = Vehicle.__table__.alias("p")
    queued_vehicles = (
        select(*[p.c[c.name] for c in VEHICLE_COLUMNS], p.c.feature_vector, p.c.text_embedding)
        .select_from(queued.join(p, p.c.id == queued.c.vehicle_id))
        .where(p.c.status.in_(listed), p.c.feature_vector.is_not(None))
        .cte("pending")
        .prefix_with("MATERIALIZED")
    )
    pending = candidates_from(queued_vehicles, queued_vehicles.c, queued_vehicles.c.feature_vector)
    merged = union_all(indexed, pending).subquery("merged")
    candidates = (
        select(merged)
        .order_by(merged.c.feature_distance)
        .limit(limit)
        .lateral("candidates")
    )
    score = candidates.c.feature_distance + TEXT_WEIGHT * candidates.c.text_distance
    ranked = (
        select(
            source.c.source_id,
            *[candidates.c[c.name] for c in VEHICLE_COLUMNS],
            func.row_number()
            .over(partition_by=source.c.source_id, order_by=(score, candidates.c.id))
            .label("rank"),
        )
        .select_from(source.join(candidates, literal_column("true")))
        .subquery("ranked")
    )
    return (
        select(ranked.c.source_id, *[ranked.c[c.name] for c in VEHICLE_COLUMNS])
        .where(ranked.c.rank <= k)
        .order_by(ranked.c.source_id, ranked.c.rank)
    )


def nearest_match(text: str) -> Select:
    """The closest listing to a search that found nothing, by trigram similarity."""
    label = func.concat_ws(" ", v.make, v.model, v.trim)
    return (
        select(*VEHICLE_COLUMNS)
        .where(v.status.in_([s.value for s in DEFAULT_STATUSES]))
        .order_by(func.similarity(label, text).desc(), v.id)
        .limit(1)
    )



def by_vin(vin: str) -> Select:
    return select(*VEHICLE_COLUMNS).where(v.vin == vin)


# ---------------------------------------------------------------- what a vehicle shows
# Each relation's columns (what its type shows), read per relation for the vehicles reached
# one by one (DataLoaders batch them), and for a page of vehicles all in one statement.
# Built once: ids travel as one array parameter (`= ANY($1)`), so the SQL (and the prepared
# statement) is the same whatever their number, and nothing is built or cache-keyed per
# request. Execute the per-relation statements with {"ids": [...]}.

UUIDS = ARRAY(UUID(as_uuid=True))
IDS = bindparam("ids", type_=UUIDS)

c = CatalogEntry.__table__.c
CATALOG_COLUMNS = (
    c.id, c.make, c.model, c.year_start, c.year_end, c.trim, c.body_type, c.fuel_type,
    c.transmission, c.drivetrain, c.horsepower, c.specs, c.price_foreign_used,
    c.price_local_used, c.price_brand_new,
)
u = User.__table__.c
# What UserType shows (its email only to the user themself and admins).
USER_COLUMNS = (u.id, u.email, u.organization_id, u.display_name, u.role, u.kyc_status, u.created_at)
vv = VehicleValuation.__table__.c
# A valuation's depreciation curve is most of its row and of the work of turning it into
# objects: a selection that does not show it gets an empty one.
NO_CURVE = literal_column("'[]'::jsonb", JSONB).label("depreciation")


def _valuation_columns(curve: bool) -> tuple:
    return (
        vv.vehicle_id, vv.market_value, vv.foreign_used, vv.local_used, vv.brand_new,
        vv.investment_score, vv.signal, vv.depreciation if curve else NO_CURVE, vv.comparables,
        vv.as_of,
    )


a = Auction.__table__.c
# The statuses are written into the SQL so that the planner can use the partial unique index
# on (vehicle_id) of active auctions, also with a generic plan for the prepared statement.
IS_ACTIVE = a.status.in_([literal_column(f"'{status.value}'") for status in sorted(ACTIVE)])

VEHICLE_DETAILS: Select = select(v.id, *DETAIL_COLUMNS).where(v.id == any_(IDS))
CATALOG_ENTRIES: Select = select(*CATALOG_COLUMNS).where(c.id == any_(IDS))
USERS: Select = select(*USER_COLUMNS).where(u.id == any_(IDS))
# The newest stored valuation of each vehicle.
LATEST_VALUATIONS: Select = (
    select(*_valuation_columns(curve=True))
    .where(vv.vehicle_id == any_(IDS))
    .ext(distinct_on(vv.vehicle_id))
    .order_by(vv.vehicle_id, vv.as_of.desc())
)
# The auction each vehicle is in now (all its columns: what AuctionType.from_row reads).
ACTIVE_AUCTIONS: Select = select(Auction.__table__).where(a.vehicle_id == any_(IDS), IS_ACTIVE)

# ---------------------------------------------------------------- a page's relations at once
# The vehicles of a page, in order, as an unnest() of three parallel arrays (vehicle, catalog
# entry and lister ids); each relation a LEFT JOIN on it. One row per vehicle, each relation's
# columns in a slice of it (catalog entries and listers only in the first row that has them).
# Execute with {"vehicle_ids": [...], "catalog_ids": [...], "lister_ids": [...]}.

_UNNEST = (
    func.unnest(
        bindparam("vehicle_ids", type_=UUIDS),
        bindparam("catalog_ids", type_=UUIDS),
        bindparam("lister_ids", type_=UUIDS),
    )
    .table_valued(
        column("vehicle_id", UUID(as_uuid=True)),
        column("catalog_id", UUID(as_uuid=True)),
        column("lister_id", UUID(as_uuid=True)),
        with_ordinality="n",
    )
    .render_derived(name="ids")
)
# A catalog entry or lister that several vehicles share is joined (and read) only on the
# first of them: the rest of the page refers to it by id.
PAGE = select(
    _UNNEST.c.vehicle_id,
    _UNNEST.c.catalog_id,
    _UNNEST.c.lister_id,
    _UNNEST.c.n,
    (func.row_number().over(partition_by=_UNNEST.c.catalog_id, order_by=_UNNEST.c.n)
     == literal_column("1")).label("first_catalog"),
    (func.row_number().over(partition_by=_UNNEST.c.lister_id, order_by=_UNNEST.c.n)
     == literal_column("1")).label("first_lister"),
).subquery("page")
RELATIONS = ("details", "catalog_entry", "listed_by", "active_auction", "latest_valuation")


def _latest_valuation(curve: bool) -> Any:
    return (
        select(*_valuation_columns(curve))
        .where(vv.vehicle_id == PAGE.c.vehicle_id)
        .order_by(vv.as_of.desc())
        .limit(literal_column("1"))
        .lateral("latest_valuation")
    )


@lru_cache(maxsize=64)
def page_relations(
    relations: frozenset[str], curve: bool = True
) -> tuple[Select, dict[str, tuple[slice, tuple[str, ...]]]]:
    """One statement reading the `relations` (of RELATIONS) of a page of vehicles, and for
    each relation where its columns are in the rows, and their names (a relation's first
    column is NULL when the vehicle has none)."""
    details = Vehicle.__table__.alias("details")
    joins: dict[str, tuple[Any, Any, tuple]] = {
        "details": (details, details.c.id == PAGE.c.vehicle_id,
                    tuple(details.c[col.name] for col in DETAIL_COLUMNS)),
        "catalog_entry": (CatalogEntry.__table__,
                          and_(PAGE.c.first_catalog, c.id == PAGE.c.catalog_id), CATALOG_COLUMNS),
        "listed_by": (User.__table__, and_(PAGE.c.first_lister, u.id == PAGE.c.lister_id),
                      USER_COLUMNS),
        "active_auction": (Auction.__table__, and_(a.vehicle_id == PAGE.c.vehicle_id, IS_ACTIVE),
                           tuple(Auction.__table__.c)),
    }
    columns: list = [PAGE.c.n]
    slices: dict[str, tuple[slice, tuple[str, ...]]] = {}
    source: Any = PAGE
    for name in RELATIONS:
        if name not in relations:
            continue
        if name == "latest_valuation":
            latest = _latest_valuation(curve)
            table, on, part = latest, literal_column("true"), tuple(latest.c)
        else:
            table, on, part = joins[name]
        source = source.outerjoin(table, on)
        start = len(columns)
        columns.extend(col.label(f"{name}_{col.name}") for col in part)
        slices[name] = (slice(start, len(columns)), tuple(col.name for col in part))
    return select(*columns).select_from(source).order_by(PAGE.c.n), slices


# ---------------------------------------------------------------- bulk import
# Raw asyncpg on the session's own connection (same transaction): COPY has no SQLAlchemy form,
# and 10,000 VINs travel as one array parameter rather than 10,000 bound values.

EXISTING_VINS = "SELECT vin, id, listed_by, status FROM vehicles WHERE vin = ANY($1::text[])"

# New rows go straight into `vehicles` with one binary COPY (ids made by the caller): the
# least PostgreSQL can do with the table's indexes.
NEW_VEHICLE_COLUMNS = (
    "id", "vin", "year", "make", "model", "trim", "catalog_id", "condition", "mileage_km",
    "color", "price", "features", "images", "location", "description", "feature_vector",
    "listed_by", "status", "history",
)
# Rows whose VIN is already listed (or that met a concurrent listing) go through a staging
# table and one INSERT ... ON CONFLICT. An update happens only when something changed (so a
# repeated import writes nothing) and only to vehicles the caller may change (checked before,
# and again here against a concurrent listing).
STAGE_COLUMNS = (
    "idx", "vin", "year", "make", "model", "trim", "catalog_id", "condition", "mileage_km",
    "color", "price", "features", "images", "location", "description", "fv",
)
CREATE_STAGE = """
CREATE TEMP TABLE import_stage (
    idx int, vin varchar(17), year int, make varchar(50), model varchar(100), trim varchar(50),
    catalog_id uuid, condition varchar(20), mileage_km int, color varchar(30), price numeric(15,2),
    features text[], images text[], location varchar(100), description text, fv vector
) ON COMMIT DROP
"""
# Every row written (new, or changed and so with a vector that may have changed) is queued for
# the vector index in the same statement (QUEUE_VECTORS' locking ON CONFLICT).
UPSERT = """
WITH written AS (
    INSERT INTO vehicles AS v (id, vin, year, make, model, trim, catalog_id, condition, mileage_km,
        color, price, features, images, location, description, feature_vector, listed_by, status,
        history)
    SELECT gen_random_uuid(), vin, year, make, model, trim, catalog_id, condition, mileage_km,
        color, price, features, images, location, description, fv, $1::uuid, 'available', $2::jsonb
    FROM import_stage ORDER BY idx
    ON CONFLICT (vin) DO {action}
    RETURNING v.id, v.vin, (v.xmax = 0) AS inserted
), queued AS (
    INSERT INTO vehicle_vector_queue (vehicle_id) SELECT id FROM written
    ON CONFLICT (vehicle_id) DO UPDATE SET vehicle_id = EXCLUDED.vehicle_id WHERE false
)
SELECT id, vin, inserted FROM written
"""
UPDATE_ACTION = """UPDATE SET year = EXCLUDED.year, make = EXCLUDED.make, model = EXCLUDED.model,
    trim = EXCLUDED.trim, catalog_id = EXCLUDED.catalog_id, condition = EXCLUDED.condition,
    mileage_km = EXCLUDED.mileage_km, color = EXCLUDED.color, price = EXCLUDED.price,
    features = EXCLUDED.features, images = EXCLUDED.images, location = EXCLUDED.location,
    description = EXCLUDED.description, feature_vector = EXCLUDED.feature_vector,
    text_embedding = NULL, updated_at = now(),
    history = v.history
        || jsonb_build_array(jsonb_build_object('at', $3::text, 'event', 'updated by import'))
WHERE v.status IN ('available', 'listed')
  AND (v.listed_by = EXCLUDED.listed_by OR $4::boolean)
  AND (v.year, v.make, v.model, v.trim, v.catalog_id, v.condition, v.mileage_km, v.color, v.price,
       v.features, v.images, v.location, v.description)
      IS DISTINCT FROM
      (EXCLUDED.year, EXCLUDED.make, EXCLUDED.model, EXCLUDED.trim, EXCLUDED.catalog_id,
       EXCLUDED.condition, EXCLUDED.mileage_km, EXCLUDED.color, EXCLUDED.price,
       EXCLUDED.features, EXCLUDED.images, EXCLUDED.location, EXCLUDED.description)"""
UPSERT_NEW_ONLY = UPSERT.format(action="NOTHING")
UPSERT_OR_UPDATE = UPSERT.format(action=UPDATE_ACTION)

# ---------------------------------------------------------------- the vector index
# A vehicle whose feature vector is new or changed is queued in the transaction that writes it;
# the vector-index job copies queued vectors into vehicle_vectors (HNSW) after commit. Raw
# asyncpg, like the import.

# New vehicles are queued with a COPY of their ids (nothing to conflict with). A vehicle that
# may be queued already is queued with a locking ON CONFLICT: `DO UPDATE ... WHERE false` writes
# nothing but locks the row, so a writer waits for a job that holds it (and is copying the
# vector as it was) and queues the vehicle again after that job has dequeued it.
QUEUE_VECTORS = """
INSERT INTO vehicle_vector_queue (vehicle_id) SELECT unnest($1::uuid[])
ON CONFLICT (vehicle_id) DO UPDATE SET vehicle_id = EXCLUDED.vehicle_id WHERE false
"""
# One batch of the job, in one statement: take up to $1 queued vehicles no other job holds,
# copy their vectors as they are now into vehicle_vectors (a vehicle whose vector is gone is
# dropped from it), dequeue them. Returns the vehicles dequeued.
INDEX_QUEUED = """
WITH taken AS (
    SELECT vehicle_id FROM vehicle_vector_queue ORDER BY vehicle_id LIMIT $1 FOR UPDATE SKIP LOCKED
), current AS (
    SELECT taken.vehicle_id, v.feature_vector
    FROM taken LEFT JOIN vehicles v ON v.id = taken.vehicle_id
), indexed AS (
    INSERT INTO vehicle_vectors (vehicle_id, feature_vector)
    SELECT vehicle_id, feature_vector FROM current WHERE feature_vector IS NOT NULL
    ON CONFLICT (vehicle_id) DO UPDATE SET feature_vector = EXCLUDED.feature_vector
    WHERE vehicle_vectors.feature_vector IS DISTINCT FROM EXCLUDED.feature_vector
), unindexed AS (
    DELETE FROM vehicle_vectors vv USING current
    WHERE vv.vehicle_id = current.vehicle_id AND current.feature_vector IS NULL
)
DELETE FROM vehicle_vector_queue q USING taken WHERE q.vehicle_id = taken.vehicle_id
RETURNING q.vehicle_id
"""
# A transaction that has just changed these vehicles' vectors (and holds their rows) indexes
# them itself, in two statements and in this order: dequeue them (waiting for a job that holds
# one; it copies the vector as it was, and is overwritten next), then copy the vectors.
DEQUEUE = "DELETE FROM vehicle_vector_queue WHERE vehicle_id = ANY($1::uuid[])"
INDEX_NOW = """
WITH current AS (
    SELECT id, feature_vector FROM vehicles WHERE id = ANY($1::uuid[])
), indexed AS (
    INSERT INTO vehicle_vectors (vehicle_id, feature_vector)
    SELECT id, feature_vector FROM current WHERE feature_vector IS NOT NULL
    ON CONFLICT (vehicle_id) DO UPDATE SET feature_vector = EXCLUDED.feature_vector
    WHERE vehicle_vectors.feature_vector IS DISTINCT FROM EXCLUDED.feature_vector
)
DELETE FROM vehicle_vectors vv USING current
WHERE vv.vehicle_id = current.id AND current.feature_vector IS NULL
"""
QUEUED_COUNT = "SELECT count(*) FROM vehicle_vector_queue"

_VECTOR_HEADER = struct.Struct(">HH")


def _vector_to_binary(values: Sequence[float]) -> bytes:
    # pgvector's binary format: dimensions, an unused int16, then big-endian float4s
    return _VECTOR_HEADER.pack(len(values), 0) + struct.pack(f">{len(values)}f", *values)


def _vector_from_binary(data: bytes) -> list[float]:
    dimensions, _ = _VECTOR_HEADER.unpack_from(data)
    return list(struct.unpack_from(f">{dimensions}f", data, 4))


@asynccontextmanager
async def binary_vectors(raw: Any) -> AsyncIterator[None]:
    """Vectors in binary on this asyncpg connection for a while: binary COPY needs a binary
    codec, and the rest of the app reads and writes vectors as text. What runs inside runs
    under a savepoint, so that a failed statement cannot keep the codec from being reset
    (resetting it is a query) on a connection that goes back to the pool."""
    await raw.set_type_codec(
        "vector", schema="public", encoder=_vector_to_binary, decoder=_vector_from_binary,
        format="binary",
    )
    try:
        await raw.execute("SAVEPOINT binary_vectors")
        try:
            yield
        except BaseException:
            await raw.execute("ROLLBACK TO SAVEPOINT binary_vectors")
            raise
        await raw.execute("RELEASE SAVEPOINT binary_vectors")
    finally:
        await raw.reset_type_codec("vector", schema="public")
