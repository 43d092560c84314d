"""Organizations (tenants), their Stripe Billing subscriptions and training-minute quotas
(seeds 002, 003)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from forecourt.db.base import Base, created_at, updated_at, uuid_pk


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (CheckConstraint("plan IN ('free','basic','pro')", name="plan"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    plan: Mapped[str] = mapped_column(String(10), nullable=False, server_default="free")
    created_by: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", use_alter=True), nullable=False
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    trial_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()


class BillingSubscription(Base):
    """The organization's Stripe Billing subscription, as the last applied webhook left it."""

    __tablename__ = "billing_subscriptions"
    __table_args__ = (CheckConstraint("plan IN ('free','basic','pro')", name="plan"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False, index=True
    )
    stripe_subscription_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    plan: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[str] = mapped_column(String(30), nullable=False)
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    trial_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Stripe's `created` of the last event applied: older events arriving late are ignored.
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class MinuteQuota(Base):
    __tablename__ = "minute_quotas"
    __table_args__ = (
        CheckConstraint("total_minutes >= 0", name="total_non_negative"),
        CheckConstraint("used_minutes >= 0", name="used_non_negative"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id"), unique=True, nullable=False
    )
    total_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    used_minutes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at()


class OrganizationInvitation(Base):
    """An organization admin's invitation to an email address; the invitee accepts it signed in,
    with the single-use secret the admin was shown (only its SHA-256 is kept; null once used)."""

    __tablename__ = "organization_invitations"
    __table_args__ = (
        CheckConstraint("org_role IN ('admin','member')", name="org_role"),
        CheckConstraint("status IN ('pending','accepted','declined')", name="status"),
        Index("uq_organization_invitations_pending", "organization_id", "email", unique=True,
              postgresql_where=text("status = 'pending'")),
        Index("ix_organization_invitations_email", "email"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id"), nullable=False
    )
    email: Mapped[str] = mapped_column(String(254), nullable=False)
    org_role: Mapped[str] = mapped_column(String(10), nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, server_default="pending")
    invited_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at()
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
