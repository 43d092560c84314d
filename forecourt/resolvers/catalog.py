"""Catalog and inventory resolvers."""

from __future__ import annotations

from forecourt.db.pagination import count, keyset_page, page_size
from forecourt.db.queries import catalog as queries
from forecourt.domain.catalog import ImportErrorPolicy, ImportMode, normalize_vin
from forecourt.domain.errors import DomainError, Validator
from forecourt.domain.text import clean_text
from forecourt.resolvers.base import optional, run_mutation
from forecourt.schema import catalog as t
from forecourt.schema.context import Context
from forecourt.schema.errors import UserError
from forecourt.schema.relay import connection, from_global_id, to_global_id
from forecourt.services import catalog as service
from forecourt.services.catalog import ImportResult, VehicleDraft

SEARCH_MAX_LENGTH = 200


def _vehicle_query(filter: t.VehicleFilter | None, search: str | None) -> queries.VehicleQuery:
    f = filter or t.VehicleFilter()
    v = Validator()
    text = v.run(clean_text, search, "search", max_length=SEARCH_MAX_LENGTH)
    v.run(clean_text, optional(f.make), "make", max_length=100)
    v.run(clean_text, optional(f.model), "model", max_length=100)
    v.run(clean_text, optional(f.body_type), "bodyType", max_length=100)
    features = optional(f.features) or []
    if len(features) > 20:
        v.add("TOO_MANY", "filter on at most 20 features", "features")
    v.check()
    return queries.VehicleQuery(
        make=optional(f.make),
        model=optional(f.model),
        year_min=optional(f.year_min),
        year_max=optional(f.year_max),
        price_min=optional(f.price_min),
        price_max=optional(f.price_max),
        conditions=tuple(optional(f.condition) or ()),
        statuses=tuple(optional(f.status) or ()),
        body_type=optional(f.body_type),
        features=tuple(features),
        search=text,
    )


async def vehicles(
    ctx: Context,
    filter: t.VehicleFilter | None,
    search: str | None,
    order_by: t.VehicleOrder,
    first: int | None,
    after: str | None,
) -> t.VehicleConnection:
    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    query = _vehicle_query(filter, search)
    statement = queries.filtered(query)
    order, descending = queries.order_keys(order_by.value, query.search)
    page = await keyset_page(
        ctx.reader, statement, order, first=size, after=after, descending=descending
    )
    return connection(
        page,
        t.VehicleType.from_row,
        lambda: count(ctx.reader, statement),
        cls=t.VehicleConnection,
        search_text=query.search,
    )


async def vehicle(ctx: Context, id: str) -> t.VehicleType | None:
    try:
        _, raw = from_global_id(id, "Vehicle")
    except DomainError:
        return None
    return await t.load_vehicle(ctx, raw)


async def vehicle_by_vin(ctx: Context, vin: str) -> t.VehicleType | None:
    try:
        normalized = normalize_vin(vin)
    except DomainError:
        return None
    row = (await ctx.reader.execute(queries.by_vin(normalized))).first()
    return t.VehicleType.from_row(row) if row else None


def _draft(data: t.CreateVehicleInput, field: tuple[str, ...] = ("catalogEntryId",)) -> VehicleDraft:
    entry_id = optional(data.catalog_entry_id)
    return VehicleDraft(
        vin=data.vin,
        year=data.year,
        make=data.make,
        model=data.model,
        condition=data.condition,
        catalog_entry_id=from_global_id(entry_id, "CatalogEntry", field)[1] if entry_id else None,
        trim=optional(data.trim),
        mileage_km=optional(data.mileage_km),
        color=optional(data.color),
        price=optional(data.price),
        features=optional(data.features),
        images=optional(data.images),
        location=optional(data.location),
        description=optional(data.description),
    )


def _vehicle_name(raw) -> str:
    return to_global_id("Vehicle", raw)


async def create_vehicle(ctx: Context, data: t.CreateVehicleInput) -> t.VehiclePayload:
    async def op(work):
        created = await service.create_vehicle(work, _draft(data), _vehicle_name)
        return {"vehicle": t.VehicleType.from_row(created)}

    return await run_mutation(ctx, t.VehiclePayload, op)


def _draft_or_error(data: t.CreateVehicleInput) -> VehicleDraft | DomainError:
    try:
        return _draft(data)
    except DomainError as err:
        return err


async def import_vehicles(ctx: Context, data: t.ImportVehiclesInput) -> t.ImportVehiclesPayload:
    result_box: list[ImportResult] = []

    async def op(work):
        result = await service.import_vehicles(
            work,
            [_draft_or_error(row) for row in data.rows],
            mode=ImportMode(data.mode.value),
            policy=ImportErrorPolicy(data.error_policy.value),
            dry_run=data.dry_run,
        )
        result_box.append(result)
        return {"created": result.created, "updated": result.updated, "failed": result.failed}

    payload = await run_mutation(ctx, t.ImportVehiclesPayload, op)
    if not result_box:
        return payload
    result = result_box[0]
    payload.rows = [
        t.ImportRowResult(
            index=r.index,
            vehicle_id=r.vehicle_id,
            created=r.created,
            user_errors=[
                UserError(field=["input", "rows", str(r.index), *(e.field or ())], code=e.code, message=e.message)
                for e in r.errors
            ],
        )
        for r in result.rows
    ]
    return payload
