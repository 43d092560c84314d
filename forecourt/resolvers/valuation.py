"""Valuation resolvers."""

from __future__ import annotations

from forecourt.resolvers.base import optional
from forecourt.schema.context import Context
from forecourt.schema.valuation import ValuationInput, ValuationType
from forecourt.services import valuation as service


async def valuation(ctx: Context, data: ValuationInput) -> ValuationType:
    now = ctx.now()
    async with ctx.reader.lock:
        result = await service.value_request(
            ctx.session,
            now,
            make=data.make,
            model_name=data.model,
            year=data.year,
            mileage_km=optional(data.mileage_km),
            condition=optional(data.condition),
        )
    return ValuationType.from_result(result, now)
