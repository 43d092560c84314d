"""Auction rules (seed 004 workflows 2 and 3): the state machine, increments, bids, proxy
bidding, anti-sniping, reserve protection, closing and settlement offers.

Everything here is pure: it takes the auction's state and returns what changes. The services
hold the locks and write the result.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from forecourt.domain.errors import DomainError, Validator
from forecourt.domain.money import money

ANTI_SNIPING_WINDOW = timedelta(minutes=2)
ANTI_SNIPING_EXTENSION = timedelta(minutes=2)
SETTLEMENT_WINDOW = timedelta(hours=24)
DEFAULT_DEPOSIT_PERCENT = Decimal("20")
MAX_AUCTION_LENGTH = timedelta(days=30)
MIN_AUCTION_LENGTH = timedelta(minutes=5)

# Reserve protection (seed 004): during the last hour, while the price is under 90% of the
# reserve, the platform bids one increment at a time, never above 95% of the reserve.
PROTECTION_WINDOW = timedelta(minutes=60)
PROTECTION_TRIGGER = Decimal("0.90")
PROTECTION_CEILING = Decimal("0.95")

# The increment grows with the price, as the big salvage auctions do: (from price, increment).
INCREMENT_TIERS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("0"), Decimal("5000")),
    (Decimal("100000"), Decimal("10000")),
    (Decimal("1000000"), Decimal("25000")),
    (Decimal("5000000"), Decimal("50000")),
    (Decimal("20000000"), Decimal("100000")),
    (Decimal("50000000"), Decimal("250000")),
)


class AuctionStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    PENDING_SETTLEMENT = "pending_settlement"
    SETTLED = "settled"
    UNSOLD = "unsold"
    CANCELLED = "cancelled"
    RELISTED = "relisted"


S = AuctionStatus
TRANSITIONS: dict[AuctionStatus, frozenset[AuctionStatus]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.LIVE, S.CANCELLED}),
    S.LIVE: frozenset({S.ENDED, S.CANCELLED}),
    S.ENDED: frozenset({S.PENDING_SETTLEMENT, S.UNSOLD}),
    # a winner who does not pay in time is replaced by the next bidder, or nobody buys
    S.PENDING_SETTLEMENT: frozenset({S.SETTLED, S.PENDING_SETTLEMENT, S.UNSOLD}),
    S.UNSOLD: frozenset({S.RELISTED}),
    S.SETTLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.RELISTED: frozenset(),
}
# A vehicle is in at most one of these at a time (a partial unique index says the same).
ACTIVE = frozenset({S.DRAFT, S.SCHEDULED, S.LIVE, S.ENDED, S.PENDING_SETTLEMENT})


def transition(current: AuctionStatus, target: AuctionStatus) -> AuctionStatus:
    if target not in TRANSITIONS[current]:
        raise DomainError(
            "INVALID_TRANSITION", f"An auction cannot go from {current.name} to {target.name}"
        )
    return target


class EventType(enum.StrEnum):
    BID_PLACED = "BID_PLACED"
    EXTENDED = "EXTENDED"
    ENDED = "ENDED"
    SETTLEMENT_STARTED = "SETTLEMENT_STARTED"
    SETTLED = "SETTLED"
    CANCELLED = "CANCELLED"


def increment_at(price: Decimal, fixed: Decimal | None) -> Decimal:
    """The minimum raise over `price`: the auction's fixed increment, else the tier's."""
    if fixed is not None:
        return fixed
    step = INCREMENT_TIERS[0][1]
    for floor, tier_step in INCREMENT_TIERS:
        if price >= floor:
            step = tier_step
    return step


def deposit_for(amount: Decimal, percent: Decimal) -> Decimal:
    return money(amount * percent / 100)


# ---------------------------------------------------------------- creating an auction


@dataclass(frozen=True)
class AuctionTerms:
    start_price: Decimal
    reserve_price: Decimal | None
    bid_increment: Decimal | None
    start_time: datetime
    end_time: datetime


def validate_terms(terms: AuctionTerms, now: datetime) -> AuctionStatus:
    """Check the terms; the auction starts SCHEDULED, or LIVE if it starts now."""
    v = Validator()
    if terms.start_price <= 0:
        v.add("INVALID_PRICE", "The start price must be positive", "startPrice")
    if terms.reserve_price is not None and terms.reserve_price < terms.start_price:
        v.add("INVALID_RESERVE", "The reserve cannot be below the start price", "reservePrice")
    if terms.bid_increment is not None and terms.bid_increment <= 0:
        v.add("INVALID_INCREMENT", "The bid increment must be positive", "bidIncrement")
    if terms.start_time < now - timedelta(minutes=1):
        v.add("INVALID_SCHEDULE", "An auction cannot start in the past", "startTime")
    length = terms.end_time - terms.start_time
    if length < MIN_AUCTION_LENGTH:
        v.add("INVALID_SCHEDULE", f"An auction runs at least {MIN_AUCTION_LENGTH.seconds // 60} minutes", "endTime")
    if length > MAX_AUCTION_LENGTH:
        v.add("INVALID_SCHEDULE", f"An auction runs at most {MAX_AUCTION_LENGTH.days} days", "endTime")
    v.check()
    return S.LIVE if terms.start_time <= now else S.SCHEDULED


# ---------------------------------------------------------------- bidding


@dataclass(frozen=True)
class AuctionState:
    """What bidding needs to know about an auction, read under its row lock."""

    id: uuid.UUID
    status: AuctionStatus
    seller_id: uuid.UUID
    start_price: Decimal
    reserve_price: Decimal | None
    bid_increment: Decimal | None
    deposit_percent: Decimal
    start_time: datetime
    end_time: datetime
    current_price: Decimal | None = None
    leader_id: uuid.UUID | None = None  # None with a price: the platform leads
    leader_max: Decimal | None = None  # the leader's proxy maximum, if above the price
    bid_count: int = 0
    bidder_count: int = 0
    platform_bids: int = 0
    sequence: int = 0
    reserve_protection: bool = False

    @property
    def minimum_next_bid(self) -> Decimal:
        if self.current_price is None:
            return self.start_price
        return self.current_price + increment_at(self.current_price, self.bid_increment)

    @property
    def reserve_met(self) -> bool:
        if self.current_price is None:
            return False
        return self.reserve_price is None or self.current_price >= self.reserve_price

    def leader_commitment(self) -> Decimal:
        """What the leader has promised to pay at most: their proxy maximum or the price."""
        return max(self.current_price or Decimal(0), self.leader_max or Decimal(0))


@dataclass(frozen=True)
class BidRequest:
    bidder_id: uuid.UUID | None  # None: a platform (reserve protection) bid
    amount: Decimal
    max_amount: Decimal | None = None


@dataclass(frozen=True)
class Funds:
    """A bidder's wallet as the buying-power rule sees it, read under the wallet's lock."""

    available: Decimal
    committed: Decimal  # leading commitments on the bidder's other live auctions
    kyc_approved: bool
    has_bid_here: bool


@dataclass(frozen=True)
class NewBid:
    bidder_id: uuid.UUID | None
    amount: Decimal
    is_proxy: bool = False
    is_platform: bool = False


@dataclass(frozen=True)
class NewEvent:
    type: EventType
    bid_index: int | None = None  # which of the outcome's new bids it announces


@dataclass(frozen=True)
class BidOutcome:
    state: AuctionState
    bids: tuple[NewBid, ...]  # the request's own bid first, then any automatic answers
    events: tuple[NewEvent, ...]


def check_bidder(state: AuctionState, request: BidRequest, funds: Funds | None, now: datetime) -> None:
    """Everything that must hold before a person's bid is considered."""
    if state.status is not S.LIVE or now < state.start_time:
        raise DomainError("AUCTION_NOT_LIVE", "This auction is not taking bids")
    if now >= state.end_time:
        raise DomainError("AUCTION_ENDED", "This auction has ended")
    if request.bidder_id == state.seller_id:
        raise DomainError("OWN_AUCTION", "You cannot bid on your own auction")
    if funds is None or not funds.kyc_approved:
        raise DomainError("KYC_REQUIRED", "Complete identity verification (KYC) before bidding")
    if request.amount != money(request.amount):
        raise DomainError("INVALID_AMOUNT", "Amounts have at most two decimals", ("amount",))
    minimum = state.minimum_next_bid
    if request.amount < minimum:
        raise DomainError("BID_TOO_LOW", f"The minimum bid is {minimum}", ("amount",))
    if request.max_amount is not None and (
        request.max_amount < request.amount or request.max_amount != money(request.max_amount)
    ):
        raise DomainError(
            "INVALID_MAX_AMOUNT", "The maximum must be at least the bid, with at most two decimals",
            ("maxAmount",),
        )
    # Buying power is checked against everything this bid may commit the bidder to.
    commitment = request.max_amount or request.amount
    required = deposit_for(funds.committed + commitment, state.deposit_percent)
    if funds.available < required:
        raise DomainError(
            "INSUFFICIENT_FUNDS",
            f"Bidding {commitment} needs {required} available: a {state.deposit_percent}% deposit "
            f"on all your winning bids. You have {funds.available} available.",
            ("amount",),
        )


def place_bid(state: AuctionState, request: BidRequest, funds: Funds | None, now: datetime) -> BidOutcome:
    """Apply one bid (a person's, checked first, or the platform's) and the automatic proxy bids
    it triggers. Raises DomainError when the bid is refused; nothing changes then."""
    if request.bidder_id is not None:
        check_bidder(state, request, funds, now)
    bids, leader_id, leader_max = _contest(state, request)
    price = bids[-1].amount
    events = [NewEvent(EventType.BID_PLACED, i) for i in range(len(bids))]
    end_time = state.end_time
    if end_time - now < ANTI_SNIPING_WINDOW:
        end_time += ANTI_SNIPING_EXTENSION
        events.append(NewEvent(EventType.EXTENDED))
    new_bidder = request.bidder_id is not None and not (funds and funds.has_bid_here)
    return BidOutcome(
        state=replace(
            state,
            current_price=price,
            leader_id=leader_id,
            leader_max=leader_max if leader_max is not None and leader_max > price else None,
            bid_count=state.bid_count + len(bids),
            bidder_count=state.bidder_count + int(new_bidder),
            platform_bids=state.platform_bids + sum(b.is_platform for b in bids),
            end_time=end_time,
            sequence=state.sequence + len(events),
        ),
        bids=tuple(bids),
        events=tuple(events),
    )


def _contest(state: AuctionState, request: BidRequest) -> tuple[list[NewBid], uuid.UUID | None, Decimal | None]:
    """The bids a request produces against a standing proxy maximum, as if the engine had raised
    one increment at a time: the loser's last automatic bid is their maximum, the winner's is one
    increment above it (capped at their own maximum). Equal maxima: the earlier bidder wins."""
    challenger = request.bidder_id
    own = NewBid(challenger, request.amount, is_platform=challenger is None)
    challenger_max = request.max_amount or request.amount
    leader = state.leader_id
    if state.current_price is None or leader is None or leader == challenger:
        # Nobody to contest (or the platform leads, or the leader raises their own bid).
        kept_max = state.leader_max if leader is not None and leader == challenger else None
        best = max(challenger_max, kept_max or Decimal(0))
        return [own], challenger, best if challenger is not None else None

    leader_max = state.leader_commitment()
    if leader_max < request.amount:
        return [own], challenger, challenger_max
    bids = [own]
    if challenger_max <= leader_max:
        if challenger_max > request.amount:
            bids.append(NewBid(challenger, challenger_max, is_proxy=True))
        step = increment_at(challenger_max, state.bid_increment)
        answer = leader_max if challenger_max == leader_max else min(leader_max, challenger_max + step)
        bids.append(NewBid(leader, answer, is_proxy=True))
        return bids, leader, leader_max
    if leader_max > request.amount:
        bids.append(NewBid(leader, leader_max, is_proxy=True))
    step = increment_at(leader_max, state.bid_increment)
    answer = min(challenger_max, leader_max + step)
    if answer > bids[-1].amount or (answer == bids[-1].amount and bids[-1].bidder_id != challenger):
        bids.append(NewBid(challenger, answer, is_proxy=True))
    return bids, challenger, challenger_max


def platform_bid(state: AuctionState, now: datetime) -> Decimal | None:
    """The reserve-protection bid due now, if any (seed 004: every 30 s during the last hour)."""
    if not state.reserve_protection or state.reserve_price is None or state.status is not S.LIVE:
        return None
    if not (state.start_time <= now < state.end_time) or state.end_time - now >= PROTECTION_WINDOW:
        return None
    if state.current_price is not None and state.current_price >= state.reserve_price * PROTECTION_TRIGGER:
        return None
    if state.current_price is not None and state.leader_id is None:
        return None  # the platform already leads; it never bids against itself
    amount = state.minimum_next_bid
    ceiling = money(state.reserve_price * PROTECTION_CEILING)
    return amount if amount <= ceiling else None


# ---------------------------------------------------------------- closing and settlement


@dataclass(frozen=True)
class Standing:
    """A bidder's best bid on a closed auction, for choosing the winner and the next in line."""

    bidder_id: uuid.UUID
    amount: Decimal


def sale_price_met(state: AuctionState, amount: Decimal) -> bool:
    return state.reserve_price is None or amount >= state.reserve_price


def is_offer(passed_over: list[uuid.UUID]) -> bool:
    """Whether the winner awaiting settlement was offered the vehicle after the winners before
    them failed to pay (seed 004: "escalate to next bidder"). An offer may be declined, and
    letting it lapse costs nothing: its bid was beaten at the close and nobody agreed to buy.
    The auction's own winner is bound by their bid: not paying forfeits their deposit."""
    return bool(passed_over)


def choose_buyer(state: AuctionState, standings: list[Standing], excluded: set[uuid.UUID]) -> Standing | None:
    """The highest bidder not yet excluded (a winner who failed to pay) whose best bid meets the
    reserve. `standings` is ordered best first, earliest first on equal amounts."""
    for standing in standings:
        if standing.bidder_id not in excluded and sale_price_met(state, standing.amount):
            return standing
    return None
