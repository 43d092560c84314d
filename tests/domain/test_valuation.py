from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from forecourt.domain.catalog import VehicleCondition as C
from forecourt.domain.errors import DomainError
from forecourt.domain.valuation import (
    CatalogPrices,
    Comparable,
    MarketSignal,
    Subject,
    is_stale,
    value,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CAMRY = [CatalogPrices(2018, Decimal("9000000"), Decimal("7000000"), Decimal("25000000"), 8)]


def v(year=2020, km=60_000, condition=C.CLEAN, asking=None, comps=(), catalog=CAMRY):
    return value(Subject(year, km, condition, asking), list(catalog), list(comps), NOW)


def test_older_cars_are_worth_less():
    assert v(year=2024).market_value > v(year=2020).market_value > v(year=2012).market_value


def test_mileage_and_condition_move_value():
    assert v(km=20_000).market_value > v(km=60_000).market_value > v(km=200_000).market_value
    values = [v(condition=c).market_value for c in (C.SALVAGE, C.ROUGH, C.CLEAN, C.EXCELLENT, C.UPGRADED)]
    assert values == sorted(values)


def test_comparables_pull_the_value_and_are_counted():
    cheap = [Comparable(Decimal("3000000"), 2020, 60_000, C.CLEAN)] * 8
    pricey = [Comparable(Decimal("20000000"), 2020, 60_000, C.CLEAN)] * 8
    assert v(comps=cheap).market_value < v().market_value < v(comps=pricey).market_value
    assert v(comps=cheap).comparables == 9  # eight listings and one catalog entry


def test_depreciation_curve_falls_year_by_year():
    curve = v().depreciation
    assert [y for y, _ in curve] == list(range(2026, 2032))
    values = [value for _, value in curve]
    assert values == sorted(values, reverse=True) and values[0] == v().market_value


def test_signal_from_asking_price():
    market = v().market_value
    assert v(asking=market * Decimal("0.85")).signal is MarketSignal.BUY
    assert v(asking=market).signal is MarketSignal.HOLD
    assert v(asking=market * Decimal("1.2")).signal is MarketSignal.SELL


def test_investment_score_is_between_1_and_10():
    for asking in (None, Decimal("1"), Decimal("999999999")):
        assert 1 <= v(asking=asking).investment_score <= 10
    assert v(asking=v().market_value * Decimal("0.7")).investment_score > v(asking=v().market_value * Decimal("1.3")).investment_score


def test_no_market_data():
    with pytest.raises(DomainError) as exc:
        v(catalog=())
    assert exc.value.code == "NO_MARKET_DATA"
    only_comps = v(catalog=(), comps=[Comparable(Decimal("5000000"), 2020, 60_000, C.CLEAN)])
    assert only_comps.brand_new is None and only_comps.market_value > 0


def test_staleness_after_a_week():
    assert not is_stale(NOW, NOW + timedelta(days=7))
    assert is_stale(NOW, NOW + timedelta(days=7, seconds=1))
