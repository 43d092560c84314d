"""Auctions, their bids and their event log (seed 004: auctions, bids)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from forecourt.db.base import Base, created_at, updated_at, uuid_pk
from forecourt.domain.auctions import ACTIVE, AuctionStatus

STATUSES = ",".join(f"'{s.value}'" for s in AuctionStatus)
ACTIVE_STATUSES = ",".join(f"'{s.value}'" for s in sorted(ACTIVE))


class Auction(Base):
    __tablename__ = "auctions"
    __table_args__ = (
        CheckConstraint(f"status IN ({STATUSES})", name="status"),
        CheckConstraint("start_price > 0", name="start_price_positive"),
        CheckConstraint("reserve_price IS NULL OR reserve_price >= start_price", name="reserve"),
        CheckConstraint("bid_increment IS NULL OR bid_increment > 0", name="bid_increment"),
        CheckConstraint("deposit_percent > 0 AND deposit_percent <= 100", name="deposit_percent"),
        CheckConstraint("end_time > start_time AND original_end_time <= end_time", name="schedule"),
        CheckConstraint("bid_count >= 0 AND bidder_count >= 0 AND sequence >= 0", name="counters"),
        # A vehicle is never in two active auctions.
        Index(
            "uq_auctions_active_vehicle", "vehicle_id", unique=True,
            postgresql_where=text(f"status IN ({ACTIVE_STATUSES})"),
        ),
        Index("ix_auctions_status_end_time", "status", "end_time"),
        Index("ix_auctions_status_start_time", "status", "start_time"),
        Index("ix_auctions_live_leader", "leader_id", postgresql_where=text("status = 'live'")),
        Index("ix_auctions_settlement", "settlement_deadline",
              postgresql_where=text("status = 'pending_settlement'")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    vehicle_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("vehicles.id"), nullable=False)
    seller_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"), nullable=False)
    created_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    start_price: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False)
    reserve_price: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    current_price: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    bid_increment: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))  # NULL: tiered by price
    deposit_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, server_default="20")
    reserve_protection: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    original_end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    leader_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"))
    leader_max: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    winner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"))
    winning_amount: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    settlement_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deposit_held: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))  # from the current winner
    # winners who let the settlement deadline pass; the vehicle is offered to the next bidder
    passed_over: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False, server_default=text("'{}'")
    )
    bid_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    bidder_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    platform_bids: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    sequence: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    relisted_from: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("auctions.id"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Bid(Base):
    __tablename__ = "bids"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("is_platform_bid = (bidder_id IS NULL)", name="platform_has_no_bidder"),
        Index("uq_bids_auction_position", "auction_id", "position", unique=True),
        Index("uq_bids_idempotency", "auction_id", "bidder_id", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_bids_bidder_auction", "bidder_id", "auction_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    auction_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("auctions.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)  # 1, 2, ... in acceptance order
    bidder_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False)
    max_amount: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    is_proxy: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    is_platform_bid: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AuctionEvent(Base):
    """The auction's gapless event log; subscribers that reconnect replay it from here."""

    __tablename__ = "auction_events"

    auction_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("auctions.id"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(30), nullable=False)
    bid_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("bids.id"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)  # the event as published
