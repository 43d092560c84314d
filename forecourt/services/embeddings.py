"""Text embeddings of listings (when an OpenAI key is configured) and feature-vector rebuilds.

New and changed vehicles have `text_embedding` NULL; the embedding job fills them in batches,
outside any request, taking rows other processes have not locked. Feature vectors are made
when vehicles are written; a rebuild recomputes them all and indexes them (vector_index).
"""

from __future__ import annotations

from sqlalchemy import select, update

from forecourt.db.models import CatalogEntry, Vehicle
from forecourt.domain import catalog as rules
from forecourt.domain.catalog import VehicleCondition, VehicleFacts
from forecourt.integrations.openai import OpenAI
from forecourt.services import Work, vector_index

BATCH = 100


def listing_text(v: Vehicle) -> str:
    return rules.listing_text(
        year=v.year, make=v.make, model=v.model, trim=v.trim, condition=v.condition,
        color=v.color, features=v.features, description=v.description, location=v.location,
    )


async def embed_pending(work: Work, client: OpenAI, limit: int = BATCH) -> int:
    vehicles = list(
        await work.session.scalars(
            select(Vehicle)
            .where(Vehicle.text_embedding.is_(None))
            .order_by(Vehicle.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not vehicles:
        return 0
    vectors = await client.embed([listing_text(v) for v in vehicles])
    for vehicle, vector in zip(vehicles, vectors, strict=True):
        vehicle.text_embedding = vector
    return len(vehicles)


async def rebuild_feature_vectors(work: Work, batch: int = 1000) -> int:
    """Recompute every vehicle's feature vector (after the model of it changes), and index
    them in the same transaction (vector_index.index_now): nothing is left pending."""
    done = 0
    last = None
    while True:
        stmt = (
            select(Vehicle, CatalogEntry)
            .outerjoin(CatalogEntry, CatalogEntry.id == Vehicle.catalog_id)
            .order_by(Vehicle.id)
            .limit(batch)
        )
        if last is not None:
            stmt = stmt.where(Vehicle.id > last)
        rows = (await work.session.execute(stmt)).all()
        if not rows:
            return done
        for vehicle, entry in rows:
            vehicle.feature_vector = rules.feature_vector(
                VehicleFacts(
                    price=vehicle.price, year=vehicle.year, mileage_km=vehicle.mileage_km,
                    horsepower=entry.horsepower if entry else None,
                    condition=VehicleCondition(vehicle.condition),
                    body_type=entry.body_type if entry else None,
                    fuel_type=entry.fuel_type if entry else None,
                    drivetrain=entry.drivetrain if entry else None,
                ),
                reference_year=work.now.year,
            )
        await work.session.flush()
        await vector_index.index_now(
            await vector_index.driver_connection(work.session), [vehicle.id for vehicle, _ in rows]
        )
        done += len(rows)
        last = rows[-1][0].id


async def forget_text_embeddings(work: Work) -> None:
    await work.session.execute(update(Vehicle).values(text_embedding=None))
