"""The market-value model (seed 004 workflow 1): catalog prices, comparable listings and sale
prices, adjusted for age, mileage and condition; a depreciation curve, a BUY/HOLD/SELL signal
and an investment score. Pure: the data and the clock are passed in.
"""

from __future__ import annotations

import enum
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from forecourt.domain.catalog import VehicleCondition
from forecourt.domain.errors import DomainError
from forecourt.domain.money import CENT

STALE_AFTER = timedelta(days=7)
EXPECTED_KM_PER_YEAR = 15_000
FIRST_YEAR_DEPRECIATION = 0.20
YEARLY_DEPRECIATION = 0.12
CURVE_YEARS = 5
CONDITION_FACTOR = {
    VehicleCondition.SALVAGE: 0.45,
    VehicleCondition.ROUGH: 0.75,
    VehicleCondition.CLEAN: 1.0,
    VehicleCondition.EXCELLENT: 1.08,
    VehicleCondition.UPGRADED: 1.12,
}


class MarketSignal(enum.Enum):
    BUY = "BUY"
    HOLD = "HOLD"
    SELL = "SELL"


@dataclass(frozen=True)
class CatalogPrices:
    """One catalog entry's market averages for the model year asked about."""

    year_start: int
    foreign_used: Decimal | None
    local_used: Decimal | None
    brand_new: Decimal | None
    resell_rank: int | None = None


@dataclass(frozen=True)
class Comparable:
    """A listed vehicle or a completed sale of the same make and model."""

    price: Decimal
    year: int
    mileage_km: int | None
    condition: VehicleCondition


@dataclass(frozen=True)
class Subject:
    year: int
    mileage_km: int | None
    condition: VehicleCondition | None
    asking_price: Decimal | None = None


@dataclass(frozen=True)
class Valuation:
    market_value: Decimal
    foreign_used: Decimal | None
    local_used: Decimal | None
    brand_new: Decimal | None
    investment_score: int
    signal: MarketSignal
    depreciation: list[tuple[int, Decimal]]
    comparables: int
    as_of: datetime


def _money(value: float) -> Decimal:
    return Decimal(str(max(value, 0.0))).quantize(CENT, rounding=ROUND_HALF_UP)


def _mean(values: list[Decimal]) -> Decimal | None:
    return sum(values) / len(values) if values else None  # type: ignore[return-value]


def age_factor(age: float) -> float:
    """Value retained after `age` years: 20% the first year, then 12% a year."""
    if age <= 0:
        return 1.0
    first = min(age, 1.0)
    retained: float = (1 - FIRST_YEAR_DEPRECIATION * first) * (1 - YEARLY_DEPRECIATION) ** max(age - 1, 0)
    return retained


def mileage_factor(mileage_km: int | None, age: float) -> float:
    """−3% per 10,000 km above the expected distance, +1.5% per 10,000 below; ±20% at most."""
    if mileage_km is None:
        return 1.0
    expected = EXPECTED_KM_PER_YEAR * max(age, 0.5)
    excess = (mileage_km - expected) / 10_000
    factor = 1 - 0.03 * excess if excess > 0 else 1 - 0.015 * excess
    return min(1.2, max(0.8, factor))


def condition_factor(condition: VehicleCondition | None) -> float:
    return CONDITION_FACTOR[condition or VehicleCondition.CLEAN]


def value(
    subject: Subject,
    catalog: list[CatalogPrices],
    comparables: list[Comparable],
    now: datetime,
) -> Valuation:
    if not catalog and not comparables:
        raise DomainError(
            "NO_MARKET_DATA", "no catalog prices or comparable vehicles for this make and model"
        )
    age = now.year - subject.year
    own = mileage_factor(subject.mileage_km, age) * condition_factor(subject.condition)

    foreign = _mean([c.foreign_used for c in catalog if c.foreign_used])
    local = _mean([c.local_used for c in catalog if c.local_used])
    new = _mean([c.brand_new for c in catalog if c.brand_new])

    estimates: list[tuple[float, float]] = []  # (value, weight)
    if new:
        estimates.append((float(new) * age_factor(age) * own, 1.0))
    if local:
        # the local-used average describes a typical used car of the model: a few years old
        estimates.append((float(local) * age_factor(age) / age_factor(3) * own, 1.0))
    if comparables:
        normalised = [
            float(c.price)
            / age_factor(now.year - c.year)
            / mileage_factor(c.mileage_km, now.year - c.year)
            / condition_factor(c.condition)
            for c in comparables
        ]
        weight = 2.0 * len(comparables) / (len(comparables) + 3)
        estimates.append((statistics.median(normalised) * age_factor(age) * own, weight))
    market = sum(v * w for v, w in estimates) / sum(w for _, w in estimates)

    curve = [
        (now.year + k, _money(market * age_factor(age + k) / age_factor(age)))
        for k in range(CURVE_YEARS + 1)
    ]
    yearly_loss = 1 - age_factor(age + 1) / age_factor(age)
    ranks = [c.resell_rank for c in catalog if c.resell_rank]
    resell = sum(ranks) / len(ranks) if ranks else 5
    score = investment_score(yearly_loss, resell, len(comparables), subject, market)
    return Valuation(
        market_value=_money(market),
        foreign_used=foreign.quantize(CENT) if foreign else None,
        local_used=local.quantize(CENT) if local else None,
        brand_new=new.quantize(CENT) if new else None,
        investment_score=score,
        signal=signal(subject.asking_price, market, score),
        depreciation=curve,
        comparables=len(comparables) + len(catalog),
        as_of=now,
    )


def investment_score(
    yearly_loss: float, resell_rank: float, comparables: int, subject: Subject, market: float
) -> int:
    """1–10: slow depreciation, a strong resale rank, a liquid market and a good price."""
    score = 5.0
    score += (0.15 - yearly_loss) * 20  # 12%/yr is neutral-ish; 20%/yr costs a point and a half
    score += (resell_rank - 5) * 0.4
    score += min(comparables, 10) * 0.1
    if subject.asking_price:
        discount = 1 - float(subject.asking_price) / market
        score += max(-2.0, min(2.0, discount * 10))
    return int(max(1, min(10, round(score))))


def signal(asking_price: Decimal | None, market: float, score: int) -> MarketSignal:
    if asking_price is not None:
        ratio = float(asking_price) / market
        if ratio <= 0.92:
            return MarketSignal.BUY
        if ratio >= 1.08:
            return MarketSignal.SELL
        return MarketSignal.HOLD
    if score >= 7:
        return MarketSignal.BUY
    if score <= 3:
        return MarketSignal.SELL
    return MarketSignal.HOLD


def is_stale(as_of: datetime, now: datetime) -> bool:
    return now - as_of > STALE_AFTER
