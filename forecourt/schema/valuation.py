"""Valuation types."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from forecourt.domain import valuation as model
from forecourt.domain.valuation import MarketSignal
from forecourt.schema.catalog import VehicleConditionEnum
from forecourt.schema.scalars import Money

MarketSignalEnum = strawberry.enum(MarketSignal, name="MarketSignal")


@strawberry.type
class PricePoint:
    year: int
    value: Money


@strawberry.type(name="Valuation")
class ValuationType:
    market_value: Money
    foreign_used: Money | None = strawberry.field(description="Foreign-used (Tokunbo) average.")
    local_used: Money | None
    brand_new: Money | None
    investment_score: int = strawberry.field(description="1 (poor) to 10 (excellent).")
    signal: MarketSignalEnum
    depreciation: list[PricePoint] = strawberry.field(description="Projected value by year.")
    as_of: datetime
    comparables: int = strawberry.field(description="How many market data points it rests on.")
    stale: bool = strawberry.field(
        description="Older than a week; a fresh valuation is already queued."
    )

    @classmethod
    def from_result(cls, v: model.Valuation, now: datetime) -> ValuationType:
        return cls(
            market_value=v.market_value,
            foreign_used=v.foreign_used,
            local_used=v.local_used,
            brand_new=v.brand_new,
            investment_score=v.investment_score,
            signal=v.signal,
            depreciation=[PricePoint(year=y, value=value) for y, value in v.depreciation],
            as_of=v.as_of,
            comparables=v.comparables,
            stale=model.is_stale(v.as_of, now),
        )

    @classmethod
    def from_row(cls, r, now: datetime) -> ValuationType:
        """From a stored vehicle_valuations row."""
        stored = model.Valuation(
            market_value=r.market_value,
            foreign_used=r.foreign_used,
            local_used=r.local_used,
            brand_new=r.brand_new,
            investment_score=r.investment_score,
            signal=MarketSignal(r.signal),
            depreciation=[(p["year"], Decimal(p["value"])) for p in r.depreciation],
            comparables=r.comparables,
            as_of=r.as_of,
        )
        return cls.from_result(stored, now)


@strawberry.input
class ValuationInput:
    make: str
    model: str
    year: int
    mileage_km: int | None = strawberry.UNSET
    condition: VehicleConditionEnum | None = strawberry.UNSET
