"""Wallets, the append-only ledger, and payments from the provider (seed 004: transactions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from forecourt.db.base import Base, created_at, updated_at, uuid_pk
from forecourt.domain.wallet import EntryType

ENTRY_TYPES = ",".join(f"'{t.value}'" for t in EntryType)


class Wallet(Base):
    """Balances change only through ledger rows: a trigger on `transactions` applies them and a
    trigger here refuses any other update."""

    __tablename__ = "wallets"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("held >= 0 AND held <= balance", name="held_within_balance"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"), primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False, server_default="0")
    held: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False, server_default="0")
    updated_at: Mapped[datetime] = updated_at()


class LedgerEntry(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint(f"type IN ({ENTRY_TYPES})", name="type"),
        CheckConstraint("status IN ('pending','completed','failed','reversed')", name="status"),
        CheckConstraint("balance_delta <> 0 OR held_delta <> 0", name="moves_money"),
        Index("ix_transactions_user_created", "user_id", "created_at", "id"),
        # a provider's payment is credited once, however often its webhook arrives
        Index("uq_transactions_external_ref", "type", "external_ref", unique=True,
              postgresql_where=text("external_ref IS NOT NULL")),
        Index("ix_transactions_reference", "reference_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"), nullable=False)
    type: Mapped[str] = mapped_column(String(30), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False)
    balance_delta: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False)
    held_delta: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False)
    balance_after: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))  # set by the trigger
    held_after: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="completed")
    reference_type: Mapped[str | None] = mapped_column(String(30))
    reference_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    external_ref: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Payment(Base):
    """A wallet top-up at the payment provider; credited to the ledger when it succeeds."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "status IN ('pending','processing','succeeded','failed','canceled')", name="status"
        ),
        Index("uq_payments_provider_ref", "provider", "provider_ref", unique=True),
        Index("ix_payments_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"), nullable=False)
    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    provider_ref: Mapped[str] = mapped_column(String(255), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(15, 2), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class WebhookEvent(Base):
    """Provider events already handled: a redelivered event id is acknowledged and ignored."""

    __tablename__ = "webhook_events"
    __table_args__ = (PrimaryKeyConstraint("provider", "event_id"),)

    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    received_at: Mapped[datetime] = created_at()
