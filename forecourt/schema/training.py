"""Sales training types: products, personas, scenarios, sessions, live events, analytics."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry

from forecourt.db.models import BuyerPersona, Scenario, TrainingProduct, TrainingSession
from forecourt.domain.training import EventType, Metric, TrainingStatus, stored_rubric
from forecourt.schema.catalog import CatalogEntryType, load_catalog_entry
from forecourt.schema.errors import UserError
from forecourt.schema.identity import UserType, load_user
from forecourt.schema.relay import Node, node_resolver, to_global_id
from forecourt.schema.scalars import Money
from forecourt.services.training import can_see_session, can_use_scenario

TrainingStatusEnum = strawberry.enum(TrainingStatus, name="TrainingStatus")
TrainingEventTypeEnum = strawberry.enum(EventType, name="TrainingEventType")
MetricEnum = strawberry.enum(
    Metric, name="TrainingMetric", description="Rubric metrics (their values are the metric names)."
)


@strawberry.enum(description="The seed rubrics: dealership (000) and retail (001).")
class RubricPreset(enum.Enum):
    DEALERSHIP = "dealership"
    RETAIL = "retail"


@strawberry.type
class RubricWeight:
    metric: str
    weight: float


@strawberry.type
class MetricScore:
    metric: str
    score: float = strawberry.field(description="0 to 100.")
    reason: str | None = strawberry.field(
        default=None, description="Why: the transcript turn the score rests on.")


@strawberry.type
class TranscriptTurn:
    role: str = strawberry.field(description="trainee or customer.")
    text: str
    at: datetime


@strawberry.type
class PricingTier:
    name: str
    price: Money


@strawberry.type
class ProductObjection:
    objection: str
    response: str | None = strawberry.field(description="A model response.")
    tip: str | None = strawberry.field(description="A training tip.")


@strawberry.type(name="TrainingProduct")
class TrainingProductType(Node):
    name: str
    category: str | None
    description: str | None
    features: list[str]
    pricing_tiers: list[PricingTier]
    objections: list[ProductObjection]
    training_tips: list[str]

    @classmethod
    def from_model(cls, p: TrainingProduct) -> TrainingProductType:
        return cls(
            id=to_global_id("TrainingProduct", p.id), name=p.name, category=p.category,
            description=p.description, features=list(p.features),
            pricing_tiers=[PricingTier(name=t["name"], price=Decimal(t["price"])) for t in p.pricing_tiers],
            objections=[ProductObjection(**o) for o in p.objections],
            training_tips=list(p.training_tips),
        )


@strawberry.type(name="BuyerPersona")
class BuyerPersonaType(Node):
    type: str
    personality: str
    budget: str | None
    priorities: list[str]
    background: str | None

    @classmethod
    def from_model(cls, p: BuyerPersona) -> BuyerPersonaType:
        return cls(id=to_global_id("BuyerPersona", p.id), type=p.type, personality=p.personality,
                   budget=p.budget, priorities=list(p.priorities), background=p.background)


@strawberry.type(name="Scenario")
class ScenarioType(Node):
    scenario_id: strawberry.Private[uuid.UUID]
    persona_id: strawberry.Private[uuid.UUID]
    catalog_entry_id: strawberry.Private[uuid.UUID | None]
    product_id: strawberry.Private[uuid.UUID | None]
    name: str
    description: str
    difficulty: int = strawberry.field(description="1 (easy) to 5 (hard).")
    customer_type: str | None
    objections: list[str]
    pain_points: list[str]
    key_features: list[str] = strawberry.field(description="What the trainee should bring up.")
    rubric: list[RubricWeight] = strawberry.field(description="Weights sum to 1.")
    pass_score: float
    is_preset: bool = strawberry.field(description="A platform preset shared by every organization.")

    @strawberry.field
    async def persona(self, info: strawberry.Info) -> BuyerPersonaType:
        persona = await info.context.loaders.persona_by_id.load(self.persona_id)
        return BuyerPersonaType.from_model(persona)

    @strawberry.field(description="The catalog vehicle being sold, for vehicle scenarios.")
    async def vehicle(self, info: strawberry.Info) -> CatalogEntryType | None:
        return await load_catalog_entry(info.context, self.catalog_entry_id)

    @strawberry.field(description="The product being sold, for product scenarios.")
    async def product(self, info: strawberry.Info) -> TrainingProductType | None:
        if self.product_id is None:
            return None
        return TrainingProductType.from_model(await info.context.loaders.product_by_id.load(self.product_id))

    @strawberry.field
    async def product_name(self, info: strawberry.Info) -> str | None:
        if self.product_id is None:
            return None
        return (await info.context.loaders.product_by_id.load(self.product_id)).name

    @classmethod
    def from_model(cls, s: Scenario) -> ScenarioType:
        return cls(
            id=to_global_id("Scenario", s.id), scenario_id=s.id, persona_id=s.persona_id,
            catalog_entry_id=s.catalog_entry_id, product_id=s.product_id, name=s.name,
            description=s.description, difficulty=s.difficulty, customer_type=s.customer_type,
            objections=list(s.objections), pain_points=list(s.pain_points),
            key_features=list(s.key_features),
            rubric=[RubricWeight(metric=m.value, weight=w) for m, w in stored_rubric(s.rubric).items()],
            pass_score=s.pass_score, is_preset=s.organization_id is None,
        )


async def load_scenario(ctx, scenario_id: uuid.UUID) -> ScenarioType | None:
    scenario = await ctx.loaders.scenario_by_id.load(scenario_id)
    if scenario is None or not can_use_scenario(ctx.principal, scenario.organization_id):
        return None
    return ScenarioType.from_model(scenario)


@node_resolver("Scenario")
async def scenario_node(ctx, raw_id: uuid.UUID) -> ScenarioType | None:
    return await load_scenario(ctx, raw_id)


@strawberry.type
class ScoreOverride:
    reviewer_id: strawberry.Private[uuid.UUID]
    score: float
    reason: str
    reviewed_at: datetime

    @strawberry.field
    async def reviewer(self, info: strawberry.Info) -> UserType | None:
        return await load_user(info.context, self.reviewer_id)


@strawberry.type
class SessionAnalysis:
    """Seed 002 feedback metrics of a completed session."""

    evaluator: str = strawberry.field(description="llm or builtin.")
    talk_ratio: float = strawberry.field(description="The trainee's share of the words spoken.")
    filler_words: int
    words_per_minute: float | None
    duration_seconds: int


@strawberry.type(name="TrainingSession")
class TrainingSessionType(Node):
    session_id: strawberry.Private[uuid.UUID]
    trainee_id: strawberry.Private[uuid.UUID]
    scenario_id: strawberry.Private[uuid.UUID]
    metric_rows: strawberry.Private[list[dict[str, Any]]]
    evaluated: strawberry.Private[float | None]
    override_row: strawberry.Private[ScoreOverride | None]
    status: TrainingStatusEnum
    started_at: datetime
    ended_at: datetime | None
    feedback: str | None
    sale_completed: bool | None
    sequence: int
    pass_score: float

    @strawberry.field
    async def trainee(self, info: strawberry.Info) -> UserType:
        return await load_user(info.context, self.trainee_id)

    @strawberry.field
    async def scenario(self, info: strawberry.Info) -> ScenarioType:
        scenario = await info.context.loaders.scenario_by_id.load(self.scenario_id)
        return ScenarioType.from_model(scenario)

    @strawberry.field(description="Per rubric metric, each with its reason; live while in progress.")
    def metrics(self) -> list[MetricScore]:
        return [MetricScore(metric=m["metric"], score=m["score"], reason=m.get("reason")) for m in self.metric_rows]

    @strawberry.field(description="The weighted score: a manager's override when there is one.")
    def overall_score(self) -> float | None:
        return self.override_row.score if self.override_row else self.evaluated

    @strawberry.field(description="The evaluator's score, kept when a manager overrides it.")
    def evaluated_score(self) -> float | None:
        return self.evaluated

    @strawberry.field
    def override(self) -> ScoreOverride | None:
        return self.override_row

    @strawberry.field(description="Completed with a score at or above the scenario's pass score.")
    def passed(self) -> bool | None:
        score = self.overall_score()
        return None if self.status is not TrainingStatus.COMPLETED or score is None else score >= self.pass_score

    @strawberry.field(description="Change of the score against the trainee's previous completed session.")
    async def score_change(self, info: strawberry.Info) -> float | None:
        score = self.overall_score()
        if score is None:
            return None
        previous = await info.context.loaders.previous_score_by_session.load(self.session_id)
        return None if previous is None else round(score - previous, 1)

    @strawberry.field
    async def transcript(self, info: strawberry.Info) -> list[TranscriptTurn]:
        rows = await info.context.loaders.turns_by_session.load(self.session_id)
        return [TranscriptTurn(role=role, text=text, at=at) for role, text, at in rows]

    @strawberry.field(description="Talk ratio, filler words, pace and duration, once completed.")
    async def analysis(self, info: strawberry.Info) -> SessionAnalysis | None:
        found = await info.context.loaders.feedback_by_session.load(self.session_id)
        if found is None:
            return None
        return SessionAnalysis(evaluator=found.evaluator, talk_ratio=found.talk_ratio,
                               filler_words=found.filler_words, words_per_minute=found.words_per_minute,
                               duration_seconds=found.duration_seconds)

    @classmethod
    def from_model(cls, s: TrainingSession) -> TrainingSessionType:
        override = None
        if s.override_score is not None:
            override = ScoreOverride(reviewer_id=s.overridden_by, score=s.override_score,
                                     reason=s.override_reason, reviewed_at=s.overridden_at)
        return cls(
            id=to_global_id("TrainingSession", s.id), session_id=s.id, trainee_id=s.trainee_id,
            scenario_id=s.scenario_id, metric_rows=list(s.metrics), evaluated=s.overall_score,
            override_row=override, status=TrainingStatus(s.status), started_at=s.started_at,
            ended_at=s.ended_at, feedback=s.feedback, sale_completed=s.sale_completed,
            sequence=s.sequence, pass_score=s.pass_score,
        )

    def at_event(self, payload: dict[str, Any]) -> TrainingSessionType:
        """The session as an event left it (replayed events show the state of their time)."""
        ended = payload.get("endedAt")
        return dataclasses.replace(
            self, status=TrainingStatus(payload["status"]), metric_rows=payload["metrics"],
            evaluated=payload["overallScore"], sequence=payload["sequence"],
            ended_at=datetime.fromisoformat(ended) if ended else None,
        )


async def load_training_session(ctx, session_id: uuid.UUID) -> TrainingSessionType | None:
    session = await ctx.loaders.training_session_by_id.load(session_id)
    if session is None or not can_see_session(ctx.principal, session.trainee_id, session.organization_id):
        return None
    return TrainingSessionType.from_model(session)


@node_resolver("TrainingSession")
async def training_session_node(ctx, raw_id: uuid.UUID) -> TrainingSessionType | None:
    return await load_training_session(ctx, raw_id)


@strawberry.type
class TrainingSessionEvent:
    type: TrainingEventTypeEnum
    sequence: int
    session: TrainingSessionType
    turn: TranscriptTurn | None


@strawberry.type
class TrainingBreakdown:
    key: str
    sessions: int
    average_score: float
    close_rate: float


@strawberry.type
class TrainingProgress:
    user_id: strawberry.Private[uuid.UUID]
    total_sessions: int
    average_score: float
    close_rate: float
    skills: list[MetricScore]
    badges: list[str]
    trend: list[float] = strawberry.field(description="The last 10 scores, oldest first.")

    @strawberry.field(description="By body type of the catalog vehicle sold.")
    async def by_vehicle_type(self, info: strawberry.Info) -> list[TrainingBreakdown]:
        from forecourt.resolvers.training import breakdown

        return await breakdown(info.context, self.user_id, "vehicle")

    @strawberry.field(description="By buyer persona type.")
    async def by_buyer_type(self, info: strawberry.Info) -> list[TrainingBreakdown]:
        from forecourt.resolvers.training import breakdown

        return await breakdown(info.context, self.user_id, "buyer")


@strawberry.type
class LeaderboardEntry:
    user_id: strawberry.Private[uuid.UUID]
    session_count: int
    average_score: float
    sales_closed: int
    close_rate: float

    @strawberry.field
    async def user(self, info: strawberry.Info) -> UserType:
        return await load_user(info.context, self.user_id)


# ---------------------------------------------------------------- inputs and payloads


@strawberry.input
class StartTrainingInput:
    scenario_id: strawberry.ID


@strawberry.input
class AppendTranscriptInput:
    session_id: strawberry.ID
    role: str = strawberry.field(description="trainee or customer.")
    text: str


@strawberry.input
class CompleteTrainingInput:
    session_id: strawberry.ID
    sale_completed: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Left out: inferred from the transcript (the customer said yes).")


@strawberry.input
class CancelTrainingInput:
    session_id: strawberry.ID


@strawberry.input
class OverrideTrainingScoreInput:
    session_id: strawberry.ID
    score: float
    reason: str


@strawberry.type
class TrainingSessionPayload:
    session: TrainingSessionType | None = None
    user_errors: list[UserError]


@strawberry.input
class RubricWeightInput:
    metric: MetricEnum
    weight: float


@strawberry.input
class CreateScenarioInput:
    name: str
    description: str
    difficulty: int
    persona_id: strawberry.ID
    vehicle_id: strawberry.ID | None = strawberry.field(default=strawberry.UNSET, description="A CatalogEntry ID.")
    product_id: strawberry.ID | None = strawberry.UNSET
    rubric: list[RubricWeightInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Weights summing to 1; or use `preset`.")
    preset: RubricPreset | None = strawberry.UNSET
    objections: list[str] | None = strawberry.UNSET
    pain_points: list[str] | None = strawberry.UNSET
    key_features: list[str] | None = strawberry.UNSET
    customer_type: str | None = strawberry.UNSET
    pass_score: float | None = strawberry.UNSET
    shared: bool = strawberry.field(default=False, description="A platform preset (platform admins).")
    organization_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Platform admins: the organization it belongs to.")


@strawberry.type
class ScenarioPayload:
    scenario: ScenarioType | None = None
    user_errors: list[UserError]


@strawberry.input
class CreateBuyerPersonaInput:
    type: str
    personality: str
    budget: str | None = strawberry.UNSET
    priorities: list[str] | None = strawberry.UNSET
    background: str | None = strawberry.UNSET
    shared: bool = False
    organization_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class BuyerPersonaPayload:
    persona: BuyerPersonaType | None = None
    user_errors: list[UserError]


@strawberry.input
class PricingTierInput:
    name: str
    price: Money


@strawberry.input
class ProductObjectionInput:
    objection: str
    response: str | None = strawberry.UNSET
    tip: str | None = strawberry.UNSET


@strawberry.input
class CreateTrainingProductInput:
    name: str
    category: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    features: list[str] | None = strawberry.UNSET
    pricing_tiers: list[PricingTierInput] | None = strawberry.UNSET
    objections: list[ProductObjectionInput] | None = strawberry.UNSET
    training_tips: list[str] | None = strawberry.UNSET
    shared: bool = False
    organization_id: strawberry.ID | None = strawberry.UNSET


@strawberry.type
class TrainingProductPayload:
    product: TrainingProductType | None = None
    user_errors: list[UserError]


@strawberry.type
class VoiceSessionPayload:
    ephemeral_key: str | None = strawberry.field(
        default=None, description="For the browser's WebRTC connection to OpenAI Realtime; short-lived.")
    expires_at: datetime | None = None
    model: str | None = None
    user_errors: list[UserError]


@strawberry.type(
    name="MemberMinuteLimit",
    description="A member's training minutes per period, capped by their organization's admins.",
)
class MemberMinuteLimitType:
    user_id: strawberry.Private[uuid.UUID]
    limit_minutes: int
    used_minutes: int

    @strawberry.field
    def minutes_remaining(self) -> int:
        return max(0, self.limit_minutes - self.used_minutes)

    @strawberry.field
    async def user(self, info: strawberry.Info) -> UserType:
        return await load_user(info.context, self.user_id)

    @classmethod
    def from_model(cls, row: Any) -> MemberMinuteLimitType:
        return cls(user_id=row.user_id, limit_minutes=row.limit_minutes, used_minutes=row.used_minutes)


@strawberry.input
class SetMemberMinuteLimitInput:
    user_id: strawberry.ID
    minutes: int | None = strawberry.field(description="Minutes per period; null removes the limit.")


@strawberry.type
class MemberMinuteLimitPayload:
    limit: MemberMinuteLimitType | None = None
    user_errors: list[UserError]
