"""Inventory use cases: listing one vehicle, and bulk imports for dealers' scripts."""

from __future__ import annotations

import gc
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

import asyncpg
from asyncpg.pgproto.pgproto import UUID as WireUUID
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from forecourt.db.errors import violates
from forecourt.db.models import CatalogEntry, Vehicle
from forecourt.db.models.catalog import VehicleVector
from forecourt.db.queries import catalog as queries
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
from forecourt.services import Work, vector_index

NameVehicle = Callable[[uuid.UUID], str]


class VehicleDraft(NamedTuple):
    """A vehicle as a client sent it, before validation (a tuple: imports make 10,000)."""

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
            await work.session.flush()
            # One vehicle: indexed in its own transaction (no queue, nothing pending).
            work.session.add(VehicleVector(vehicle_id=vehicle.id, feature_vector=vehicle.feature_vector))
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


async def import_vehicles(
    work: Work,
    drafts: list[VehicleDraft | DomainError],
    *,
    mode: ImportMode,
    policy: ImportErrorPolicy,
    dry_run: bool,
) -> ImportResult:
    """Validate every row on its own, then write the good ones set-wise: one COPY for the new
    VINs, one INSERT ... ON CONFLICT for those already listed.

    A draft may already be a DomainError (the row could not even be read, e.g. a bad ID).
    """
    with _collector_paused():
        return await _import(work, drafts, mode, policy, dry_run)


_pauses = 0
_resume_collector = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while imports run (nested and concurrent
    ones in this process: until the last ends).

    An import allocates several objects per row that live until it ends (rows validated,
    outcomes, ids, records) and make no reference cycles, so the collections they set off find
    nothing to free, but every so many of them is a full one that walks every object not
    frozen at startup, the import's own included (100-260 ms each in the bench's process,
    one inside 2 of 5 timed 10,000-row writes). Reference
    counting frees everything as always; collections resume when the last import ends (the
    first one then is a young-generation pass over what is still alive)."""
    global _pauses, _resume_collector
    if _pauses == 0:
        _resume_collector = gc.isenabled()
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0 and _resume_collector:
            gc.enable()


async def _import(
    work: Work,
    drafts: list[VehicleDraft | DomainError],
    mode: ImportMode,
    policy: ImportErrorPolicy,
    dry_run: bool,
) -> ImportResult:
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
        written = await _write(work, valid, entries, existing, mode, staff)
    except BaseException:
        await savepoint.rollback()
        raise
    listed_meanwhile: dict[int, str] = {}
    for i, (_, new) in valid.items():
        row = written.get(new.vin)
        if row is not None:
            outcomes[i].vehicle_id, outcomes[i].created = row
            result.created += row[1]
            result.updated += not row[1]
        elif outcomes[i].vehicle_id is None:
            listed_meanwhile[i] = new.vin
    if listed_meanwhile:
        # Listed by someone else between our check and the write (ON CONFLICT left them alone):
        # the same checks as for VINs listed before, against what is there now.
        listed = await _existing(work, list(listed_meanwhile.values()))
        for i, vin in listed_meanwhile.items():
            try:
                if vin not in listed:  # cannot happen (vehicles are never deleted); be plain about it
                    raise DomainError("DUPLICATE_VIN", "this VIN is already listed", ("vin",))
                outcomes[i].vehicle_id, listed_by, status = listed[vin]
                rules.check_import_target(
                    mode, VehicleStatus(status), listed_by == work.actor.user_id, staff
                )
            except DomainError as err:
                outcomes[i].errors.extend(err.errors)
    rejected = policy is ImportErrorPolicy.REJECT_EVERYTHING and result.failed
    if dry_run or rejected:
        await savepoint.rollback()
        for outcome in outcomes:
            if outcome.created:
                outcome.vehicle_id = None
                outcome.created = not rejected
        if rejected:
            result.created = result.updated = 0
    else:
        await savepoint.commit()
        if result.created or result.updated:  # their vectors were queued: index them soon
            vector_index.kick_after_commit(work.session)
    return result


async def _catalog_entries(work: Work, ids: set) -> dict[uuid.UUID, CatalogEntry]:
    if not ids:
        return {}
    rows = await work.session.scalars(select(CatalogEntry).where(CatalogEntry.id.in_(ids)))
    return {e.id: e for e in rows}


async def _existing(work: Work, vins: list[str]) -> dict[str, tuple]:
    if not vins:
        return {}
    raw = await _driver_connection(work)
    rows = await raw.fetch(queries.EXISTING_VINS, vins)
    return {vin: (vid, listed_by, status) for vin, vid, listed_by, status in rows}


async def _driver_connection(work: Work) -> Any:
    """The asyncpg connection under the session's transaction."""
    connection = await work.session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def _write(
    work: Work,
    valid: dict[int, tuple[VehicleDraft, rules.NewVehicle]],
    entries: dict[uuid.UUID, CatalogEntry],
    existing: dict[str, tuple],
    mode: ImportMode,
    staff: bool,
) -> dict[str, tuple[uuid.UUID, bool]]:
    """Write the valid rows set-wise: VIN -> (vehicle id, created) for each row written."""
    assert work.actor is not None
    raw = await _driver_connection(work)
    now = work.now
    history = json.dumps([{"at": now.isoformat(), "event": "imported", "status": "available"}])
    new_rows: list[_Row] = []
    known: list[_Row] = []
    for i, (draft, new) in valid.items():
        entry = entries.get(draft.catalog_entry_id) if draft.catalog_entry_id else None
        (known if new.vin in existing else new_rows).append((i, new, entry))
    known_rows = [(i, _values(new, entry, now.year)) for i, new, entry in known]

    written: dict[str, tuple[uuid.UUID, bool]] = {}
    async with queries.binary_vectors(raw):
        if new_rows:
            copied = await _copy_new(raw, new_rows, work.actor.user_id, history, now.year)
            if copied is None:  # a VIN was listed concurrently: let ON CONFLICT sort them out
                known_rows[:0] = [(i, _values(new, entry, now.year)) for i, new, entry in new_rows]
            else:
                written.update(copied)
        if known_rows:
            await raw.execute(queries.CREATE_STAGE)
            await raw.copy_records_to_table(
                "import_stage", records=[(i, *values) for i, values in known_rows],
                columns=queries.STAGE_COLUMNS,
            )
            if mode is ImportMode.UPSERT:
                rows = await raw.fetch(
                    queries.UPSERT_OR_UPDATE, work.actor.user_id, history, now.isoformat(), staff
                )
            else:
                rows = await raw.fetch(queries.UPSERT_NEW_ONLY, work.actor.user_id, history)
            await raw.execute("DROP TABLE import_stage")
            written.update({vin: (vid, inserted) for vid, vin, inserted in rows})
    return written


# A valid row to write: its index in the import, its facts, its catalog entry (if any).
_Row = tuple[int, rules.NewVehicle, CatalogEntry | None]


def _values(new: rules.NewVehicle, entry: CatalogEntry | None, now_year: int) -> tuple:
    """A row's columns, in queries.STAGE_COLUMNS' order after `idx`."""
    return (
        new.vin, new.year, new.make, new.model, new.trim or (entry.trim if entry else None),
        entry.id if entry else None, new.condition.value, new.mileage_km, new.color,
        new.price, new.features, new.images, new.location, new.description,
        vector_for(new, entry, now_year),
    )


# UUIDv7's bytes 6-8 for each place in a batch: the version (7), the place's top 12 bits, the
# variant (0b10), the place's last 2 bits, and 4 bits left for randomness (filled in below).
_UUID7_PLACES = [
    bytes(((0x70 | n >> 10), (n >> 2) & 0xFF, 0x80 | (n & 3) << 4)) for n in range(1 << 14)
]


def new_vehicle_ids(count: int) -> list[uuid.UUID]:
    """`count` ids for new vehicles, in ascending order: UUIDv7 (RFC 9562), the current
    millisecond, then the id's place in the batch (14 bits) and 60 random bits. (asyncpg's
    own UUID class, which it decodes every uuid into: ~10x quicker to make and to send.)

    Every index on the id (the primary key, vehicles awaiting a text embedding, the vector
    queue's key) and on (created_at, id) takes a batch at one edge instead of at `count`
    random places (measured on a 10,000-row COPY into vehicles: ~55 ms less of ~415 ms).
    Ids still say nothing but what `createdAt` shows, and 60 random bits keep them unguessable
    from one another.
    """
    assert count <= len(_UUID7_PLACES)
    millisecond = (time.time_ns() // 1_000_000 % (1 << 48)).to_bytes(6, "big")
    noise = os.urandom(8 * count)
    ids = []
    for n in range(count):
        place = _UUID7_PLACES[n]
        ids.append(WireUUID(b"".join((
            millisecond, place[:2], bytes((place[2] | noise[8 * n] & 0x0F,)),
            noise[8 * n + 1:8 * n + 8],
        ))))
    return ids


async def _copy_new(
    raw: Any, rows: list[_Row], actor: uuid.UUID, history: str, now_year: int
) -> dict[str, tuple[uuid.UUID, bool]] | None:
    """One binary COPY into `vehicles` of rows whose VINs were not listed a moment ago; None
    (and nothing written) if one of them was listed in between.

    The records are made as the COPY sends them (a generator), so that building them (their
    feature vectors) overlaps with PostgreSQL writing the rows already sent."""
    ids = new_vehicle_ids(len(rows))
    records = (
        (vid, *_values(new, entry, now_year), actor, "available", history)
        for vid, (_, new, entry) in zip(ids, rows, strict=True)
    )
    await raw.execute("SAVEPOINT import_copy")
    try:
        await raw.copy_records_to_table(
            "vehicles", records=records, columns=queries.NEW_VEHICLE_COLUMNS
        )
        # Their vectors are indexed after commit (services/vector_index.py); new ids: a COPY.
        await raw.copy_records_to_table("vehicle_vector_queue", records=[(vid,) for vid in ids])
    except asyncpg.UniqueViolationError as err:
        if err.constraint_name != "uq_vehicles_vin":
            raise
        await raw.execute("ROLLBACK TO SAVEPOINT import_copy")
        return None
    await raw.execute("RELEASE SAVEPOINT import_copy")
    return {new.vin: (vid, True) for vid, (_, new, _) in zip(ids, rows, strict=True)}
