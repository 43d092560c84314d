from __future__ import annotations

from collections import defaultdict

from aiodataloader import DataLoader
from sqlalchemy import select

from forecourt.db.models import CatalogEntry
from forecourt.db.queries import catalog as queries
from forecourt.db.reader import Reader
from forecourt.loaders.base import ByIdLoader


class CatalogEntryByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.scalars(select(CatalogEntry).where(CatalogEntry.id.in_(ids)))
        return {row.id: row for row in rows}


class VehicleByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        return {row.id: row for row in (await self.reader.execute(queries.by_ids(ids))).all()}


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
