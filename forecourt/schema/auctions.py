"""Auction types: auctions, bids, auction events, and the inputs and payloads of bidding."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from forecourt.auth.principal import Principal
from forecourt.db.models import Bid
from forecourt.db.pagination import decode_cursor, encode_cursor, page_size
from forecourt.domain.auctions import AuctionStatus, EventType, increment_at
from forecourt.domain.identity import STAFF_ROLES
from forecourt.schema.errors import UserError
from forecourt.schema.identity import UserType, load_user
from forecourt.schema.relay import Edge, Node, PageInfo, node_resolver, to_global_id
from forecourt.schema.scalars import Money
from forecourt.subscriptions.multiplex import Visibility

if TYPE_CHECKING:
    from forecourt.schema.catalog import VehicleType

AuctionStatusEnum = strawberry.enum(AuctionStatus, name="AuctionStatus")
AuctionEventTypeEnum = strawberry.enum(EventType, name="AuctionEventType")


def _sees_parties(viewer: Principal | None, seller_id: uuid.UUID) -> bool:
    """The seller and staff see who bids and who won; bidders see only themselves."""
    return viewer is not None and (viewer.role in STAFF_ROLES or viewer.user_id == seller_id)


def _event_viewer(ctx: Any) -> Hashable:
    """What about a subscriber the viewer-dependent fields of an auction event
    (AUCTION_EVENT_VISIBILITY) read: who they are (as an int: cheap to compare) and whether
    they are staff. Worked out once per subscription. Change it with those fields."""
    viewer: Principal | None = ctx.principal
    if viewer is None:
        return None
    return (viewer.user_id.int, viewer.role in STAFF_ROLES)


def _int(value: uuid.UUID | None) -> int | None:
    return None if value is None else value.int


def _event_audience(event: AuctionEventType) -> Callable[[Hashable], Hashable]:
    """The audience class of each viewer (`_event_viewer`) for one event: guest, or whether
    they see the parties (seller, staff), lead, won, placed the bid. Change it with the
    viewer-dependent fields."""
    auction, bid = event.auction, event.bid
    seller, leader, winner = _int(auction.seller_id), _int(auction.leader_id), _int(auction.winner_id)
    bidder = _int(bid.bidder_id) if bid is not None else None

    def audience(viewer: Hashable) -> Hashable:
        if viewer is None:
            return None
        user, staff = viewer
        return (staff or user == seller, user == leader, user == winner, user == bidder)

    return audience


@strawberry.type(name="Bid")
class BidType(Node):
    bidder_id: strawberry.Private[uuid.UUID | None]
    seller_id: strawberry.Private[uuid.UUID]
    position: strawberry.Private[int]
    amount: Money
    is_platform_bid: bool = strawberry.field(
        description="A reserve-protection bid by the platform (disclosed, never above 95% of the reserve).")
    is_proxy: bool = strawberry.field(description="Placed automatically up to the bidder's maximum.")
    created_at: datetime

    # Viewer-dependent: keep _event_audience in step (AUCTION_EVENT_VISIBILITY).
    @strawberry.field(
        description="The bidder, shown to themself, the seller and staff; null otherwise and for platform bids."
    )
    async def bidder(self, info: strawberry.Info) -> UserType | None:
        viewer = info.context.principal
        if self.bidder_id is None or not (
            _sees_parties(viewer, self.seller_id) or (viewer and viewer.user_id == self.bidder_id)
        ):
            return None
        return await load_user(info.context, self.bidder_id)

    @classmethod
    def from_row(cls, r: Mapping[str, Any], seller_id: uuid.UUID) -> BidType:
        return cls(
            id=to_global_id("Bid", r["id"]), bidder_id=r["bidder_id"], seller_id=seller_id,
            position=r["position"], amount=r["amount"], is_platform_bid=r["is_platform_bid"],
            is_proxy=r["is_proxy"], created_at=r["created_at"],
        )


@strawberry.type(name="BidConnection")
class BidConnection:
    edges: list[Edge[BidType]]
    page_info: PageInfo
    total_count: int


@strawberry.type(name="Auction")
class AuctionType(Node):
    auction_id: strawberry.Private[uuid.UUID]
    vehicle_id: strawberry.Private[uuid.UUID]
    seller_id: strawberry.Private[uuid.UUID]
    winner_id: strawberry.Private[uuid.UUID | None]
    leader_id: strawberry.Private[uuid.UUID | None]
    reserve: strawberry.Private[Decimal | None]
    status: AuctionStatusEnum
    start_price: Money
    reserve_met: bool
    current_price: Money = strawberry.field(description="The highest bid, or the start price before the first bid.")
    bid_increment: Money = strawberry.field(
        description="The raise required over the current price (tiered by price unless fixed)."
    )
    minimum_next_bid: Money
    deposit_percent: float
    reserve_protection: bool = strawberry.field(
        description="Disclosed to bidders: the platform may bid up to 95% of the reserve in the last hour.")
    start_time: datetime
    end_time: datetime
    original_end_time: datetime
    bid_count: int
    bidder_count: int
    platform_bid_count: int
    sequence: int = strawberry.field(description="The sequence of this auction's last event.")
    winning_amount: Money | None
    settlement_deadline: datetime | None

    # Viewer-dependent: keep _event_audience in step (AUCTION_EVENT_VISIBILITY).
    @strawberry.field(description="Visible to the seller and staff only.")
    def reserve_price(self, info: strawberry.Info) -> Money | None:
        return self.reserve if _sees_parties(info.context.principal, self.seller_id) else None

    # Viewer-dependent: keep _event_audience in step (AUCTION_EVENT_VISIBILITY).
    @strawberry.field(description="Whether you lead the bidding (null for guests).")
    def is_leading(self, info: strawberry.Info) -> bool | None:
        viewer = info.context.principal
        return None if viewer is None else self.leader_id == viewer.user_id

    @strawberry.field
    async def vehicle(
        self, info: strawberry.Info
    ) -> Annotated[VehicleType, strawberry.lazy("forecourt.schema.catalog")]:
        from forecourt.schema.catalog import load_vehicle

        return await load_vehicle(info.context, self.vehicle_id)

    # Viewer-dependent: keep _event_audience in step (AUCTION_EVENT_VISIBILITY).
    @strawberry.field(description="The winner, shown to themself, the seller and staff.")
    async def winner(self, info: strawberry.Info) -> UserType | None:
        viewer = info.context.principal
        if self.winner_id is None or not (
            _sees_parties(viewer, self.seller_id) or (viewer and viewer.user_id == self.winner_id)
        ):
            return None
        return await load_user(info.context, self.winner_id)

    @strawberry.field(description="Newest first.")
    async def bids(self, info: strawberry.Info, first: int | None = 20,
                   after: str | None = strawberry.UNSET) -> BidConnection:
        ctx = info.context
        size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
        after = None if after is strawberry.UNSET else after
        before = _position(after) if after else None
        rows = await ctx.loaders.bids_page.load((self.auction_id, before, size + 1)) if size else []
        page = rows[:size]
        edges = [Edge(node=BidType.from_row(r, self.seller_id), cursor=encode_cursor([r["position"]])) for r in page]
        return BidConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(rows) > size, has_previous_page=after is not None,
                               start_cursor=edges[0].cursor if edges else None,
                               end_cursor=edges[-1].cursor if edges else None),
            total_count=self.bid_count,
        )

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> AuctionType:
        price = r["current_price"]
        increment = increment_at(price if price is not None else r["start_price"], r["bid_increment"])
        return cls(
            id=to_global_id("Auction", r["id"]), auction_id=r["id"], vehicle_id=r["vehicle_id"],
            seller_id=r["seller_id"], winner_id=r["winner_id"], leader_id=r["leader_id"],
            reserve=r["reserve_price"], status=AuctionStatus(r["status"]), start_price=r["start_price"],
            reserve_met=price is not None and (r["reserve_price"] is None or price >= r["reserve_price"]),
            current_price=price if price is not None else r["start_price"], bid_increment=increment,
            minimum_next_bid=r["start_price"] if price is None else price + increment,
            deposit_percent=float(r["deposit_percent"]), reserve_protection=r["reserve_protection"],
            start_time=r["start_time"], end_time=r["end_time"], original_end_time=r["original_end_time"],
            bid_count=r["bid_count"], bidder_count=r["bidder_count"], platform_bid_count=r["platform_bids"],
            sequence=r["sequence"], winning_amount=r["winning_amount"],
            settlement_deadline=r["settlement_deadline"],
        )


def _position(cursor: str) -> int:
    return decode_cursor(cursor, [Bid.__table__.c.position])[0]


async def load_auction(ctx, auction_id: uuid.UUID) -> AuctionType | None:
    row = await ctx.loaders.auction_by_id.load(auction_id)
    return AuctionType.from_row(row) if row else None


@node_resolver("Auction")
async def auction_node(ctx, raw_id: uuid.UUID) -> AuctionType | None:
    return await load_auction(ctx, raw_id)


@strawberry.type(name="AuctionEvent")
class AuctionEventType:
    type: AuctionEventTypeEnum
    sequence: int
    auction: AuctionType = strawberry.field(description="The auction as it was right after this event.")
    bid: BidType | None
    occurred_at: datetime


# auctionEvents is multiplexed (forecourt/subscriptions/multiplex.py): subscribers whose
# selections are plain fields and these share one rendering per audience class.
AUCTION_EVENT_VISIBILITY = Visibility(
    frozenset({("Auction", "reservePrice"), ("Auction", "isLeading"), ("Auction", "winner"),
               ("Bid", "bidder")}),
    _event_viewer,
    _event_audience,
)


@strawberry.input
class CreateAuctionInput:
    vehicle_id: strawberry.ID
    start_price: Money
    reserve_price: Money | None = strawberry.UNSET
    bid_increment: Money | None = strawberry.field(
        default=strawberry.UNSET, description="A fixed increment; leave out for the tiered table.")
    start_time: datetime
    end_time: datetime
    reserve_protection: bool = strawberry.field(
        default=False, description="Let the platform bid (disclosed) up to 95% of the reserve in the last hour.")


@strawberry.type
class AuctionPayload:
    auction: AuctionType | None = None
    user_errors: list[UserError]


@strawberry.input
class PlaceBidInput:
    auction_id: strawberry.ID
    amount: Money = strawberry.field(description="The bid now; at least `minimumNextBid`.")
    max_amount: Money | None = strawberry.field(
        default=strawberry.UNSET,
        description="A proxy maximum: the engine outbids others for you, one increment at a time, up to it.")
    idempotency_key: str | None = strawberry.field(
        default=strawberry.UNSET, description="A retried request with the same key counts once.")


@strawberry.type
class PlaceBidPayload:
    bid: BidType | None = None
    auction: AuctionType | None = None
    user_errors: list[UserError]


@strawberry.input
class CancelAuctionInput:
    auction_id: strawberry.ID
    reason: str


@strawberry.input
class SettleAuctionInput:
    auction_id: strawberry.ID


@strawberry.input
class DeclineOfferInput:
    auction_id: strawberry.ID
