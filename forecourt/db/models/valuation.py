"""Valuation history per vehicle (seed 004: vehicle_valuations, "AI-updated weekly")."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from forecourt.db.base import Base, created_at, uuid_pk


class VehicleValuation(Base):
    __tablename__ = "vehicle_valuations"
    __table_args__ = (
        CheckConstraint("investment_score BETWEEN 1 AND 10", name="investment_score"),
        CheckConstraint("signal IN ('BUY','HOLD','SELL')", name="signal"),
        Index("ix_vehicle_valuations_latest", "vehicle_id", "as_of"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    vehicle_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("vehicles.id"), nullable=False
    )
    market_value: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False)
    foreign_used: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    local_used: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    brand_new: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    investment_score: Mapped[int] = mapped_column(Integer, nullable=False)
    signal: Mapped[str] = mapped_column(String(4), nullable=False)
    depreciation: Mapped[list] = mapped_column(JSONB, nullable=False)
    comparables: Mapped[int] = mapped_column(Integer, nullable=False)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = created_at()
