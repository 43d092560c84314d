"""Inventory use cases: listing one vehicle, and bulk imports for dealers' scripts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from forecourt.db.errors import violates
from forecourt.db.models import CatalogEntry, Vehicle
from forecourt.domain import catalog as rules
from forecourt.domain.catalog import (
    ImportErrorPolicy,
    ImportMode,
    VehicleCondition,
    VehicleFacts,
    VehicleStatus,
)
from forecourt.domain.errors import DomainError
from forecourt.domain.identity import STAFF_ROLES
from forecourt.services import Work

NameVehicle = Callable[[uuid.UUID], str]


@dataclass(frozen=True)
class VehicleDraft:
    """A vehicle as a client sent it, before validation."""

    vin: str | None
    year: int | None
    make: str | None
    model: str | None
    condition: VehicleCondition
    catalog_entry_id: uuid.UUID | None = None
    trim: str | None = None
    mileage_km: int | None = None
    color: str | None = None
    price: Decimal | None = None
    features: list[str] | None = None
    images: list[str] | None = None
    location: str | None = None
    description: str | None = None

    def validate(self, work: Work) -> rules.NewVehicle:
        return rules.validate_vehicle(
            vin=self.vin, year=self.year, make=self.make, model=self.model, trim=self.trim,
            condition=self.condition, mileage_km=self.mileage_km, color=self.color,
            price=self.price, features=self.features, images=self.images,
            location=self.location, description=self.description, now=work.now,
        )


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


async def create_vehicle(work: Work, draft: VehicleDraft, name_vehicle: NameVehicle) -> Vehicle:
    """`name_vehicle` turns an ID into the name clients know it by (its global ID)."""
    assert work.actor is not None
    new = draft.validate(work)
    entry = None
    if draft.catalog_entry_id is not None:
        entry = await work.session.get(CatalogEntry, draft.catalog_entry_id)
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


# ---------------------------------------------------------------- bulk import


@dataclass
class RowOutcome:
    index: int
    vehicle_id: uuid.UUID | None = None
    created: bool = False
    errors: list[DomainError] = field(default_factory=list)


@dataclass
class ImportResult:
    rows: list[RowOutcome]
    created: int = 0
    updated: int = 0

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r.errors)


STAGE_COLUMNS = (
    "idx", "vin", "year", "make", "model", "trim", "catalog_id", "condition", "mileage_km",
    "color", "price", "features", "images", "location", "description", "fv",
)
CREATE_STAGE = """
CREATE TEMP TABLE import_stage (
    idx int, vin varchar(17), year int, make varchar(50), model varchar(100), trim varchar(50),
    catalog_id uuid, condition varchar(20), mileage_km int, color varchar(30), price numeric(15,2),
    features text[], images text[], location varchar(100), description text, fv text
) ON COMMIT DROP
"""
# One statement writes the whole batch. An update happens only when something changed (so a
# repeated import writes nothing) and only to vehicles the caller may change (checked before,
# and again here against a concurrent listing).
UPSERT = """
INSERT INTO vehicles AS v (id, vin, year, make, model, trim, catalog_id, condition, mileage_km,
    color, price, features, images, location, description, feature_vector, listed_by, status,
    history)
SELECT gen_random_uuid(), vin, year, make, model, trim, catalog_id, condition, mileage_km, color,
    price, features, images, location, description, fv::vector, CAST(:actor AS uuid), 'available',
    jsonb_build_array(jsonb_build_object('at', CAST(:at AS text), 'event', 'imported',
                                         'status', 'available'))
FROM import_stage ORDER BY idx
ON CONFLICT (vin) DO {action}
RETURNING v.id, v.vin, (v.xmax = 0) AS inserted
"""
UPDATE_ACTION = """UPDATE SET year = EXCLUDED.year, make = EXCLUDED.make, model = EXCLUDED.model,
    trim = EXCLUDED.trim, catalog_id = EXCLUDED.catalog_id, condition = EXCLUDED.condition,
    mileage_km = EXCLUDED.mileage_km, color = EXCLUDED.color, price = EXCLUDED.price,
    features = EXCLUDED.features, images = EXCLUDED.images, location = EXCLUDED.location,
    description = EXCLUDED.description, feature_vector = EXCLUDED.feature_vector,
    text_embedding = NULL, updated_at = now(),
    history = v.history
        || jsonb_build_array(jsonb_build_object('at', CAST(:at AS text), 'event', 'updated by import'))
WHERE v.status IN ('available', 'listed')
  AND (v.listed_by = EXCLUDED.listed_by OR CAST(:staff AS boolean))
  AND (v.year, v.make, v.model, v.trim, v.catalog_id, v.condition, v.mileage_km, v.color, v.price,
       v.features, v.images, v.location, v.description)
      IS DISTINCT FROM
      (EXCLUDED.year, EXCLUDED.make, EXCLUDED.model, EXCLUDED.trim, EXCLUDED.catalog_id,
       EXCLUDED.condition, EXCLUDED.mileage_km, EXCLUDED.color, EXCLUDED.price,
       EXCLUDED.features, EXCLUDED.images, EXCLUDED.location, EXCLUDED.description)"""


async def import_vehicles(
    work: Work,
    drafts: list[VehicleDraft | DomainError],
    *,
    mode: ImportMode,
    policy: ImportErrorPolicy,
    dry_run: bool,
) -> ImportResult:
    """Validate every row on its own, then write the good ones in one set-wise statement.

    A draft may already be a DomainError (the row could not even be read, e.g. a bad ID).
    """
    assert work.actor is not None
    rules.check_import_size(len(drafts))
    outcomes = [RowOutcome(i) for i in range(len(drafts))]
    valid: dict[int, tuple[VehicleDraft, rules.NewVehicle]] = {}
    for i, draft in enumerate(drafts):
        if isinstance(draft, DomainError):
            outcomes[i].errors.extend(draft.errors)
            continue
        try:
            valid[i] = (draft, draft.validate(work))
        except DomainError as err:
            outcomes[i].errors.extend(err.errors)

    for i in rules.repeated_vins([valid[i][1].vin if i in valid else None for i in range(len(drafts))]):
        outcomes[i].errors.append(
            DomainError("DUPLICATE_VIN_IN_IMPORT", "this VIN appears earlier in the import", ("vin",))
        )
        valid.pop(i)

    entries = await _catalog_entries(work, {d.catalog_entry_id for d, _ in valid.values()} - {None})
    existing = await _existing(work, [new.vin for _, new in valid.values()])
    staff = work.actor.role in STAFF_ROLES
    for i, (draft, new) in list(valid.items()):
        try:
            if draft.catalog_entry_id is not None and draft.catalog_entry_id not in entries:
                raise DomainError("NOT_FOUND", "no such catalog entry", ("catalogEntryId",))
            if new.vin in existing:
                vehicle_id, listed_by, status = existing[new.vin]
                outcomes[i].vehicle_id = vehicle_id
                rules.check_import_target(
                    mode, VehicleStatus(status), listed_by == work.actor.user_id, staff
                )
        except DomainError as err:
            outcomes[i].errors.extend(err.errors)
            valid.pop(i)

    result = ImportResult(outcomes)
    if not valid or (policy is ImportErrorPolicy.REJECT_EVERYTHING and result.failed):
        return result

    savepoint = await work.session.begin_nested()
    try:
        written = await _write(work, valid, entries, mode, staff)
    except BaseException:
        await savepoint.rollback()
        raise
    for i, (_, new) in valid.items():
        row = written.get(new.vin)
        if row is not None:
            outcomes[i].vehicle_id, outcomes[i].created = row
            result.created += row[1]
            result.updated += not row[1]
        elif mode is ImportMode.INSERT and outcomes[i].vehicle_id is None:
            # listed concurrently between our check and the write
            outcomes[i].errors.append(DomainError("DUPLICATE_VIN", "this VIN is already listed", ("vin",)))
    if dry_run:
        await savepoint.rollback()
        for outcome in outcomes:
            if outcome.created:
                outcome.vehicle_id = None
    else:
        await savepoint.commit()
    return result


async def _catalog_entries(work: Work, ids: set) -> dict[uuid.UUID, CatalogEntry]:
    if not ids:
        return {}
    rows = await work.session.scalars(select(CatalogEntry).where(CatalogEntry.id.in_(ids)))
    return {e.id: e for e in rows}


async def _existing(work: Work, vins: list[str]) -> dict[str, tuple]:
    if not vins:
        return {}
    rows = await work.session.execute(
        select(Vehicle.vin, Vehicle.id, Vehicle.listed_by, Vehicle.status).where(Vehicle.vin.in_(vins))
    )
    return {vin: (vid, listed_by, status) for vin, vid, listed_by, status in rows}


async def _write(work, valid, entries, mode: ImportMode, staff: bool) -> dict[str, tuple]:
    connection = await work.session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    await raw.execute(CREATE_STAGE)
    records = []
    for i, (draft, new) in valid.items():
        entry = entries.get(draft.catalog_entry_id)
        vector = vector_for(new, entry, work.now.year)
        records.append((
            i, new.vin, new.year, new.make, new.model, new.trim or (entry.trim if entry else None),
            entry.id if entry else None, new.condition.value, new.mileage_km, new.color, new.price,
            new.features, new.images, new.location, new.description,
            "[" + ",".join(f"{x:.6g}" for x in vector) + "]",
        ))
    await raw.copy_records_to_table("import_stage", records=records, columns=STAGE_COLUMNS)
    action = UPDATE_ACTION if mode is ImportMode.UPSERT else "NOTHING"
    rows = await connection.execute(
        text(UPSERT.format(action=action)),
        {"actor": work.actor.user_id, "at": work.now.isoformat(), "staff": staff},
    )
    await raw.execute("DROP TABLE import_stage")
    return {vin: (vid, inserted) for vid, vin, inserted in rows}
