"""Sales training (seeds 000, 001, 002): subjects, personas, scenarios, sessions, transcripts,
feedback, the session event log and minute usage.

Rows with no organization are platform presets that every organization may use.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from forecourt.db.base import Base, created_at, updated_at, uuid_pk


def _organization() -> Mapped[uuid.UUID | None]:
    return mapped_column(UUID(as_uuid=True), ForeignKey("organizations.id"))


def _texts() -> Mapped[list[str]]:
    return mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'"))


class TrainingProduct(Base):
    """A product to practise selling (seed 001): features, pricing tiers, objections with
    model responses and training tips."""

    __tablename__ = "training_products"
    __table_args__ = (
        Index("uq_training_products_org_name", "organization_id", "name", unique=True,
              postgresql_nulls_not_distinct=True),
        CheckConstraint("jsonb_typeof(pricing_tiers) = 'array'", name="pricing_tiers_array"),
        CheckConstraint("jsonb_typeof(objections) = 'array'", name="objections_array"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = _organization()
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    category: Mapped[str | None] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(Text)
    features: Mapped[list[str]] = _texts()
    pricing_tiers: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'"))
    objections: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'"))
    training_tips: Mapped[list[str]] = _texts()
    created_at: Mapped[datetime] = created_at()


class BuyerPersona(Base):
    __tablename__ = "buyer_personas"
    __table_args__ = (
        Index("uq_buyer_personas_org_type", "organization_id", "type", unique=True,
              postgresql_nulls_not_distinct=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = _organization()
    type: Mapped[str] = mapped_column(String(60), nullable=False)
    personality: Mapped[str] = mapped_column(String(200), nullable=False)
    budget: Mapped[str | None] = mapped_column(String(60))
    priorities: Mapped[list[str]] = _texts()
    background: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()


class Scenario(Base):
    __tablename__ = "scenarios"
    __table_args__ = (
        Index("uq_scenarios_org_name", "organization_id", "name", unique=True,
              postgresql_nulls_not_distinct=True),
        CheckConstraint("difficulty BETWEEN 1 AND 5", name="difficulty"),
        # One subject: a catalog vehicle (seed 000) or a product (seed 001).
        CheckConstraint("num_nonnulls(catalog_entry_id, product_id) = 1", name="one_subject"),
        CheckConstraint("jsonb_typeof(rubric) = 'object'", name="rubric_object"),
        CheckConstraint("pass_score BETWEEN 0 AND 100", name="pass_score"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = _organization()
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    difficulty: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    persona_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("buyer_personas.id"), nullable=False
    )
    catalog_entry_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("vehicle_catalog.id")
    )
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("training_products.id")
    )
    customer_type: Mapped[str | None] = mapped_column(String(60))
    objections: Mapped[list[str]] = _texts()
    pain_points: Mapped[list[str]] = _texts()
    # Features the trainee is expected to bring up; for a vehicle, what the listing highlights.
    key_features: Mapped[list[str]] = _texts()
    rubric: Mapped[dict] = mapped_column(JSONB, nullable=False)
    pass_score: Mapped[float] = mapped_column(Float, nullable=False, server_default="80")
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"))
    created_at: Mapped[datetime] = created_at()


class TrainingSession(Base):
    __tablename__ = "training_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('in_progress','completed','cancelled')", name="status"),
        CheckConstraint("mode IN ('text','voice')", name="mode"),
        CheckConstraint("(status = 'in_progress') = (ended_at IS NULL)", name="ended_when_closed"),
        CheckConstraint("status <> 'completed' OR overall_score IS NOT NULL", name="completed_scored"),
        CheckConstraint("override_score IS NULL OR override_score BETWEEN 0 AND 100", name="override_range"),
        Index("ix_training_sessions_trainee_ended", "trainee_id", "ended_at"),
        Index("ix_training_sessions_org_status", "organization_id", "status"),
        Index("ix_training_sessions_started", "started_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    trainee_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id"), nullable=False
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False
    )
    scenario_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("scenarios.id"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(12), nullable=False, server_default="in_progress")
    mode: Mapped[str] = mapped_column(String(5), nullable=False, server_default="text")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The organization's minutes left when the session started: its time limit.
    minutes_allowed: Mapped[int] = mapped_column(Integer, nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    turn_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Live (while running) or final metrics: [{"metric", "score", "reason"}].
    metrics: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'"))
    overall_score: Mapped[float | None] = mapped_column(Float)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pass_score: Mapped[float] = mapped_column(Float, nullable=False)
    sale_completed: Mapped[bool | None] = mapped_column(Boolean)
    feedback: Mapped[str | None] = mapped_column(Text)
    override_score: Mapped[float | None] = mapped_column(Float)
    override_reason: Mapped[str | None] = mapped_column(Text)
    overridden_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"))
    overridden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TranscriptTurn(Base):
    __tablename__ = "training_turns"
    __table_args__ = (
        CheckConstraint("role IN ('trainee','customer')", name="role"),
        CheckConstraint("length(text) BETWEEN 1 AND 4000", name="text_length"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("training_sessions.id"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(8), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class TrainingFeedback(Base):
    """The evaluation of a completed session (seed 002 feedback table): written once."""

    __tablename__ = "training_feedback"

    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("training_sessions.id"), primary_key=True
    )
    evaluator: Mapped[str] = mapped_column(String(20), nullable=False)
    metrics: Mapped[list] = mapped_column(JSONB, nullable=False)
    talk_ratio: Mapped[float] = mapped_column(Float, nullable=False)
    filler_words: Mapped[int] = mapped_column(Integer, nullable=False)
    words_per_minute: Mapped[float | None] = mapped_column(Float)
    duration_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = created_at()


class TrainingEvent(Base):
    """The session's event log: what `trainingSessionEvents(afterSequence)` replays."""

    __tablename__ = "training_events"
    __table_args__ = (
        CheckConstraint("type IN ('TRANSCRIPT','SCORE_UPDATED','COMPLETED','CANCELLED')", name="type"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("training_sessions.id"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(20), nullable=False)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = created_at()


class UsageRecord(Base):
    """Minutes a session used (seed 002), charged to its organization's quota once."""

    __tablename__ = "usage_records"
    __table_args__ = (CheckConstraint("minutes_used >= 0", name="minutes_non_negative"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False, index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id"), nullable=False
    )
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("training_sessions.id"), nullable=False, unique=True
    )
    minutes_used: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = created_at()


class MemberMinuteLimit(Base):
    """An organization admin's cap on one member's training minutes per period (seed 002:
    quotas allocated to companies or users); reset with the organization's quota."""

    __tablename__ = "member_minute_limits"
    __table_args__ = (
        CheckConstraint("limit_minutes >= 0", name="limit_non_negative"),
        CheckConstraint("used_minutes >= 0", name="used_non_negative"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False, index=True
    )
    limit_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    used_minutes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = updated_at()
