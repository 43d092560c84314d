"""Catalog and inventory types."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import strawberry

from forecourt.db.queries import catalog as queries
from forecourt.db.queries.catalog import DETAIL_COLUMNS, VEHICLE_COLUMNS
from forecourt.domain.catalog import (
    ImportErrorPolicy,
    ImportMode,
    VehicleCondition,
    VehicleStatus,
)
from forecourt.loaders.base import record
from forecourt.schema.errors import UserError
from forecourt.schema.identity import UserType
from forecourt.schema.inputs import prebuilt
from forecourt.schema.relay import (
    Connection,
    Edge,
    Node,
    node_resolver,
    selected_under,
    to_global_id,
)
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
    def from_model(cls, e: Any) -> CatalogEntryType:
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
    trust_score: int | None
    location: str | None
    created_at: datetime

    # What was loaded for a whole page at once, by Python field name: the relations the
    # selection asks for (see VehicleConnection.resolve_edges) and the listing details
    # (features, images, description, history: the bulk of a row, left out of lists unless
    # asked for). Not a dataclass field.
    prefetched: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    # These resolvers are synchronous: they return what was prefetched (no coroutine, no
    # future, no gather), or else an awaitable that loads it through a DataLoader.
    @strawberry.field
    def features(self, info: strawberry.Info) -> list[str]:
        return self._detail(info, "features")

    @strawberry.field
    def images(self, info: strawberry.Info) -> list[str]:
        return self._detail(info, "images")

    @strawberry.field
    def description(self, info: strawberry.Info) -> str | None:
        return self._detail(info, "description")

    @strawberry.field(description="Append-only log of what happened to it.")
    def history(self, info: strawberry.Info) -> list[JSON]:
        return self._detail(info, "history")

    def _detail(self, info: strawberry.Info, name: str) -> Any:
        if name in self.prefetched:
            return self.prefetched[name]
        return _load_detail(info.context, self.vehicle_id, name)

    @strawberry.field
    def catalog_entry(self, info: strawberry.Info) -> CatalogEntryType | None:
        if "catalog_entry" in self.prefetched:
            return self.prefetched["catalog_entry"]
        return load_catalog_entry(info.context, self.catalog_id)

    @strawberry.field(description="The dealer or admin who listed it.")
    def listed_by(self, info: strawberry.Info) -> UserType | None:
        if "listed_by" in self.prefetched:
            return self.prefetched["listed_by"]
        return _load_lister(info.context, self.listed_by_id)

    @strawberry.field(description="The auction it is in now (scheduled, live or awaiting settlement), if any.")
    def active_auction(
        self, info: strawberry.Info
    ) -> Annotated[AuctionType, strawberry.lazy("forecourt.schema.auctions")] | None:
        if "active_auction" in self.prefetched:
            return self.prefetched["active_auction"]
        return _load_active_auction(info.context, self.vehicle_id)

    @strawberry.field(description="The most recent valuation; `stale` after a week (re-queued).")
    def latest_valuation(
        self, info: strawberry.Info
    ) -> Annotated[ValuationType, strawberry.lazy("forecourt.schema.valuation")] | None:
        if "latest_valuation" in self.prefetched:
            return self.prefetched["latest_valuation"]
        return _load_latest_valuation(info.context, self.vehicle_id)

    @strawberry.field(
        description="The nearest vehicles by price, age, mileage, body, fuel, drivetrain, power and condition."
    )
    async def similar(self, info: strawberry.Info, first: int | None = 5) -> list[VehicleType]:
        k = max(0, min(5 if first is None else first, MAX_SIMILAR))
        if k == 0:
            return []
        rows = await info.context.loaders.similar_vehicles.load((self.vehicle_id, k))
        return VehicleType.from_row.many(rows)

    @classmethod
    def build(
        cls, id, catalog_id, listed_by, vin, year, make, model, trim, condition,
        mileage_km, color, price, status, trust_score, location, created_at,
    ) -> VehicleType:
        """From the values of queries.VEHICLE_COLUMNS, in that order."""
        return cls(
            id=to_global_id("Vehicle", id),
            vehicle_id=id,
            catalog_id=catalog_id,
            listed_by_id=listed_by,
            vin=vin,
            year=year,
            make=make,
            model=model,
            trim=trim,
            condition=_CONDITIONS.get(condition) or VehicleCondition(condition),
            mileage_km=mileage_km,
            color=color,
            price=price,
            status=_STATUSES.get(status) or VehicleStatus(status),
            trust_score=trust_score,
            location=location,
            created_at=created_at,
        )

    from_row: ClassVar[RowConverter]


_CONDITIONS = {c.value: c for c in VehicleCondition}
_STATUSES = {s.value: s for s in VehicleStatus}


class RowConverter:
    """Builds a VehicleType from a row (or an ORM Vehicle): `from_row(row)`, or for a page of
    rows from one result `from_row.many(rows)`, which finds the columns by name once and then
    reads them by position (attribute access on a Row costs ~0.5 µs a column). Listing
    details present in the row are kept as prefetched."""

    def __init__(self, columns: tuple[str, ...], details: tuple[str, ...]) -> None:
        self.columns = columns
        self.details = details

    def __call__(self, r: Any) -> VehicleType:
        vehicle = VehicleType.build(*(getattr(r, name) for name in self.columns))
        if hasattr(r, self.details[0]):
            vehicle.prefetched = {name: getattr(r, name) for name in self.details}
        return vehicle

    def many(self, rows: Sequence[Any]) -> list[VehicleType]:
        if not rows or not hasattr(rows[0], "_fields"):
            return [self(r) for r in rows]
        fields = rows[0]._fields
        position = {name: i for i, name in enumerate(fields)}
        values = itemgetter(*(position[name] for name in self.columns))
        build = VehicleType.build
        vehicles = [build(*values(r)) for r in rows]
        if self.details[0] in position:
            details = itemgetter(*(position[name] for name in self.details))
            names = self.details
            for vehicle, r in zip(vehicles, rows, strict=True):
                vehicle.prefetched = dict(zip(names, details(r), strict=True))
        return vehicles


VehicleType.from_row = RowConverter(
    tuple(c.name for c in VEHICLE_COLUMNS), tuple(c.name for c in DETAIL_COLUMNS)
)
DETAILS = frozenset({"features", "images", "description", "history"})


async def _load_detail(ctx, vehicle_id: uuid.UUID, name: str) -> Any:
    row = await ctx.loaders.vehicle_details_by_id.load(vehicle_id)
    return getattr(row, name) if row is not None else None


async def load_vehicle(ctx, vehicle_id: uuid.UUID) -> VehicleType | None:
    row = await ctx.loaders.vehicle_by_id.load(vehicle_id)
    return VehicleType.from_row(row) if row else None


@node_resolver("Vehicle")
async def vehicle_node(ctx, raw_id: uuid.UUID) -> VehicleType | None:
    return await load_vehicle(ctx, raw_id)


async def _load_lister(ctx, user_id: uuid.UUID | None) -> UserType | None:
    if user_id is None:
        return None
    row = await ctx.loaders.user_row_by_id.load(user_id)
    return UserType.from_model(row) if row else None


async def _load_active_auction(ctx, vehicle_id: uuid.UUID) -> AuctionType | None:
    from forecourt.schema.auctions import AuctionType

    row = await ctx.loaders.active_auction_row_by_vehicle.load(vehicle_id)
    return AuctionType.from_row(row) if row else None


async def _load_latest_valuation(ctx, vehicle_id: uuid.UUID) -> ValuationType | None:
    from forecourt.schema.valuation import ValuationType

    row = await ctx.loaders.latest_valuation_row_by_vehicle.load(vehicle_id)
    return ValuationType.from_row(row, ctx.now()) if row else None


# GraphQL field -> the relation (queries.RELATIONS) that serves it
_RELATION_OF = {
    "features": "details", "images": "details", "description": "details", "history": "details",
    "catalogEntry": "catalog_entry", "listedBy": "listed_by", "activeAuction": "active_auction",
    "latestValuation": "latest_valuation",
}


async def prefetch_relations(
    ctx, vehicles: list[VehicleType], wanted: Collection[str], curve: bool = True
) -> None:
    """Load what `wanted` (GraphQL field names) asks of all `vehicles` and the rows did not
    hold (relations, listing details) in one statement, whatever the number of vehicles.
    `curve=False`: the selection shows no valuation's depreciation curve; it is not read."""
    from forecourt.schema.auctions import AuctionType
    from forecourt.schema.valuation import ValuationType

    relations = {_RELATION_OF[name] for name in wanted if name in _RELATION_OF}
    if "details" in relations and all("history" in v.prefetched for v in vehicles):
        relations.discard("details")  # the rows had them
    found: list[dict[str, Any]] = [dict(v.prefetched) for v in vehicles]
    if relations:
        statement, parts = queries.page_relations(frozenset(relations), curve)
        result = await ctx.reader.execute(statement, {
            "vehicle_ids": [v.vehicle_id for v in vehicles],
            "catalog_ids": [v.catalog_id for v in vehicles],
            "lister_ids": [v.listed_by_id for v in vehicles],
        })
        rows = result.all()
        now = ctx.now()
        for name, (part, names) in parts.items():
            if name == "details":
                for f, row in zip(found, rows, strict=True):
                    f.update(zip(names, row[part], strict=True))
            elif name == "catalog_entry":
                _shared(vehicles, found, rows, part, name, lambda v: v.catalog_id,
                        lambda values, names=names: CatalogEntryType.from_model(record(names, values)))
            elif name == "listed_by":
                _shared(vehicles, found, rows, part, name, lambda v: v.listed_by_id,
                        lambda values, names=names: UserType.from_model(record(names, values)))
            elif name == "active_auction":
                for f, row in zip(found, rows, strict=True):
                    values = row[part]
                    f[name] = None if values[0] is None else AuctionType.from_row(
                        dict(zip(names, values, strict=True))
                    )
            else:
                for f, row in zip(found, rows, strict=True):
                    values = row[part]
                    f[name] = None if values[0] is None else ValuationType.from_row(
                        record(names, values), now
                    )
    for v, f in zip(vehicles, found, strict=True):
        v.prefetched = f


def _shared(vehicles, found, rows, part, name, key, build) -> None:
    """A relation many vehicles of a page may share (a catalog entry, a lister): one object
    per distinct key, from the first row that has the key (the only one that reads it)."""
    built: dict[Any, Any] = {None: None}
    for v, f, row in zip(vehicles, found, rows, strict=True):
        k = key(v)
        if k not in built:
            values = row[part]
            built[k] = None if values[0] is None else build(values)
        f[name] = built[k]


PREFETCHED = DETAILS | {"catalogEntry", "listedBy", "activeAuction", "latestValuation"}


@strawberry.type(name="VehicleConnection")
class VehicleConnection(Connection[VehicleType]):
    search_text: strawberry.Private[str | None] = None

    def resolve_edges(self, info: strawberry.Info):
        if not self.edge_list:
            return self.edge_list
        node, valuation = selected_under(info, ("node",), ("node", "latestValuation"))
        wanted = PREFETCHED.intersection(node)
        if not wanted:
            return self.edge_list
        return self._prefetched_edges(info.context, wanted, "depreciation" in valuation)

    async def _prefetched_edges(
        self, ctx, wanted: Collection[str], curve: bool
    ) -> list[Edge[VehicleType]]:
        await prefetch_relations(ctx, [edge.node for edge in self.edge_list], wanted, curve)
        return self.edge_list

    @strawberry.field(
        description="When a search finds nothing: the closest listing by name; ask for its "
        "`similar` vehicles to offer alternatives."
    )
    async def nearest_match(self, info: strawberry.Info) -> VehicleType | None:
        if self.edge_list or not self.search_text:
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


@prebuilt  # 10,000 of them in one importVehicles call
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


@prebuilt  # its rows are built in one loop
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
    vehicle_id: strawberry.Private[uuid.UUID | None]
    index: int
    created: bool
    user_errors: list[UserError]

    @strawberry.field(description="The vehicle written or matched (loaded only when asked for).")
    async def vehicle(self, info: strawberry.Info) -> VehicleType | None:
        if self.vehicle_id is None:
            return None
        row = await info.context.loaders.vehicle_by_id.load(self.vehicle_id)
        return VehicleType.from_row(row) if row else None


@strawberry.type
class ImportVehiclesPayload:
    created: int = 0
    updated: int = 0
    failed: int = 0
    rows: list[ImportRowResult] = strawberry.field(default_factory=list)
    user_errors: list[UserError]
