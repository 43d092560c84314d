"""Training loaders: one query per batch for each relation of scenarios and sessions."""

from __future__ import annotations

from collections import defaultdict

from aiodataloader import DataLoader
from sqlalchemy import select

from forecourt.db.models import (
    BuyerPersona,
    Scenario,
    TrainingFeedback,
    TrainingProduct,
    TrainingSession,
    TranscriptTurn,
)
from forecourt.db.queries.training import previous_scores
from forecourt.db.reader import Reader
from forecourt.loaders.base import ByIdLoader


class ScenarioByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        return {s.id: s for s in await self.reader.scalars(select(Scenario).where(Scenario.id.in_(ids)))}


class PersonaByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        return {p.id: p for p in await self.reader.scalars(select(BuyerPersona).where(BuyerPersona.id.in_(ids)))}


class ProductByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.scalars(select(TrainingProduct).where(TrainingProduct.id.in_(ids)))
        return {p.id: p for p in rows}


class TrainingSessionByIdLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.scalars(select(TrainingSession).where(TrainingSession.id.in_(ids)))
        return {s.id: s for s in rows}


class FeedbackBySessionLoader(ByIdLoader):
    async def fetch(self, ids):
        rows = await self.reader.scalars(select(TrainingFeedback).where(TrainingFeedback.session_id.in_(ids)))
        return {f.session_id: f for f in rows}


class PreviousScoreBySessionLoader(ByIdLoader):
    """The trainee's score in their completed session before this one (for "change since last")."""

    async def fetch(self, ids):
        return dict((await self.reader.execute(previous_scores(ids))).all())


class TurnsBySessionLoader(DataLoader):
    def __init__(self, reader: Reader) -> None:
        super().__init__()
        self.reader = reader

    async def batch_load_fn(self, session_ids):
        rows = await self.reader.execute(
            select(TranscriptTurn.session_id, TranscriptTurn.role, TranscriptTurn.text, TranscriptTurn.at)
            .where(TranscriptTurn.session_id.in_(set(session_ids)))
            .order_by(TranscriptTurn.session_id, TranscriptTurn.position)
        )
        by_session = defaultdict(list)
        for session_id, role, text, at in rows:
            by_session[session_id].append((role, text, at))
        return [by_session[s] for s in session_ids]
