"""Training resolvers: scenarios, sessions, live events, progress and leaderboards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Literal

from sqlalchemy import or_, select

from forecourt.auth.principal import Principal
from forecourt.db.models import (
    MemberMinuteLimit,
    Scenario,
    TrainingEvent,
    TrainingSession,
)
from forecourt.db.pagination import count, keyset_page, page_size
from forecourt.db.queries import training as queries
from forecourt.domain import training as rules
from forecourt.domain.errors import DomainError
from forecourt.domain.training import DEALERSHIP_RUBRIC, RETAIL_RUBRIC, TrainingStatus
from forecourt.resolvers.base import optional, run_mutation
from forecourt.schema import training as t
from forecourt.schema.context import Context
from forecourt.schema.relay import Connection, connection, from_global_id
from forecourt.services import training as service
from forecourt.subscriptions.channels import training_session_channel
from forecourt.subscriptions.live import follow

LEADERBOARD_MAX = 100
PRESETS = {t.RubricPreset.DEALERSHIP: DEALERSHIP_RUBRIC, t.RubricPreset.RETAIL: RETAIL_RUBRIC}


def _signed_in(ctx: Context) -> Principal:
    principal = ctx.principal
    assert principal is not None, "the permission matrix admits signed-in callers only"
    return principal


# ---------------------------------------------------------------- queries


async def scenarios(ctx: Context, first: int | None, after: str | None) -> Connection[t.ScenarioType]:
    """The platform presets and the caller's organization's scenarios, by name."""
    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    principal = ctx.principal
    stmt = select(Scenario)
    if principal is None or not principal.is_admin:
        mine = principal.organization_id if principal else None
        stmt = stmt.where(or_(Scenario.organization_id.is_(None), Scenario.organization_id == mine))
    page = await keyset_page(ctx.reader, stmt, [Scenario.name, Scenario.id], first=size, after=after,
                             descending=False)
    return connection(page, t.ScenarioType.from_model, lambda: count(ctx.reader, stmt))


async def training_session(ctx: Context, id: str) -> t.TrainingSessionType | None:
    try:
        _, raw = from_global_id(id, "TrainingSession")
    except DomainError:
        return None
    return await t.load_training_session(ctx, raw)


async def training_sessions(ctx: Context, user_id: str | None, status: TrainingStatus | None,
                            first: int | None, after: str | None) -> Connection[t.TrainingSessionType]:
    """Your own sessions; a manager's view of their organization's (tenant-isolated)."""
    principal = _signed_in(ctx)
    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    stmt = select(TrainingSession)
    if user_id is not None:
        _, trainee = from_global_id(user_id, "User", ("userId",))
        stmt = stmt.where(TrainingSession.trainee_id == trainee)
    if principal.is_admin:
        pass
    elif service.can_manage(principal, principal.organization_id):
        stmt = stmt.where(TrainingSession.organization_id == principal.organization_id)
    else:
        stmt = stmt.where(TrainingSession.trainee_id == principal.user_id)
    if status is not None:
        stmt = stmt.where(TrainingSession.status == status.value)
    page = await keyset_page(ctx.reader, stmt, [TrainingSession.started_at, TrainingSession.id],
                             first=size, after=after)
    return connection(page, t.TrainingSessionType.from_model, lambda: count(ctx.reader, stmt))


async def _visible_trainee(ctx: Context, user_id: str | None) -> uuid.UUID:
    principal = _signed_in(ctx)
    if user_id is None:
        return principal.user_id
    _, trainee = from_global_id(user_id, "User", ("userId",))
    if trainee == principal.user_id or principal.is_admin:
        return trainee
    user = await ctx.loaders.user_by_id.load(trainee)
    if user is None or not service.can_manage(principal, user.organization_id):
        raise DomainError("NOT_FOUND", "No such trainee", ("userId",))
    return trainee


async def training_progress(ctx: Context, user_id: str | None) -> t.TrainingProgress:
    trainee = await _visible_trainee(ctx, user_id)
    row = (await ctx.reader.execute(queries.PROGRESS, {"user_id": trainee})).one()
    return t.TrainingProgress(
        user_id=trainee, total_sessions=row.total, average_score=round(float(row.average), 1),
        close_rate=round(float(row.close_rate), 3),
        skills=[t.MetricScore(metric=s["metric"], score=round(s["score"], 1)) for s in row.skills],
        badges=rules.badges(row.total, float(row.best), row.at_80),
        trend=[round(s, 1) for s in row.trend],
    )


async def breakdown(ctx: Context, trainee: uuid.UUID, by: Literal["vehicle", "buyer"]) -> list[t.TrainingBreakdown]:
    statement = queries.BY_VEHICLE_TYPE if by == "vehicle" else queries.BY_BUYER_TYPE
    rows = await ctx.reader.execute(statement, {"user_id": trainee})
    return [t.TrainingBreakdown(key=r.key, sessions=r.sessions, average_score=round(float(r.average), 1),
                                close_rate=round(float(r.close_rate), 3)) for r in rows]


async def leaderboard(ctx: Context, limit: int | None, organization_id: str | None) -> list[t.LeaderboardEntry]:
    """Top trainees of your organization by average score (platform admins: any organization)."""
    principal = _signed_in(ctx)
    org = principal.organization_id
    if organization_id is not None and principal.is_admin:
        _, org = from_global_id(organization_id, "Organization", ("organizationId",))
    if org is None:
        raise DomainError("NO_ORGANIZATION", "Leaderboards are per organization: create or join one first")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= LEADERBOARD_MAX:
        raise DomainError("INVALID_LIMIT", f"limit must be between 1 and {LEADERBOARD_MAX}", ("limit",))
    rows = await ctx.reader.execute(queries.LEADERBOARD, {"organization_id": org, "limit": limit})
    return [t.LeaderboardEntry(user_id=r.user_id, session_count=r.sessions,
                               average_score=round(float(r.average), 1), sales_closed=r.closed,
                               close_rate=round(float(r.close_rate), 3)) for r in rows]


# ---------------------------------------------------------------- mutations


def _session_payload(session) -> dict:
    return {"session": t.TrainingSessionType.from_model(session)}


def _session_id(raw: str) -> uuid.UUID:
    return from_global_id(raw, "TrainingSession", ("sessionId",))[1]


async def start_training_session(ctx: Context, input: t.StartTrainingInput) -> t.TrainingSessionPayload:
    async def op(work):
        _, scenario_id = from_global_id(input.scenario_id, "Scenario", ("scenarioId",))
        return _session_payload(await service.start_session(work, scenario_id))

    return await run_mutation(ctx, t.TrainingSessionPayload, op)


async def append_transcript(ctx: Context, input: t.AppendTranscriptInput) -> t.TrainingSessionPayload:
    async def op(work):
        session = await service.append_turn(
            work, _session_id(input.session_id), input.role, input.text,
            rescore_interval=ctx.settings.training_rescore_interval_seconds)
        return _session_payload(session)

    return await run_mutation(ctx, t.TrainingSessionPayload, op)


async def complete_training_session(ctx: Context, input: t.CompleteTrainingInput) -> t.TrainingSessionPayload:
    async def op(work):
        session = await service.complete_session(
            work, _session_id(input.session_id), optional(input.sale_completed),
            llm=ctx.state.evaluator)
        return _session_payload(session)

    return await run_mutation(ctx, t.TrainingSessionPayload, op)


async def cancel_training_session(ctx: Context, input: t.CancelTrainingInput) -> t.TrainingSessionPayload:
    async def op(work):
        return _session_payload(await service.cancel_session(work, _session_id(input.session_id)))

    return await run_mutation(ctx, t.TrainingSessionPayload, op)


async def override_training_score(ctx: Context, input: t.OverrideTrainingScoreInput) -> t.TrainingSessionPayload:
    async def op(work):
        session = await service.override_score(work, _session_id(input.session_id), input.score, input.reason)
        return _session_payload(session)

    return await run_mutation(ctx, t.TrainingSessionPayload, op)


async def create_voice_session(ctx: Context, session_id: str) -> t.VoiceSessionPayload:
    settings = ctx.settings

    async def op(work):
        key = await service.start_voice(
            work, _session_id(session_id), ctx.state.openai, model=settings.realtime_model,
            voice=settings.realtime_voice, ttl_seconds=settings.realtime_key_ttl_seconds)
        return {"ephemeral_key": key.ephemeral_key, "expires_at": key.expires_at, "model": key.model}

    return await run_mutation(ctx, t.VoiceSessionPayload, op, input_path=())


async def set_member_minute_limit(ctx: Context, input: t.SetMemberMinuteLimitInput) -> t.MemberMinuteLimitPayload:
    async def op(work):
        _, user_id = from_global_id(input.user_id, "User", ("userId",))
        row = await service.set_member_limit(work, user_id, input.minutes)
        return {"limit": t.MemberMinuteLimitType.from_model(row) if row else None}

    return await run_mutation(ctx, t.MemberMinuteLimitPayload, op)


async def member_minute_limits(ctx: Context, first: int | None,
                               after: str | None) -> Connection[t.MemberMinuteLimitType]:
    """Your organization's member limits (its admins), by member."""
    principal = _signed_in(ctx)
    if not service.can_manage(principal, principal.organization_id):
        raise DomainError("NOT_ORGANIZATION_ADMIN", "Only your organization's admins see member limits")
    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    stmt = select(MemberMinuteLimit).where(MemberMinuteLimit.organization_id == principal.organization_id)
    page = await keyset_page(ctx.reader, stmt, [MemberMinuteLimit.user_id], first=size, after=after,
                             descending=False)
    return connection(page, t.MemberMinuteLimitType.from_model, lambda: count(ctx.reader, stmt))


def _organization(raw: str | None) -> uuid.UUID | None:
    return None if raw is None else from_global_id(raw, "Organization", ("organizationId",))[1]


async def create_scenario(ctx: Context, input: t.CreateScenarioInput) -> t.ScenarioPayload:
    async def op(work):
        rubric_input, preset = optional(input.rubric), optional(input.preset)
        if (rubric_input is None) == (preset is None):
            raise DomainError("RUBRIC_REQUIRED", "Give either a rubric or a preset", ("rubric",))
        rubric = ({r.metric.value: r.weight for r in rubric_input} if rubric_input is not None
                  else {m.value: w for m, w in PRESETS[preset].items()})
        if rubric_input is not None and len(rubric) != len(rubric_input):
            raise DomainError("DUPLICATE_METRIC", "Each metric appears once in a rubric", ("rubric",))
        draft = rules.ScenarioDraft(
            name=input.name, description=input.description, difficulty=input.difficulty, rubric=rubric,
            objections=optional(input.objections) or [], pain_points=optional(input.pain_points) or [],
            key_features=optional(input.key_features) or [], customer_type=optional(input.customer_type),
            pass_score=optional(input.pass_score) if optional(input.pass_score) is not None
            else rules.DEFAULT_PASS_SCORE,
        )
        vehicle, product = optional(input.vehicle_id), optional(input.product_id)
        scenario = await service.create_scenario(
            work, draft,
            persona_id=from_global_id(input.persona_id, "BuyerPersona", ("personaId",))[1],
            catalog_entry_id=from_global_id(vehicle, "CatalogEntry", ("vehicleId",))[1] if vehicle else None,
            product_id=from_global_id(product, "TrainingProduct", ("productId",))[1] if product else None,
            organization_id=_organization(optional(input.organization_id)), preset=input.shared,
        )
        return {"scenario": t.ScenarioType.from_model(scenario)}

    return await run_mutation(ctx, t.ScenarioPayload, op)


async def create_buyer_persona(ctx: Context, input: t.CreateBuyerPersonaInput) -> t.BuyerPersonaPayload:
    async def op(work):
        persona = await service.create_persona(
            work, type=input.type, personality=input.personality, budget=optional(input.budget),
            priorities=optional(input.priorities) or [], background=optional(input.background),
            organization_id=_organization(optional(input.organization_id)), preset=input.shared,
        )
        return {"persona": t.BuyerPersonaType.from_model(persona)}

    return await run_mutation(ctx, t.BuyerPersonaPayload, op)


async def create_training_product(ctx: Context, input: t.CreateTrainingProductInput) -> t.TrainingProductPayload:
    async def op(work):
        product = await service.create_product(
            work, name=input.name, category=optional(input.category),
            description=optional(input.description), features=optional(input.features) or [],
            objections=[{"objection": o.objection, "response": optional(o.response), "tip": optional(o.tip)}
                        for o in optional(input.objections) or []],
            pricing_tiers=[{"name": p.name, "price": p.price} for p in optional(input.pricing_tiers) or []],
            training_tips=optional(input.training_tips) or [],
            organization_id=_organization(optional(input.organization_id)), preset=input.shared,
        )
        return {"product": t.TrainingProductType.from_model(product)}

    return await run_mutation(ctx, t.TrainingProductPayload, op)


# ---------------------------------------------------------------- live events


async def training_session_events(ctx: Context, session_id_text: str,
                                  after_sequence: int | None) -> AsyncGenerator[t.TrainingSessionEvent, None]:
    """A session's events in sequence order, each once: subscribe, replay from the log what the
    client missed, then follow live events (gaps are filled from the log); the stream ends
    with the session (forecourt/subscriptions/live.py)."""
    session_id = from_global_id(session_id_text, "TrainingSession", ("sessionId",))[1]
    async with ctx.state.broadcast.subscribe(training_session_channel(session_id)) as mailbox:
        base = await t.load_training_session(ctx, session_id)
        await ctx.end_reads()
        if base is None:
            raise DomainError("NOT_FOUND", "No such training session", ("sessionId",))
        current = base.sequence
        last = current if after_sequence is None else max(0, min(after_sequence, current))
        events = follow(mailbox, last=last, current=current,
                        stored=lambda after: _stored_events(ctx, session_id, after),
                        render=lambda payload: _event(base, payload),
                        final=lambda payload: payload["status"] != TrainingStatus.IN_PROGRESS.value,
                        finished=base.status is not TrainingStatus.IN_PROGRESS)
        async with aclosing(events):
            async for event in events:
                yield event


async def _stored_events(ctx: Context, session_id: uuid.UUID, after: int) -> list[dict]:
    payloads = list(await ctx.reader.scalars(
        select(TrainingEvent.payload)
        .where(TrainingEvent.session_id == session_id, TrainingEvent.sequence > after)
        .order_by(TrainingEvent.sequence)
    ))
    await ctx.end_reads()
    return payloads


def _event(base: t.TrainingSessionType, payload: dict) -> t.TrainingSessionEvent:
    turn = payload.get("turn")
    return t.TrainingSessionEvent(
        type=rules.EventType(payload["type"]), sequence=payload["sequence"],
        session=base.at_event(payload),
        turn=t.TranscriptTurn(role=turn["role"], text=turn["text"], at=datetime.fromisoformat(turn["at"]))
        if turn else None,
    )
