"""The reference catalog and the physical inventory (seed 004: vehicle_catalog, vehicles)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from forecourt.db.base import Base, created_at, updated_at, uuid_pk
from forecourt.domain.catalog import FEATURE_DIMENSIONS
from forecourt.integrations.openai import EMBEDDING_DIMENSIONS

VEHICLE_STATUSES = (
    "'available','in_auction','pending_settlement','in_settlement',"
    "'owned','in_service','listed','sold','archived'"
)
CONDITIONS = "'salvage','rough','clean','excellent','upgraded'"
SEARCH_DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(make, '') || ' ' || coalesce(model, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(trim, '')), 'B') || "
    "setweight(to_tsvector('english', immutable_array_to_string(features, ' ')), 'B') || "
    "setweight(to_tsvector('english', coalesce(description, '')), 'C')"
)


class CatalogEntry(Base):
    __tablename__ = "vehicle_catalog"
    __table_args__ = (
        CheckConstraint("resell_rank BETWEEN 1 AND 10", name="resell_rank"),
        CheckConstraint("year_end IS NULL OR year_end >= year_start", name="years"),
        Index("ix_vehicle_catalog_make_model", text("lower(make)"), text("lower(model)")),
        Index("ix_vehicle_catalog_years", "year_start", "year_end"),
        Index(
            "uq_vehicle_catalog_identity",
            text("lower(make)"),
            text("lower(model)"),
            "year_start",
            text("coalesce(lower(trim), '')"),
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    make: Mapped[str] = mapped_column(String(50), nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    year_start: Mapped[int] = mapped_column(Integer, nullable=False)
    year_end: Mapped[int | None] = mapped_column(Integer)
    trim: Mapped[str | None] = mapped_column(String(50))
    body_type: Mapped[str | None] = mapped_column(String(30))
    engine_code: Mapped[str | None] = mapped_column(String(30))
    displacement_cc: Mapped[int | None] = mapped_column(Integer)
    horsepower: Mapped[int | None] = mapped_column(Integer)
    torque_nm: Mapped[int | None] = mapped_column(Integer)
    transmission: Mapped[str | None] = mapped_column(String(30))
    drivetrain: Mapped[str | None] = mapped_column(String(10))
    fuel_type: Mapped[str | None] = mapped_column(String(20))
    specs: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    price_foreign_used: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    price_local_used: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    price_brand_new: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    clearing_cost_est: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    resell_rank: Mapped[int | None] = mapped_column(Integer)
    popularity_index: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at()


class Vehicle(Base):
    __tablename__ = "vehicles"
    __table_args__ = (
        CheckConstraint(f"status IN ({VEHICLE_STATUSES})", name="status"),
        CheckConstraint(f"condition IN ({CONDITIONS})", name="condition"),
        CheckConstraint("vin ~ '^[A-HJ-NPR-Z0-9]{17}$'", name="vin_format"),
        CheckConstraint("price IS NULL OR price > 0", name="price_positive"),
        CheckConstraint("mileage_km IS NULL OR mileage_km >= 0", name="mileage_non_negative"),
        CheckConstraint("trust_score BETWEEN 0 AND 100", name="trust_score"),
        CheckConstraint("jsonb_typeof(history) = 'array'", name="history_is_array"),
        Index("ix_vehicles_status", "status"),
        # Only vehicles that have one (migration 0011): lookups are by a value (the body-type
        # filter, the foreign keys' checks), and an import's rows mostly have neither.
        Index("ix_vehicles_owner_id", "owner_id", postgresql_where=text("owner_id IS NOT NULL")),
        Index("ix_vehicles_listed_by", "listed_by"),
        Index(
            "ix_vehicles_catalog_id", "catalog_id", postgresql_where=text("catalog_id IS NOT NULL")
        ),
        Index("ix_vehicles_newest", "created_at", "id"),
        Index("ix_vehicles_price", text("coalesce(price, 0)"), "id"),  # queries/catalog.py PRICE_KEY
        Index("ix_vehicles_year", "year", "id"),
        Index("ix_vehicles_make_model", text("lower(make)"), text("lower(model)")),
        Index("ix_vehicles_search", "search", postgresql_using="gin"),
        Index("ix_vehicles_features", "features", postgresql_using="gin"),
        Index(
            "ix_vehicles_text_embedding",
            "text_embedding",
            postgresql_using="hnsw",
            postgresql_ops={"text_embedding": "vector_cosine_ops"},
        ),
        Index("ix_vehicles_needs_embedding", "id", postgresql_where=text("text_embedding IS NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    catalog_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("vehicle_catalog.id")
    )
    owner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("users.id"))
    listed_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id")
    )
    vin: Mapped[str] = mapped_column(String(17), unique=True, nullable=False)
    year: Mapped[int] = mapped_column(Integer, nullable=False)
    make: Mapped[str] = mapped_column(String(50), nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    trim: Mapped[str | None] = mapped_column(String(50))
    condition: Mapped[str] = mapped_column(String(20), nullable=False, server_default="clean")
    mileage_km: Mapped[int | None] = mapped_column(Integer)
    color: Mapped[str | None] = mapped_column(String(30))
    price: Mapped[Decimal | None] = mapped_column(Numeric(15, 2))
    status: Mapped[str] = mapped_column(String(25), nullable=False, server_default="available")
    images: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'")
    )
    features: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'")
    )
    description: Mapped[str | None] = mapped_column(Text)
    damage_report: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    trust_score: Mapped[int | None] = mapped_column(Integer)
    history: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'"))
    location: Mapped[str | None] = mapped_column(String(100))
    # The vehicle's current feature vector (no index: `similar` searches VehicleVector's copy,
    # and this column for vehicles still in VehicleVectorQueue).
    feature_vector: Mapped[list[float] | None] = mapped_column(Vector(FEATURE_DIMENSIONS))
    # Filled by the embedding job when an OpenAI key is configured; NULL means "to do".
    text_embedding: Mapped[list[float] | None] = mapped_column(Vector(EMBEDDING_DIMENSIONS))
    search: Mapped[str] = mapped_column(TSVECTOR, Computed(SEARCH_DOCUMENT, persisted=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class VehicleVector(Base):
    """The indexed copy of a vehicle's feature vector, which `similar` searches with HNSW.

    Kept out of `vehicles` so that writing vehicles (an import's COPY) does not maintain the
    HNSW index: a vehicle whose vector is new or changed is queued (VehicleVectorQueue) in the
    same transaction, and the vector-index job copies its vector here after commit. A vehicle
    in the queue is "pending": `similar` compares it by an exact scan of its `vehicles` row and
    ignores its copy here (which may be stale or missing).
    """

    __tablename__ = "vehicle_vectors"
    __table_args__ = (
        Index(
            "ix_vehicle_vectors_feature_vector",
            "feature_vector",
            postgresql_using="hnsw",
            postgresql_ops={"feature_vector": "vector_l2_ops"},
            # 24 dimensions need few links; m=8 halves the cost of each insert (measured: the
            # index was ~80% of a 10,000-row import's database time at the default m=16).
            postgresql_with={"m": 8, "ef_construction": 32},
        ),
    )

    vehicle_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("vehicles.id"), primary_key=True
    )
    feature_vector: Mapped[list[float]] = mapped_column(Vector(FEATURE_DIMENSIONS), nullable=False)


class VehicleVectorQueue(Base):
    """Vehicles whose feature vector is not (or not as it is now) in VehicleVector yet.

    Written in the transaction that writes the vector; emptied by the vector-index job
    (`FOR UPDATE SKIP LOCKED`). A writer that changes the vector of a vehicle already queued
    locks its queue row (`ON CONFLICT DO UPDATE ... WHERE false`), so it waits for a job that
    is copying the old vector and re-queues the vehicle after it.

    No foreign key: its check would triple the cost of queueing an import's 10,000 rows
    (measured: 0.10 s against 0.03 s), for ids taken from rows written in the same
    transaction of a table whose rows are never deleted; the job drops an entry without a
    vehicle.
    """

    __tablename__ = "vehicle_vector_queue"

    vehicle_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
