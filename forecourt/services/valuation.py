"""Valuations: market data from the catalog and comparable listings, the pure model, and the
weekly re-valuation of inventory (safe in every process: SKIP LOCKED)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.db.models import CatalogEntry, Vehicle, VehicleValuation
from forecourt.domain import valuation as model
from forecourt.domain.catalog import (
    VehicleCondition,
    VehicleStatus,
    check_mileage,
    check_year,
)
from forecourt.domain.errors import DomainError, Validator
from forecourt.domain.text import clean_text
from forecourt.services import Work

COMPARABLE_YEARS = 3
MAX_COMPARABLES = 50
REVALUE_BATCH = 100


async def market_data(
    session: AsyncSession, make: str, model_name: str, year: int, *, exclude: uuid.UUID | None = None
) -> tuple[list[model.CatalogPrices], list[model.Comparable]]:
    make_l, model_l = make.strip().lower(), model_name.strip().lower()
    entries = await session.execute(
        select(
            CatalogEntry.year_start, CatalogEntry.price_foreign_used, CatalogEntry.price_local_used,
            CatalogEntry.price_brand_new, CatalogEntry.resell_rank,
        ).where(
            func.lower(CatalogEntry.make) == make_l,
            func.lower(CatalogEntry.model) == model_l,
            CatalogEntry.year_start <= year,
            func.coalesce(CatalogEntry.year_end, CatalogEntry.year_start + 10) >= year,
        )
    )
    catalog = [model.CatalogPrices(*row) for row in entries]
    listed = select(Vehicle.price, Vehicle.year, Vehicle.mileage_km, Vehicle.condition).where(
        func.lower(Vehicle.make) == make_l,
        func.lower(Vehicle.model) == model_l,
        Vehicle.year.between(year - COMPARABLE_YEARS, year + COMPARABLE_YEARS),
        Vehicle.price.is_not(None),
        Vehicle.status != VehicleStatus.ARCHIVED.value,
    )
    if exclude is not None:
        listed = listed.where(Vehicle.id != exclude)
    # Completed auction prices join these once auctions exist (issue 4).
    rows = await session.execute(listed.order_by(Vehicle.created_at.desc()).limit(MAX_COMPARABLES))
    comparables = [
        model.Comparable(price, y, km, VehicleCondition(cond)) for price, y, km, cond in rows
    ]
    return catalog, comparables


async def value_request(
    session: AsyncSession,
    now: datetime,
    *,
    make: str,
    model_name: str,
    year: int,
    mileage_km: int | None,
    condition: VehicleCondition | None,
) -> model.Valuation:
    v = Validator()
    make_c = v.run(clean_text, make, "make", max_length=50, required=True, name=True)
    model_c = v.run(clean_text, model_name, "model", max_length=100, required=True, name=True)
    v.run(check_year, year, now)
    v.run(check_mileage, mileage_km)
    v.check()
    catalog, comparables = await market_data(session, make_c, model_c, year)
    return model.value(model.Subject(year, mileage_km, condition), catalog, comparables, now)


async def revalue_vehicle(work: Work, vehicle: Vehicle) -> VehicleValuation:
    catalog, comparables = await market_data(
        work.session, vehicle.make, vehicle.model, vehicle.year, exclude=vehicle.id
    )
    result = model.value(
        model.Subject(
            vehicle.year, vehicle.mileage_km, VehicleCondition(vehicle.condition), vehicle.price
        ),
        catalog,
        comparables,
        work.now,
    )
    row = VehicleValuation(
        vehicle_id=vehicle.id,
        market_value=result.market_value,
        foreign_used=result.foreign_used,
        local_used=result.local_used,
        brand_new=result.brand_new,
        investment_score=result.investment_score,
        signal=result.signal.value,
        depreciation=[{"year": y, "value": str(v)} for y, v in result.depreciation],
        comparables=result.comparables,
        as_of=result.as_of,
    )
    work.session.add(row)
    return row


async def revalue_stale(work: Work, limit: int = REVALUE_BATCH) -> int:
    """Value vehicles with no valuation or one older than a week. Each process takes rows the
    others have not locked, so any number of servers can run this at once."""
    latest = (
        select(func.max(VehicleValuation.as_of))
        .where(VehicleValuation.vehicle_id == Vehicle.id)
        .scalar_subquery()
    )
    due = await work.session.scalars(
        select(Vehicle)
        .where(
            Vehicle.status != VehicleStatus.ARCHIVED.value,
            or_(latest.is_(None), latest < work.now - model.STALE_AFTER),
        )
        .order_by(Vehicle.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    count = 0
    for vehicle in due:
        try:
            async with work.session.begin_nested():
                await revalue_vehicle(work, vehicle)
            count += 1
        except DomainError:
            continue  # no market data for this one yet
    return count

