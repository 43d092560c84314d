from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on

from forecourt.db.models import VehicleValuation
from forecourt.loaders.base import ByIdLoader


class LatestValuationByVehicleLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.scalars(
            select(VehicleValuation)
            .where(VehicleValuation.vehicle_id.in_(ids))
            .ext(distinct_on(VehicleValuation.vehicle_id))
            .order_by(VehicleValuation.vehicle_id, VehicleValuation.as_of.desc())
        )
        return {row.vehicle_id: row for row in rows}
