"""Vehicle queries in SQLAlchemy Core: only the columns the API shows, no ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    literal_column,
    select,
)

from forecourt.db.models import CatalogEntry, Vehicle
from forecourt.domain.catalog import VehicleCondition, VehicleStatus

v = Vehicle.__table__.c

VEHICLE_COLUMNS = (
    v.id, v.vin, v.year, v.make, v.model, v.trim, v.catalog_id, v.condition, v.mileage_km,
    v.color, v.price, v.status, v.features, v.images, v.trust_score, v.location,
    v.description, v.listed_by, v.history, v.created_at,
)
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


def filtered(q: VehicleQuery) -> Select:
    conditions = [v.status.in_([s.value for s in (q.statuses or DEFAULT_STATUSES)])]
    if q.make:
        conditions.append(func.lower(v.make) == q.make.strip().lower())
    if q.model:
        conditions.append(func.lower(v.model) == q.model.strip().lower())
    if q.year_min is not None:
        conditions.append(v.year >= q.year_min)
    if q.year_max is not None:
        conditions.append(v.year <= q.year_max)
    if q.price_min is not None:
        conditions.append(v.price >= q.price_min)
    if q.price_max is not None:
        conditions.append(v.price <= q.price_max)
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
        return [func.coalesce(v.price, 0).label("k_price"), v.id], False
    if order == "PRICE_DESC":
        return [func.coalesce(v.price, 0).label("k_price"), v.id], True
    if order == "YEAR_DESC":
        return [v.year, v.id], True
    if order == "RELEVANCE" and search:
        return [func.ts_rank(v.search, search_query(search)).label("k_rank"), v.id], True
    return [v.created_at, v.id], True


def by_ids(ids) -> Select:
    return select(*VEHICLE_COLUMNS).where(v.id.in_(ids))


# Nearest neighbours come from the feature-vector index; where both vehicles have text
# embeddings, the candidates are re-ranked with the listing text's meaning as well.
CANDIDATES_PER_RESULT = 4
TEXT_WEIGHT = 2.0


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
    nc = Vehicle.__table__.alias("n").c
    text_distance = case(
        (
            and_(source.c.te.is_not(None), nc.text_embedding.is_not(None)),
            nc.text_embedding.cosine_distance(source.c.te),
        ),
        else_=literal(0.0),
    )
    candidates = (
        select(
            *[nc[c.name] for c in VEHICLE_COLUMNS],
            nc.feature_vector.l2_distance(source.c.fv).label("feature_distance"),
            text_distance.label("text_distance"),
        )
        .where(
            nc.id != source.c.source_id,
            nc.status.in_([s.value for s in DEFAULT_STATUSES]),
            nc.feature_vector.is_not(None),
        )
        .order_by(nc.feature_vector.l2_distance(source.c.fv))
        .limit(k * CANDIDATES_PER_RESULT)
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
