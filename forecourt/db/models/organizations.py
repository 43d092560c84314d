"""Organizations (tenants) and their training-minute quotas (seed 002)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
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
    created_at: Mapped[datetime] = created_at()


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
    updated_at: Mapped[datetime] = updated_at()
