"""Inventory use cases: listing a vehicle (createVehicle)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from forecourt.db.errors import violates
from forecourt.db.models import CatalogEntry, Vehicle
from forecourt.domain import catalog as rules
from forecourt.domain.catalog import VehicleCondition, VehicleFacts, VehicleStatus
from forecourt.domain.errors import DomainError
from forecourt.services import Work


def duplicate_vin(name: str) -> DomainError:
    return DomainError("DUPLICATE_VIN", f"this VIN is already listed as vehicle {name}", ("vin",))


def vector_for(new: rules.NewVehicle, entry: CatalogEntry | None, now_year: int) -> list[float]:
    return rules.feature_vector(
        VehicleFacts(
            price=new.price,
            year=new.year,
            mileage_km=new.mileage_km,
            horsepower=entry.horsepower if entry else None,
            condition=new.condition,
            body_type=entry.body_type if entry else None,
            fuel_type=entry.fuel_type if entry else None,
            drivetrain=entry.drivetrain if entry else None,
        ),
        reference_year=now_year,
    )


async def create_vehicle(
    work: Work,
    *,
    vin: str | None,
    year: int | None,
    make: str | None,
    model: str | None,
    catalog_entry_id: uuid.UUID | None,
    trim: str | None,
    condition: VehicleCondition,
    mileage_km: int | None,
    color: str | None,
    price: Decimal | None,
    features: list[str] | None,
    images: list[str] | None,
    location: str | None,
    description: str | None,
    name_vehicle: Callable[[uuid.UUID], str],
) -> Vehicle:
    """`name_vehicle` turns an ID into the name clients know it by (its global ID)."""
    assert work.actor is not None
    new = rules.validate_vehicle(
        vin=vin, year=year, make=make, model=model, trim=trim, condition=condition,
        mileage_km=mileage_km, color=color, price=price, features=features, images=images,
        location=location, description=description, now=work.now,
    )
    entry = None
    if catalog_entry_id is not None:
        entry = await work.session.get(CatalogEntry, catalog_entry_id)
        if entry is None:
            raise DomainError("NOT_FOUND", "no such catalog entry", ("catalogEntryId",))
    existing = await work.session.scalar(select(Vehicle.id).where(Vehicle.vin == new.vin))
    if existing is not None:
        raise duplicate_vin(name_vehicle(existing))
    vehicle = Vehicle(
        id=uuid.uuid4(),
        catalog_id=entry.id if entry else None,
        listed_by=work.actor.user_id,
        vin=new.vin,
        year=new.year,
        make=new.make,
        model=new.model,
        trim=new.trim or (entry.trim if entry else None),
        condition=new.condition.value,
        mileage_km=new.mileage_km,
        color=new.color,
        price=new.price,
        status=VehicleStatus.AVAILABLE.value,
        images=new.images,
        features=new.features,
        description=new.description,
        location=new.location,
        history=[{"at": work.now.isoformat(), "event": "listed", "status": "available"}],
        feature_vector=vector_for(new, entry, work.now.year),
    )
    try:
        async with work.session.begin_nested():
            work.session.add(vehicle)
    except IntegrityError as err:  # listed concurrently by someone else
        if violates(err, "uq_vehicles_vin"):
            existing = await work.session.scalar(select(Vehicle.id).where(Vehicle.vin == new.vin))
            raise duplicate_vin(name_vehicle(existing)) from None
        raise
    return vehicle
