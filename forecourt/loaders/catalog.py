from __future__ import annotations

from collections import defaultdict

from aiodataloader import DataLoader

from forecourt.db.queries import catalog as queries
from forecourt.db.reader import Reader
from forecourt.loaders.base import ByIdLoader, mappings, records


class CatalogEntryByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = records(await self.reader.execute(queries.CATALOG_ENTRIES, {"ids": ids}))
        return {row.id: row for row in rows}


class VehicleByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        return {row.id: row for row in (await self.reader.execute(queries.by_ids(ids))).all()}


class VehicleDetailsByIdLoader(ByIdLoader):
    """A vehicle's listing details (features, images, description, history)."""

    async def fetch(self, ids):
        rows = records(await self.reader.execute(queries.VEHICLE_DETAILS, {"ids": ids}))
        return {row.id: row for row in rows}


class UserRowByIdLoader(ByIdLoader):
    """Users as plain rows (the columns UserType shows), for vehicles' `listedBy`."""

    async def fetch(self, ids):
        rows = records(await self.reader.execute(queries.USERS, {"ids": ids}))
        return {row.id: row for row in rows}


class LatestValuationRowByVehicleLoader(ByIdLoader):
    """The newest stored valuation of each vehicle, as plain rows."""

    async def fetch(self, ids):
        rows = records(await self.reader.execute(queries.LATEST_VALUATIONS, {"ids": ids}))
        return {row.vehicle_id: row for row in rows}


class ActiveAuctionRowByVehicleLoader(ByIdLoader):
    """The auction each vehicle is in now, as a mapping of all its columns (what
    AuctionType.from_row reads); one prebuilt statement that can use the partial index."""

    async def fetch(self, ids):
        rows = mappings(await self.reader.execute(queries.ACTIVE_AUCTIONS, {"ids": ids}))
        return {row["vehicle_id"]: row for row in rows}


class SimilarVehiclesLoader(DataLoader):
    """Keys are (vehicle id, k); one LATERAL k-NN query per distinct k in a batch."""

    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self.reader = reader

    async def batch_load_fn(self, keys):
        by_k: dict[int, set] = defaultdict(set)
        for vehicle_id, k in keys:
            by_k[k].add(vehicle_id)
        found: dict[tuple, list] = defaultdict(list)
        for k, ids in by_k.items():
            for row in (await self.reader.execute(queries.similar_to(ids, k))).all():
                found[(row.source_id, k)].append(row)
        return [found[key] for key in keys]
