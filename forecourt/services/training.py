"""Sales training use cases: scenarios, sessions (start, transcript, live scores, completion,
cancellation), score overrides, and the minutes each session uses.

Each change to a session bumps its `sequence` and appends to `training_events` in the same
transaction; the outbox publishes the events on `training-session:{id}` after commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from forecourt.auth.principal import Principal
from forecourt.db.models import (
    BuyerPersona,
    CatalogEntry,
    MemberMinuteLimit,
    MinuteQuota,
    Organization,
    Scenario,
    TrainingEvent,
    TrainingFeedback,
    TrainingProduct,
    TrainingSession,
    TranscriptTurn,
    UsageRecord,
    User,
)
from forecourt.domain import training as rules
from forecourt.domain.errors import DomainError, Validator
from forecourt.domain.identity import Role as PlatformRole
from forecourt.domain.organizations import OrgRole, PlanTier
from forecourt.domain.text import clean_text
from forecourt.domain.training import (
    Evaluation,
    EventType,
    Metric,
    Role,
    Subject,
    TrainingStatus,
    Turn,
)
from forecourt.integrations.openai import OpenAI, ProviderError
from forecourt.services import Work, audit
from forecourt.subscriptions.channels import training_session_channel

log = logging.getLogger(__name__)

# An evaluator scores a finished transcript; the LLM one may fail, the built-in one never does.
LlmEvaluator = Callable[[Sequence[Turn], Subject, dict[Metric, float], "ScenarioContext"], Awaitable[Evaluation]]


# ---------------------------------------------------------------- access


def can_manage(principal: Principal | None, organization_id: uuid.UUID | None) -> bool:
    """Platform admins manage everything; an organization's admins (and platform managers who
    belong to it) manage its scenarios, quotas and sessions."""
    if principal is None:
        return False
    if principal.is_admin:
        return True
    return (
        organization_id is not None
        and principal.organization_id == organization_id
        and (principal.org_role == OrgRole.ADMIN.value or principal.role is PlatformRole.MANAGER)
    )


def can_see_session(principal: Principal | None, trainee_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
    return principal is not None and (
        principal.user_id == trainee_id or can_manage(principal, organization_id)
    )


def can_use_scenario(principal: Principal | None, scenario_org: uuid.UUID | None) -> bool:
    """Platform presets are shared; an organization's own scenarios are for its members."""
    return scenario_org is None or (
        principal is not None and (principal.is_admin or principal.organization_id == scenario_org)
    )


def _not_found(what: str = "training session", field: str = "sessionId") -> DomainError:
    # The same answer whether it does not exist or belongs to someone else: no probing.
    return DomainError("NOT_FOUND", f"No such {what}", (field,))


# ---------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class ScenarioContext:
    """What the evaluators and the voice persona need to know about a scenario."""

    scenario: Scenario
    persona: BuyerPersona
    subject: Subject


def vehicle_features(entry: CatalogEntry) -> list[str]:
    """What a salesperson should bring up about a catalog vehicle, from its reference data."""
    specs = entry.specs or {}
    listed = specs.get("features") if isinstance(specs.get("features"), list) else []
    named = [entry.trim, entry.body_type, entry.fuel_type, entry.drivetrain, entry.transmission]
    if entry.horsepower:
        named.append(f"{entry.horsepower} hp")
    return [str(f) for f in [*listed, *named] if f]


async def scenario_context(work: Work, scenario: Scenario) -> ScenarioContext:
    persona = await work.session.get(BuyerPersona, scenario.persona_id)
    assert persona is not None
    if scenario.product_id is not None:
        product = await work.session.get(TrainingProduct, scenario.product_id)
        assert product is not None
        subject = Subject(
            name=product.name,
            features=scenario.key_features or product.features,
            objections=scenario.objections or [o.get("objection", "") for o in product.objections],
        )
    else:
        entry = await work.session.get(CatalogEntry, scenario.catalog_entry_id)
        assert entry is not None
        subject = Subject(
            name=f"{entry.make} {entry.model}",
            features=scenario.key_features or vehicle_features(entry),
            objections=scenario.objections,
        )
    return ScenarioContext(scenario, persona, subject)


def _target_organization(work: Work, organization_id: uuid.UUID | None, *, preset: bool) -> uuid.UUID | None:
    """Platform presets (no organization) are for platform admins; everything else belongs to
    the caller's organization unless a platform admin names another."""
    actor = work.actor
    assert actor is not None
    if preset:
        if not actor.is_admin:
            raise DomainError("FORBIDDEN_PRESET", "Only platform admins publish shared presets", ("preset",))
        return None
    target = organization_id if (organization_id and actor.is_admin) else actor.organization_id
    if target is None:
        raise DomainError("NO_ORGANIZATION", "Create or join an organization first")
    if not can_manage(actor, target):
        raise DomainError("NOT_ORGANIZATION_ADMIN", "Only your organization's admins manage its training content")
    return target


async def create_persona(work: Work, *, type: str, personality: str, budget: str | None,
                         priorities: Sequence[str], background: str | None,
                         organization_id: uuid.UUID | None = None, preset: bool = False) -> BuyerPersona:
    org = _target_organization(work, organization_id, preset=preset)
    v = Validator()
    persona = BuyerPersona(
        id=uuid.uuid4(), organization_id=org,
        type=v.run(clean_text, type, "type", max_length=60, required=True),
        personality=v.run(clean_text, personality, "personality", max_length=200, required=True),
        budget=v.run(clean_text, budget, "budget", max_length=60),
        priorities=rules.clean_items(v, priorities, "priorities"),
        background=v.run(clean_text, background, "background", max_length=4000, multiline=True),
    )
    v.check()
    await _refuse_duplicate(work, BuyerPersona, org, BuyerPersona.type, persona.type, "type")
    work.session.add(persona)
    await work.session.flush()
    return persona


async def create_product(work: Work, *, name: str, category: str | None, description: str | None,
                         features: Sequence[str], objections: Sequence[dict[str, str | None]],
                         pricing_tiers: Sequence[dict[str, Any]], training_tips: Sequence[str],
                         organization_id: uuid.UUID | None = None, preset: bool = False) -> TrainingProduct:
    org = _target_organization(work, organization_id, preset=preset)
    v = Validator()
    product = TrainingProduct(
        id=uuid.uuid4(), organization_id=org,
        name=v.run(clean_text, name, "name", max_length=120, required=True),
        category=v.run(clean_text, category, "category", max_length=60),
        description=v.run(clean_text, description, "description", max_length=4000, multiline=True),
        features=rules.clean_items(v, features, "features"),
        objections=rules.clean_objections(v, objections),
        pricing_tiers=rules.clean_pricing_tiers(v, pricing_tiers),
        training_tips=rules.clean_items(v, training_tips, "trainingTips"),
    )
    v.check()
    await _refuse_duplicate(work, TrainingProduct, org, TrainingProduct.name, product.name, "name")
    work.session.add(product)
    await work.session.flush()
    return product


async def create_scenario(work: Work, draft: rules.ScenarioDraft, *, persona_id: uuid.UUID,
                          catalog_entry_id: uuid.UUID | None, product_id: uuid.UUID | None,
                          organization_id: uuid.UUID | None = None, preset: bool = False) -> Scenario:
    org = _target_organization(work, organization_id, preset=preset)
    v = Validator()
    valid = v.run(rules.validate_scenario, draft)
    if (catalog_entry_id is None) == (product_id is None):
        v.add("ONE_SUBJECT", "A scenario sells one thing: give a vehicleId or a productId", "vehicleId")
    v.check()
    persona = await work.session.get(BuyerPersona, persona_id)
    if persona is None or persona.organization_id not in (None, org):
        raise _not_found("buyer persona", "personaId")
    if product_id is not None:
        product = await work.session.get(TrainingProduct, product_id)
        if product is None or product.organization_id not in (None, org):
            raise _not_found("product", "productId")
    elif await work.session.get(CatalogEntry, catalog_entry_id) is None:
        raise _not_found("catalog vehicle", "vehicleId")
    await _refuse_duplicate(work, Scenario, org, Scenario.name, valid.name, "name")
    scenario = Scenario(
        id=uuid.uuid4(), organization_id=org, name=valid.name, description=valid.description,
        difficulty=valid.difficulty, persona_id=persona_id, catalog_entry_id=catalog_entry_id,
        product_id=product_id, customer_type=valid.customer_type, objections=valid.objections,
        pain_points=valid.pain_points, key_features=valid.key_features,
        rubric={m.value: w for m, w in valid.rubric.items()}, pass_score=valid.pass_score,
        created_by=work.actor.user_id if work.actor else None,
    )
    work.session.add(scenario)
    await work.session.flush()
    return scenario


async def _refuse_duplicate(work: Work, model, org, column, value, field: str) -> None:
    exists = await work.session.scalar(
        select(model.id).where(model.organization_id.is_not_distinct_from(org), column == value)
    )
    if exists is not None:
        raise DomainError("ALREADY_EXISTS", f"{value!r} already exists", (field,))


# ---------------------------------------------------------------- evaluation

METRIC_GUIDE = {
    Metric.PRODUCT_KNOWLEDGE: "accurate, specific facts about what is being sold",
    Metric.NEEDS_ASSESSMENT: "open questions that uncover the buyer's needs, budget and priorities",
    Metric.FEATURE_PRESENTATION: "features tied to the needs the buyer voiced",
    Metric.OBJECTION_HANDLING: "objections acknowledged and answered with substance",
    Metric.CLOSING: "asking for the sale or a concrete next step",
    Metric.RAPPORT: "warmth, listening and empathy",
}


def evaluation_messages(turns: Sequence[Turn], rubric: dict[Metric, float], context: ScenarioContext) -> list[dict]:
    persona = context.persona
    guide = "\n".join(f"- {m.value} (weight {w:g}): {METRIC_GUIDE[m]}" for m, w in rubric.items())
    system = (
        "You are a strict sales coach scoring a practice conversation. Score the trainee (not the "
        "customer) from 0 to 100 on each metric below. For each metric give a one-sentence reason and "
        "quote, word for word, the trainee turn the score rests on (an empty quote if none applies). "
        "saleClosed is true only if the customer agreed to buy or to a concrete next step.\n"
        f"Metrics:\n{guide}\n"
        f"Selling: {context.subject.name}. Key features: {', '.join(context.subject.features) or 'none listed'}. "
        f"Expected objections: {', '.join(context.subject.objections) or 'none listed'}.\n"
        f"Buyer persona: {persona.type}, {persona.personality}; budget {persona.budget or 'unstated'}; "
        f"priorities: {', '.join(persona.priorities) or 'unstated'}."
    )
    transcript = "\n".join(f"[{t.role.value}] {t.text}" for t in turns)
    return [{"role": "system", "content": system}, {"role": "user", "content": transcript}]


def llm_evaluator(client: OpenAI, model: str) -> LlmEvaluator:
    async def evaluate(turns: Sequence[Turn], subject: Subject, rubric: dict[Metric, float],
                       context: ScenarioContext) -> Evaluation:
        answer = await client.chat_json(model, evaluation_messages(turns, rubric, context),
                                        "training_evaluation", rules.llm_response_schema(rubric))
        return rules.from_llm(answer, turns, rubric)

    return evaluate


# ---------------------------------------------------------------- sessions


def _event(work: Work, session: TrainingSession, type: EventType, turn: dict | None = None) -> None:
    """Bump the session's sequence and log + queue one event carrying its state."""
    session.sequence += 1
    payload = {
        "sequence": session.sequence,
        "type": type.value,
        "sessionId": str(session.id),
        "status": session.status,
        "endedAt": session.ended_at.isoformat() if session.ended_at else None,
        "overallScore": session.overall_score,
        "metrics": session.metrics,
        "turn": turn,
    }
    work.session.add(TrainingEvent(session_id=session.id, sequence=session.sequence,
                                   type=type.value, payload=payload))
    work.events.add(training_session_channel(session.id), payload)


async def _locked_session(work: Work, session_id: uuid.UUID, *, manage: bool = False) -> TrainingSession:
    session = await work.session.scalar(
        select(TrainingSession).where(TrainingSession.id == session_id).with_for_update()
    )
    actor = work.actor
    if session is None or actor is None:
        raise _not_found()
    if manage:
        allowed = can_see_session(actor, session.trainee_id, session.organization_id)
    else:  # only the trainee speaks in their own session
        allowed = actor.user_id == session.trainee_id
    if not allowed:
        raise _not_found()
    return session


async def _turns(work: Work, session_id: uuid.UUID) -> list[Turn]:
    rows = await work.session.execute(
        select(TranscriptTurn.role, TranscriptTurn.text, TranscriptTurn.at)
        .where(TranscriptTurn.session_id == session_id).order_by(TranscriptTurn.position)
    )
    return [Turn(Role(role), text, at) for role, text, at in rows]


async def _plan(work: Work, organization_id: uuid.UUID) -> PlanTier:
    plan = await work.session.scalar(select(Organization.plan).where(Organization.id == organization_id))
    return PlanTier(plan)


async def start_session(work: Work, scenario_id: uuid.UUID) -> TrainingSession:
    actor = work.actor
    assert actor is not None
    if actor.organization_id is None:
        raise DomainError("NO_ORGANIZATION", "Training minutes belong to an organization: create or join one first")
    scenario = await work.session.get(Scenario, scenario_id)
    if scenario is None or not can_use_scenario(actor, scenario.organization_id) or (
        scenario.organization_id not in (None, actor.organization_id)
    ):
        raise _not_found("scenario", "scenarioId")
    quota = await work.session.scalar(
        select(MinuteQuota).where(MinuteQuota.organization_id == actor.organization_id).with_for_update()
    )
    # Under the quota's row lock, so concurrent starts see each other's sessions.
    running = await work.session.scalar(
        select(func.count()).select_from(TrainingSession).where(
            TrainingSession.organization_id == actor.organization_id,
            TrainingSession.status == TrainingStatus.IN_PROGRESS.value))
    left = rules.minutes_left(quota.total_minutes if quota else 0, quota.used_minutes if quota else 0, running)
    member = await work.session.scalar(  # locked after the quota: the order every writer uses
        select(MemberMinuteLimit).where(MemberMinuteLimit.user_id == actor.user_id,
                                        MemberMinuteLimit.organization_id == actor.organization_id)
        .with_for_update())
    if member is not None:
        mine = await work.session.scalar(
            select(func.count()).select_from(TrainingSession).where(
                TrainingSession.trainee_id == actor.user_id,
                TrainingSession.status == TrainingStatus.IN_PROGRESS.value))
        left = min(left, rules.member_minutes_left(member.limit_minutes, member.used_minutes, mine))
    session = TrainingSession(
        id=uuid.uuid4(), trainee_id=actor.user_id, organization_id=actor.organization_id,
        scenario_id=scenario.id, status=TrainingStatus.IN_PROGRESS.value, started_at=work.now,
        minutes_allowed=left, pass_score=scenario.pass_score, sequence=0, turn_count=0, metrics=[],
    )
    work.session.add(session)
    await work.session.flush()
    return session


async def append_turn(work: Work, session_id: uuid.UUID, role: str, text: str, *,
                      rescore_interval: float) -> TrainingSession:
    """Add one transcript turn; re-score live at most every `rescore_interval` seconds."""
    speaker = rules.parse_role(role)
    text = rules.check_turn(text)
    session = await _locked_session(work, session_id)
    rules.check_in_progress(TrainingStatus(session.status))
    rules.check_time_left(session.started_at, session.minutes_allowed, work.now)
    rules.check_room_for_turn(session.turn_count)
    if session.mode == "voice":
        # A downgrade mid-session ends what the plan no longer pays for; the text so far stays.
        rules.check_voice_allowed(await _plan(work, session.organization_id))
    await work.session.execute(insert(TranscriptTurn).values(
        session_id=session.id, position=session.turn_count, role=speaker.value, text=text, at=work.now))
    session.turn_count += 1
    _event(work, session, EventType.TRANSCRIPT, {"role": speaker.value, "text": text, "at": work.now.isoformat()})
    if rules.should_rescore(session.scored_at, work.now, rescore_interval):
        scenario = await work.session.get(Scenario, session.scenario_id)
        context = await scenario_context(work, scenario)
        evaluation = rules.evaluate(await _turns(work, session.id), context.subject, _rubric(scenario))
        _apply_scores(session, evaluation, work.now)
        _event(work, session, EventType.SCORE_UPDATED)
    await work.session.flush()
    return session


def _rubric(scenario: Scenario) -> dict[Metric, float]:
    return rules.stored_rubric(scenario.rubric)


def _apply_scores(session: TrainingSession, evaluation: Evaluation, now: datetime) -> None:
    session.metrics = [{"metric": s.metric.value, "score": s.score, "reason": s.reason}
                       for s in evaluation.scores]
    session.overall_score = evaluation.overall
    session.scored_at = now


async def _charge_minutes(work: Work, session: TrainingSession) -> None:
    """Record the minutes once (usage_records is unique per session) and count them against
    the organization's quota."""
    minutes = rules.minutes_used(session.started_at, work.now)
    work.session.add(UsageRecord(organization_id=session.organization_id, user_id=session.trainee_id,
                                 session_id=session.id, minutes_used=minutes))
    await work.session.execute(
        update(MinuteQuota).where(MinuteQuota.organization_id == session.organization_id)
        .values(used_minutes=MinuteQuota.used_minutes + minutes)
    )
    await work.session.execute(
        update(MemberMinuteLimit).where(MemberMinuteLimit.user_id == session.trainee_id,
                                        MemberMinuteLimit.organization_id == session.organization_id)
        .values(used_minutes=MemberMinuteLimit.used_minutes + minutes)
    )


@dataclass(frozen=True)
class VoiceKey:
    ephemeral_key: str
    expires_at: datetime
    model: str


async def start_voice(work: Work, session_id: uuid.UUID, client: OpenAI | None, *, model: str, voice: str,
                      ttl_seconds: int) -> VoiceKey:
    """An ephemeral OpenAI Realtime key for the trainee's browser: the model plays the scenario's
    buyer. PRO only (seed 003); the session becomes a voice session."""
    session = await _locked_session(work, session_id)
    rules.check_in_progress(TrainingStatus(session.status))
    rules.check_time_left(session.started_at, session.minutes_allowed, work.now)
    rules.check_voice_allowed(await _plan(work, session.organization_id))
    if client is None:
        raise DomainError(
            "PROVIDER_NOT_CONFIGURED", "Voice training needs OpenAI, which is not configured on this server"
        )
    scenario = await work.session.get(Scenario, session.scenario_id)
    context = await scenario_context(work, scenario)
    persona = context.persona
    instructions = rules.buyer_instructions(
        subject=context.subject, description=scenario.description, persona_type=persona.type,
        personality=persona.personality, budget=persona.budget, priorities=persona.priorities,
        background=persona.background, pain_points=scenario.pain_points)
    try:
        answer = await client.realtime_client_secret({
            "type": "realtime", "model": model, "instructions": instructions,
            "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                                "turn_detection": {"type": "server_vad"}},
                      "output": {"voice": voice}},
        }, ttl_seconds)
    except ProviderError:
        raise DomainError("PROVIDER_UNAVAILABLE", "The voice service is unavailable; try again shortly") from None
    session.mode = "voice"
    await work.session.flush()
    return VoiceKey(answer["value"], datetime.fromtimestamp(answer["expires_at"], UTC), model)


async def complete_session(work: Work, session_id: uuid.UUID, sale_completed: bool | None, *,
                           llm: LlmEvaluator | None = None) -> TrainingSession:
    session = await _locked_session(work, session_id)
    rules.check_in_progress(TrainingStatus(session.status))
    turns = await _turns(work, session.id)
    rules.check_can_complete(turns)
    scenario = await work.session.get(Scenario, session.scenario_id)
    context = await scenario_context(work, scenario)
    rubric = _rubric(scenario)
    evaluation, evaluator = None, "builtin"
    if llm is not None:
        try:
            evaluation, evaluator = await llm(turns, context.subject, rubric, context), "llm"
        except Exception as err:  # noqa: BLE001 (the provider's failure must not cost the trainee their score)
            log.warning("LLM evaluation failed, using the built-in evaluator: %s", err)
    if evaluation is None:
        evaluation = rules.evaluate(turns, context.subject, rubric)
    _apply_scores(session, evaluation, work.now)
    session.status = TrainingStatus.COMPLETED.value
    session.ended_at = work.now
    session.feedback = evaluation.feedback
    session.sale_completed = evaluation.sale_closed if sale_completed is None else sale_completed
    work.session.add(TrainingFeedback(
        session_id=session.id, evaluator=evaluator, metrics=session.metrics,
        talk_ratio=evaluation.talk_ratio, filler_words=evaluation.filler_words,
        words_per_minute=evaluation.words_per_minute,
        duration_seconds=int((work.now - session.started_at).total_seconds()),
    ))
    await _charge_minutes(work, session)
    _event(work, session, EventType.COMPLETED)
    await work.session.flush()
    return session


async def cancel_session(work: Work, session_id: uuid.UUID) -> TrainingSession:
    """The trainee or a manager abandons a session: no score; the minutes used still count."""
    session = await _locked_session(work, session_id, manage=True)
    rules.check_in_progress(TrainingStatus(session.status))
    session.status = TrainingStatus.CANCELLED.value
    session.ended_at = work.now
    await _charge_minutes(work, session)
    _event(work, session, EventType.CANCELLED)
    await work.session.flush()
    return session


async def override_score(work: Work, session_id: uuid.UUID, score: float, reason: str | None) -> TrainingSession:
    """A manager's review: the evaluator's score stays; the override is audited."""
    actor = work.actor
    assert actor is not None
    reason = rules.check_override(score, reason)
    session = await work.session.scalar(
        select(TrainingSession).where(TrainingSession.id == session_id).with_for_update()
    )
    if session is None or not can_see_session(actor, session.trainee_id, session.organization_id):
        raise _not_found()
    if not can_manage(actor, session.organization_id):
        raise DomainError("NOT_ORGANIZATION_ADMIN", "Only managers review scores", ("sessionId",))
    if session.trainee_id == actor.user_id:
        raise DomainError("OWN_SESSION", "Managers cannot review their own sessions", ("sessionId",))
    if session.status != TrainingStatus.COMPLETED.value:
        raise DomainError("SESSION_NOT_COMPLETED", "Only completed sessions are reviewed", ("sessionId",))
    old = {"score": session.override_score if session.override_score is not None else session.overall_score}
    session.override_score = round(score, 1)
    session.override_reason = reason
    session.overridden_by = actor.user_id
    session.overridden_at = work.now
    audit.record(work, "training.override_score", target_type="training_session", target_id=session.id,
                 old=old, new={"score": session.override_score}, reason=reason)
    await work.session.flush()
    return session



# ---------------------------------------------------------------- member limits


async def set_member_limit(work: Work, user_id: uuid.UUID, minutes: int | None) -> MemberMinuteLimit | None:
    """An organization admin caps (or, with None, uncaps) one member's minutes per period;
    audited."""
    actor = work.actor
    assert actor is not None
    minutes = rules.check_member_limit(minutes)
    member = await work.session.get(User, user_id)
    if member is None or member.organization_id is None or not can_manage(actor, member.organization_id):
        raise _not_found("member", "userId")
    row = await work.session.scalar(
        select(MemberMinuteLimit).where(MemberMinuteLimit.user_id == user_id).with_for_update())
    old = {"limit": row.limit_minutes if row and row.organization_id == member.organization_id else None}
    if row is not None and row.organization_id != member.organization_id:  # left an old organization
        await work.session.delete(row)
        await work.session.flush()
        row = None
    if minutes is None:
        if row is not None:
            await work.session.delete(row)
        row = None
    elif row is None:
        row = MemberMinuteLimit(user_id=user_id, organization_id=member.organization_id,
                                limit_minutes=minutes, used_minutes=0)
        work.session.add(row)
    else:
        row.limit_minutes = minutes
    audit.record(work, "training.set_member_limit", target_type="user", target_id=user_id,
                 old=old, new={"limit": minutes})
    await work.session.flush()
    return row


async def reset_member_usage(work: Work, organization_id: uuid.UUID) -> None:
    """A new period for the organization is a new period for each member's limit."""
    await work.session.execute(
        update(MemberMinuteLimit).where(MemberMinuteLimit.organization_id == organization_id)
        .values(used_minutes=0))
