"""The pure auction rules: increments, buying power, proxy bidding, anti-sniping, reserve
protection, the state machine and choosing a buyer."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from forecourt.domain import auctions as rules
from forecourt.domain.auctions import (
    AuctionState,
    AuctionStatus,
    BidRequest,
    Funds,
    Standing,
)
from forecourt.domain.errors import DomainError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SELLER, A, B, C = (uuid.uuid4() for _ in range(4))
RICH = Funds(available=D("100000000"), committed=D(0), kyc_approved=True, has_bid_here=False)


def live(**over) -> AuctionState:
    values = dict(id=uuid.uuid4(), status=AuctionStatus.LIVE, seller_id=SELLER, start_price=D("1000000"),
                  reserve_price=None, bid_increment=D("50000"), deposit_percent=D("20"),
                  start_time=NOW - timedelta(hours=1), end_time=NOW + timedelta(hours=1))
    values.update(over)
    return AuctionState(**values)


def bid(state, bidder, amount, max_amount=None, funds=RICH, now=NOW):
    return rules.place_bid(state, BidRequest(bidder, D(amount), D(max_amount) if max_amount else None), funds, now)


def test_tiered_increments_grow_with_the_price():
    assert rules.increment_at(D("50000"), None) == D("5000")
    assert rules.increment_at(D("2000000"), None) == D("25000")
    assert rules.increment_at(D("60000000"), None) == D("250000")
    assert rules.increment_at(D("60000000"), D("1000")) == D("1000")


def test_first_bid_at_start_price_then_price_plus_increment():
    state = live()
    assert state.minimum_next_bid == D("1000000")
    out = bid(state, A, "1000000")
    assert out.state.current_price == D("1000000") and out.state.leader_id == A
    assert out.state.minimum_next_bid == D("1050000")
    assert out.state.bid_count == 1 and out.state.bidder_count == 1 and out.state.sequence == 1
    with pytest.raises(DomainError) as err:
        bid(out.state, B, "1049999.99")
    assert err.value.code == "BID_TOO_LOW"


@pytest.mark.parametrize("change, code", [
    (dict(status=AuctionStatus.SCHEDULED), "AUCTION_NOT_LIVE"),
    (dict(end_time=NOW), "AUCTION_ENDED"),
    (dict(seller_id=A), "OWN_AUCTION"),
])
def test_bids_refused_by_the_auction(change, code):
    with pytest.raises(DomainError) as err:
        bid(live(**change), A, "1000000")
    assert err.value.code == code


def test_kyc_and_buying_power():
    with pytest.raises(DomainError) as err:
        bid(live(), A, "1000000", funds=replace(RICH, kyc_approved=False))
    assert err.value.code == "KYC_REQUIRED"
    # 20% of (committed elsewhere + this bid) must be available
    funds = Funds(available=D("300000"), committed=D("500000"), kyc_approved=True, has_bid_here=False)
    bid(live(), A, "1000000", funds=funds)  # 20% of 1.5M = 300k: allowed
    with pytest.raises(DomainError) as err:
        bid(live(), A, "1050000", funds=funds)
    assert err.value.code == "INSUFFICIENT_FUNDS"
    # a proxy maximum is what is checked
    with pytest.raises(DomainError) as err:
        bid(live(), A, "1000000", max_amount="2000000", funds=funds)
    assert err.value.code == "INSUFFICIENT_FUNDS"


def test_proxy_maximum_answers_a_challenger_one_increment_above():
    s = bid(live(), A, "1000000", max_amount="2000000").state
    assert s.leader_max == D("2000000") and s.current_price == D("1000000")
    out = bid(s, B, "1200000")
    assert [(b.bidder_id, b.amount, b.is_proxy) for b in out.bids] == [
        (B, D("1200000"), False), (A, D("1250000"), True)]
    assert out.state.leader_id == A and out.state.current_price == D("1250000")
    assert out.state.bid_count == 3 and out.state.sequence == 3


def test_higher_maximum_takes_the_lead_one_increment_above_the_old_maximum():
    s = bid(live(), A, "1000000", max_amount="2000000").state
    out = bid(s, B, "1100000", max_amount="3000000")
    assert [(b.bidder_id, b.amount) for b in out.bids] == [(B, D("1100000")), (A, D("2000000")), (B, D("2050000"))]
    assert out.state.leader_id == B and out.state.leader_max == D("3000000")


def test_equal_maxima_the_earlier_bidder_wins():
    s = bid(live(), A, "1000000", max_amount="2000000").state
    out = bid(s, B, "1100000", max_amount="2000000")
    assert out.state.leader_id == A and out.state.current_price == D("2000000")
    assert out.bids[-1].bidder_id == A


def test_a_bid_in_the_last_two_minutes_extends_the_end_by_two_minutes():
    s = live(end_time=NOW + timedelta(seconds=90))
    out = bid(s, A, "1000000")
    assert out.state.end_time == NOW + timedelta(seconds=90 + 120)
    assert [e.type for e in out.events] == [rules.EventType.BID_PLACED, rules.EventType.EXTENDED]
    assert out.state.sequence == 2
    calm = bid(live(end_time=NOW + timedelta(minutes=3)), A, "1000000")
    assert calm.state.end_time == NOW + timedelta(minutes=3)


def test_reserve_protection_bids_within_its_limits():
    s = live(reserve_price=D("10000000"), reserve_protection=True, end_time=NOW + timedelta(minutes=30))
    s = bid(s, A, "5000000").state
    assert rules.platform_bid(s, NOW) == D("5050000")
    assert rules.platform_bid(replace(s, end_time=NOW + timedelta(minutes=61)), NOW) is None  # not yet
    assert rules.platform_bid(replace(s, reserve_protection=False), NOW) is None
    assert rules.platform_bid(replace(s, current_price=D("9000000")), NOW) is None  # 90% reached
    # never above 95% of the reserve
    assert rules.platform_bid(replace(s, current_price=D("8980000")), NOW) == D("9030000")
    assert rules.platform_bid(replace(s, current_price=D("8990000"), reserve_price=D("9480000")), NOW) is None
    out = rules.place_bid(s, BidRequest(None, D("5050000")), None, NOW)
    assert out.bids[0].is_platform and out.state.leader_id is None and out.state.platform_bids == 1
    assert rules.platform_bid(out.state, NOW) is None  # it never bids against itself


def test_state_machine_refuses_invalid_transitions():
    assert rules.transition(AuctionStatus.LIVE, AuctionStatus.ENDED) is AuctionStatus.ENDED
    for current, target in [(AuctionStatus.ENDED, AuctionStatus.LIVE), (AuctionStatus.SETTLED, AuctionStatus.CANCELLED),
                            (AuctionStatus.ENDED, AuctionStatus.CANCELLED), (AuctionStatus.DRAFT, AuctionStatus.LIVE)]:
        with pytest.raises(DomainError) as err:
            rules.transition(current, target)
        assert err.value.code == "INVALID_TRANSITION"


def test_choose_buyer_skips_passed_over_and_below_reserve():
    s = live(reserve_price=D("1500000"))
    standings = [Standing(A, D("2000000")), Standing(B, D("1600000")), Standing(C, D("1400000"))]
    assert rules.choose_buyer(s, standings, set()).bidder_id == A
    assert rules.choose_buyer(s, standings, {A}).bidder_id == B
    assert rules.choose_buyer(s, standings, {A, B}) is None


def test_terms_are_validated_together():
    terms = rules.AuctionTerms(D("0"), D("-1"), D("0"), NOW - timedelta(hours=1), NOW - timedelta(hours=2))
    with pytest.raises(DomainError) as err:
        rules.validate_terms(terms, NOW)
    codes = {e.code for e in err.value.errors}
    assert codes >= {"INVALID_PRICE", "INVALID_RESERVE", "INVALID_INCREMENT", "INVALID_SCHEDULE"}
    ok = rules.AuctionTerms(D("1000"), None, None, NOW, NOW + timedelta(hours=1))
    assert rules.validate_terms(ok, NOW) is AuctionStatus.LIVE
    later = replace(ok, start_time=NOW + timedelta(hours=1), end_time=NOW + timedelta(hours=2))
    assert rules.validate_terms(later, NOW) is AuctionStatus.SCHEDULED
