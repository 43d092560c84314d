"""Catalog and inventory types."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from forecourt.db.models import CatalogEntry
from forecourt.domain.catalog import (
    ImportErrorPolicy,
    ImportMode,
    VehicleCondition,
    VehicleStatus,
)
from forecourt.schema.errors import UserError
from forecourt.schema.identity import UserType, load_user
from forecourt.schema.relay import Connection, Node, node_resolver, to_global_id
from forecourt.schema.scalars import JSON, Money

VehicleStatusEnum = strawberry.enum(VehicleStatus, name="VehicleStatus")
VehicleConditionEnum = strawberry.enum(VehicleCondition, name="VehicleCondition")
MAX_SIMILAR = 20

if TYPE_CHECKING:
    from forecourt.schema.auctions import AuctionType
    from forecourt.schema.valuation import ValuationType


@strawberry.enum
class VehicleOrder(enum.Enum):
    NEWEST = "NEWEST"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    YEAR_DESC = "YEAR_DESC"
    RELEVANCE = "RELEVANCE"


@strawberry.type(name="CatalogEntry")
class CatalogEntryType(Node):
    make: str
    model: str
    year_start: int
    year_end: int | None
    trim: str | None
    body_type: str | None
    fuel_type: str | None
    transmission: str | None
    drivetrain: str | None
    horsepower: int | None
    specs: JSON | None
    price_foreign_used: Money | None
    price_local_used: Money | None
    price_brand_new: Money | None

    @classmethod
    def from_model(cls, e: CatalogEntry) -> CatalogEntryType:
        return cls(
            id=to_global_id("CatalogEntry", e.id),
            make=e.make,
            model=e.model,
            year_start=e.year_start,
            year_end=e.year_end,
            trim=e.trim,
            body_type=e.body_type,
            fuel_type=e.fuel_type,
            transmission=e.transmission,
            drivetrain=e.drivetrain,
            horsepower=e.horsepower,
            specs=e.specs,
            price_foreign_used=e.price_foreign_used,
            price_local_used=e.price_local_used,
            price_brand_new=e.price_brand_new,
        )


async def load_catalog_entry(ctx, entry_id: uuid.UUID | None) -> CatalogEntryType | None:
    if entry_id is None:
        return None
    entry = await ctx.loaders.catalog_entry_by_id.load(entry_id)
    return CatalogEntryType.from_model(entry) if entry else None


@node_resolver("CatalogEntry")
async def catalog_entry_node(ctx, raw_id: uuid.UUID) -> CatalogEntryType | None:
    return await load_catalog_entry(ctx, raw_id)


@strawberry.type(name="Vehicle")
class VehicleType(Node):
    vehicle_id: strawberry.Private[uuid.UUID]
    catalog_id: strawberry.Private[uuid.UUID | None]
    listed_by_id: strawberry.Private[uuid.UUID | None]
    vin: str
    year: int
    make: str
    model: str
    trim: str | None
    condition: VehicleConditionEnum
    mileage_km: int | None
    color: str | None
    price: Money | None
    status: VehicleStatusEnum
    features: list[str]
    images: list[str]
    trust_score: int | None
    location: str | None
    description: str | None
    history: list[JSON] = strawberry.field(description="Append-only log of what happened to it.")
    created_at: datetime

    @strawberry.field
    async def catalog_entry(self, info: strawberry.Info) -> CatalogEntryType | None:
        return await load_catalog_entry(info.context, self.catalog_id)

    @strawberry.field(description="The dealer or admin who listed it.")
    async def listed_by(self, info: strawberry.Info) -> UserType | None:
        return await load_user(info.context, self.listed_by_id)

    @strawberry.field(description="The auction it is in now (scheduled, live or awaiting settlement), if any.")
    async def active_auction(
        self, info: strawberry.Info
    ) -> Annotated[AuctionType, strawberry.lazy("forecourt.schema.auctions")] | None:
        from forecourt.schema.auctions import AuctionType

        row = await info.context.loaders.active_auction_by_vehicle.load(self.vehicle_id)
        return AuctionType.from_row(row) if row else None

    @strawberry.field(description="The most recent valuation; `stale` after a week (re-queued).")
    async def latest_valuation(
        self, info: strawberry.Info
    ) -> Annotated[ValuationType, strawberry.lazy("forecourt.schema.valuation")] | None:
        from forecourt.schema.valuation import ValuationType

        row = await info.context.loaders.latest_valuation_by_vehicle.load(self.vehicle_id)
        return ValuationType.from_row(row, info.context.now()) if row else None

    @strawberry.field(description="The nearest vehicles by price, age, mileage, body, fuel, drivetrain, power and condition.")
    async def similar(self, info: strawberry.Info, first: int | None = 5) -> list[VehicleType]:
        k = max(0, min(5 if first is None else first, MAX_SIMILAR))
        if k == 0:
            return []
        rows = await info.context.loaders.similar_vehicles.load((self.vehicle_id, k))
        return [VehicleType.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, r) -> VehicleType:
        return cls(
            id=to_global_id("Vehicle", r.id),
            vehicle_id=r.id,
            catalog_id=r.catalog_id,
            listed_by_id=r.listed_by,
            vin=r.vin,
            year=r.year,
            make=r.make,
            model=r.model,
            trim=r.trim,
            condition=VehicleCondition(r.condition),
            mileage_km=r.mileage_km,
            color=r.color,
            price=r.price,
            status=VehicleStatus(r.status),
            features=r.features,
            images=r.images,
            trust_score=r.trust_score,
            location=r.location,
            description=r.description,
            history=r.history,
            created_at=r.created_at,
        )


async def load_vehicle(ctx, vehicle_id: uuid.UUID) -> VehicleType | None:
    row = await ctx.loaders.vehicle_by_id.load(vehicle_id)
    return VehicleType.from_row(row) if row else None


@node_resolver("Vehicle")
async def vehicle_node(ctx, raw_id: uuid.UUID) -> VehicleType | None:
    return await load_vehicle(ctx, raw_id)


@strawberry.type(name="VehicleConnection")
class VehicleConnection(Connection[VehicleType]):
    search_text: strawberry.Private[str | None] = None

    @strawberry.field(
        description="When a search finds nothing: the closest listing by name; ask for its "
        "`similar` vehicles to offer alternatives."
    )
    async def nearest_match(self, info: strawberry.Info) -> VehicleType | None:
        if self.edges or not self.search_text:
            return None
        from forecourt.db.queries.catalog import nearest_match

        row = (await info.context.reader.execute(nearest_match(self.search_text))).first()
        return VehicleType.from_row(row) if row else None


@strawberry.input
class VehicleFilter:
    make: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    year_min: int | None = strawberry.UNSET
    year_max: int | None = strawberry.UNSET
    price_min: Money | None = strawberry.UNSET
    price_max: Money | None = strawberry.UNSET
    condition: list[VehicleConditionEnum] | None = strawberry.UNSET
    status: list[VehicleStatusEnum] | None = strawberry.UNSET
    body_type: str | None = strawberry.UNSET
    features: list[str] | None = strawberry.UNSET


@strawberry.input
class CreateVehicleInput:
    vin: str
    year: int
    make: str
    model: str
    catalog_entry_id: strawberry.ID | None = strawberry.UNSET
    trim: str | None = strawberry.UNSET
    condition: VehicleConditionEnum
    mileage_km: int | None = strawberry.UNSET
    color: str | None = strawberry.UNSET
    price: Money | None = strawberry.UNSET
    features: list[str] | None = strawberry.UNSET
    images: list[str] | None = strawberry.UNSET
    location: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET


@strawberry.type
class VehiclePayload:
    vehicle: VehicleType | None = None
    user_errors: list[UserError]


ImportModeEnum = strawberry.enum(ImportMode, name="ImportMode")
ImportErrorPolicyEnum = strawberry.enum(ImportErrorPolicy, name="ImportErrorPolicy")


@strawberry.input
class ImportVehiclesInput:
    rows: list[CreateVehicleInput] = strawberry.field(description="At most 10,000 rows a call.")
    mode: ImportModeEnum = ImportMode.UPSERT
    error_policy: ImportErrorPolicyEnum = strawberry.field(
        default=ImportErrorPolicy.REJECT_FAILED_ROWS,
        description="REJECT_EVERYTHING: one bad row writes nothing.",
    )
    dry_run: bool = strawberry.field(default=False, description="Validate and report; write nothing.")


@strawberry.type
class ImportRowResult:
    index: int
    vehicle: VehicleType | None
    created: bool
    user_errors: list[UserError]


@strawberry.type
class ImportVehiclesPayload:
    created: int = 0
    updated: int = 0
    failed: int = 0
    rows: list[ImportRowResult] = strawberry.field(default_factory=list)
    user_errors: list[UserError]
