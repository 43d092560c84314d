"""Sales training rules (seeds 000, 001, 002): rubrics, the transparent built-in evaluator,
pass marks and badges.

The evaluator scores every rubric metric from the transcript alone, and every score comes with
a short reason quoting the turn it rests on: reps do not trust opaque numbers.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from forecourt.domain.errors import DomainError, Validator
from forecourt.domain.organizations import PlanTier
from forecourt.domain.text import clean_text

DEFAULT_PASS_SCORE = 80.0
WEIGHT_TOLERANCE = 1e-6
QUOTE_LENGTH = 80


class Metric(enum.StrEnum):
    PRODUCT_KNOWLEDGE = "productKnowledge"
    NEEDS_ASSESSMENT = "needsAssessment"
    FEATURE_PRESENTATION = "featurePresentation"
    OBJECTION_HANDLING = "objectionHandling"
    CLOSING = "closing"
    RAPPORT = "rapport"


# The seed rubrics, shipped as presets.
DEALERSHIP_RUBRIC = {Metric.PRODUCT_KNOWLEDGE: 0.25, Metric.NEEDS_ASSESSMENT: 0.30,
                     Metric.FEATURE_PRESENTATION: 0.25, Metric.CLOSING: 0.20}
RETAIL_RUBRIC = {Metric.PRODUCT_KNOWLEDGE: 0.30, Metric.OBJECTION_HANDLING: 0.25,
                 Metric.CLOSING: 0.25, Metric.RAPPORT: 0.20}


def validate_rubric(weights: dict[str, float]) -> dict[Metric, float]:
    """Known metrics, each weight in (0, 1], summing to 1."""
    v = Validator()
    rubric: dict[Metric, float] = {}
    for name, weight in weights.items():
        try:
            metric = Metric(name)
        except ValueError:
            v.add("UNKNOWN_METRIC", f"{name!r} is not a metric; use one of {', '.join(Metric)}", "rubric")
            continue
        if not 0 < weight <= 1:
            v.add("INVALID_WEIGHT", f"The weight of {name} must be above 0 and at most 1", "rubric")
        rubric[metric] = weight
    if not weights:
        v.add("EMPTY_RUBRIC", "A rubric needs at least one metric", "rubric")
    elif abs(sum(weights.values()) - 1) > WEIGHT_TOLERANCE:
        v.add("WEIGHTS_MUST_SUM_TO_ONE", f"Rubric weights sum to {sum(weights.values()):g}, not 1", "rubric")
    v.check()
    return rubric


def stored_rubric(weights: dict[str, float]) -> dict[Metric, float]:
    """A stored rubric in the metrics' declared order (JSONB keeps no key order)."""
    return {metric: weights[metric.value] for metric in Metric if metric.value in weights}


class Role(enum.StrEnum):
    TRAINEE = "trainee"
    CUSTOMER = "customer"


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    at: datetime


@dataclass(frozen=True)
class Subject:
    """What is being sold, as the evaluator needs it."""

    name: str
    features: Sequence[str]
    objections: Sequence[str] = ()


@dataclass(frozen=True)
class Score:
    metric: Metric
    score: float  # 0..100
    reason: str


@dataclass(frozen=True)
class Evaluation:
    scores: tuple[Score, ...]
    overall: float
    talk_ratio: float
    filler_words: int
    words_per_minute: float | None
    feedback: str
    sale_closed: bool = False  # the customer said yes to a closing question

    def passed(self, pass_score: float = DEFAULT_PASS_SCORE) -> bool:
        return self.overall >= pass_score


# "like" only as a filler (", like,"), not as in "would you like to".
FILLERS = re.compile(r"\b(um+|uh+|erm|you know|basically|i mean)\b|,\s*like\s*,", re.I)
OPEN_QUESTION = re.compile(r"^(what|how|why|which|tell me|could you tell|can you tell|walk me)\b", re.I)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
AGREE = re.compile(r"^\W*(yes|sure|ok(ay)?|deal|let's|lets|sounds good|great)\b", re.I)
NEED = re.compile(r"\b(need|looking for|want|budget|afford|family|kids|commute|drive|space|important|"
                  r"priority|priorities|must have|use it for)\b", re.I)
OBJECTION = re.compile(r"\b(too expensive|expensive|price is|cheaper|can't afford|not sure|think about it|"
                       r"competitor|elsewhere|other dealer|worried|concern|don't need|too much)\b", re.I)
ACKNOWLEDGE = re.compile(r"\b(understand|fair point|good question|i hear you|makes sense|that's a "
                         r"(valid|fair)|let me show|compared|value|warranty|finance|financing|monthly)\b", re.I)
CLOSE = re.compile(r"\b(shall we|would you like to|ready to|sign|paperwork|take it home|test drive|"
                   r"reserve it|put down|deposit|go ahead|place the order|start the process)\b", re.I)
RAPPORT = re.compile(r"\b(welcome|nice to meet|thanks for|thank you|great to|how are you|"
                     r"i appreciate|glad)\b", re.I)


def _quote(turn: Turn) -> str:
    text = " ".join(turn.text.split())
    return f'"{text[:QUOTE_LENGTH]}{"…" if len(text) > QUOTE_LENGTH else ""}"'


def _words(text: str) -> int:
    return len(text.split())


def evaluate(turns: Sequence[Turn], subject: Subject, rubric: dict[Metric, float]) -> Evaluation:
    """Score each rubric metric from the transcript with the reason it rests on."""
    trainee = [t for t in turns if t.role is Role.TRAINEE]
    features = [f for f in subject.features if f.strip()]
    mentioned: dict[str, Turn] = {}
    for turn in trainee:
        for feature in features:
            if feature.lower() not in mentioned and feature.lower() in turn.text.lower():
                mentioned[feature.lower()] = turn
    open_questions = [t for t in trainee if any(
        s.endswith("?") and OPEN_QUESTION.match(s) for s in SENTENCE_END.split(t.text.strip()))]
    questions = [t for t in trainee if "?" in t.text]
    needs = [t for t in turns if t.role is Role.CUSTOMER and NEED.search(t.text)]
    objections, answered = [], []
    for i, turn in enumerate(turns):
        if turn.role is Role.CUSTOMER and OBJECTION.search(turn.text):
            objections.append(turn)
            reply = next((t for t in turns[i + 1:] if t.role is Role.TRAINEE), None)
            if reply is not None and ACKNOWLEDGE.search(reply.text):
                answered.append(reply)
    closes = [t for t in trainee if CLOSE.search(t.text)]
    accepted = [t for i, t in enumerate(turns) if t in closes and any(
        AGREE.search(r.text) for r in turns[i + 1:i + 2] if r.role is Role.CUSTOMER)]
    warm = [t for t in trainee if RAPPORT.search(t.text)]

    def product_knowledge() -> Score:
        if not features:
            return Score(Metric.PRODUCT_KNOWLEDGE, 50.0, "The subject lists no features to check against")
        share = len(mentioned) / len(features)
        if not mentioned:
            return Score(Metric.PRODUCT_KNOWLEDGE, 0.0, f"None of the {subject.name} features came up")
        first = next(iter(mentioned.values()))
        return Score(Metric.PRODUCT_KNOWLEDGE, round(min(100.0, 100 * share * 1.25), 1),
                     f"Named {len(mentioned)} of {len(features)} features, e.g. {_quote(first)}")

    def needs_assessment() -> Score:
        score = min(100.0, 25.0 * len(open_questions) + 10.0 * (len(questions) - len(open_questions))
                    + 15.0 * len(needs))
        if not questions:
            return Score(Metric.NEEDS_ASSESSMENT, min(score, 20.0), "Asked the customer no questions")
        example = (open_questions or questions)[0]
        return Score(Metric.NEEDS_ASSESSMENT, round(score, 1),
                     f"{len(open_questions)} open questions, {len(needs)} needs voiced, e.g. {_quote(example)}")

    def feature_presentation() -> Score:
        tied = [t for t in mentioned.values() if re.search(r"\b(you|your)\b", t.text, re.I)]
        if not mentioned:
            return Score(Metric.FEATURE_PRESENTATION, 0.0, "No feature was presented")
        score = min(100.0, 30.0 * len(mentioned) + 20.0 * len(tied))
        example = (tied or list(mentioned.values()))[0]
        return Score(Metric.FEATURE_PRESENTATION, round(score, 1),
                     f"{len(tied)} features tied to the customer, e.g. {_quote(example)}")

    def objection_handling() -> Score:
        if not objections:
            return Score(Metric.OBJECTION_HANDLING, 70.0, "The customer raised no objection to handle")
        share = len(answered) / len(objections)
        if not answered:
            return Score(Metric.OBJECTION_HANDLING, 0.0, f"Left {_quote(objections[0])} unanswered")
        return Score(Metric.OBJECTION_HANDLING, round(100 * share, 1),
                     f"Addressed {len(answered)} of {len(objections)} objections, e.g. {_quote(answered[0])}")

    def closing() -> Score:
        if not closes:
            return Score(Metric.CLOSING, 0.0, "Never asked for the sale or a next step")
        if accepted:
            return Score(Metric.CLOSING, 100.0, f"The customer said yes to {_quote(accepted[0])}")
        return Score(Metric.CLOSING, min(100.0, 60.0 + 20.0 * (len(closes) - 1)),
                     f"{len(closes)} closing attempts, none accepted yet, e.g. {_quote(closes[0])}")

    def rapport() -> Score:
        if not warm:
            return Score(Metric.RAPPORT, 30.0, "No greeting, thanks or empathy from the trainee")
        return Score(Metric.RAPPORT, min(100.0, 60.0 + 20.0 * (len(warm) - 1)),
                     f"Built rapport, e.g. {_quote(warm[0])}")

    scorers = {Metric.PRODUCT_KNOWLEDGE: product_knowledge, Metric.NEEDS_ASSESSMENT: needs_assessment,
               Metric.FEATURE_PRESENTATION: feature_presentation,
               Metric.OBJECTION_HANDLING: objection_handling, Metric.CLOSING: closing, Metric.RAPPORT: rapport}
    return _evaluation(turns, rubric, tuple(scorers[metric]() for metric in rubric), bool(accepted))


def _evaluation(turns: Sequence[Turn], rubric: dict[Metric, float], scores: tuple[Score, ...],
                sale_closed: bool, summary: str | None = None) -> Evaluation:
    """Weighted overall score plus the seed 002 delivery metrics, whoever scored the rubric."""
    overall = round(sum(s.score * rubric[s.metric] for s in scores), 1)
    trainee = [t for t in turns if t.role is Role.TRAINEE]
    trainee_words = sum(_words(t.text) for t in trainee)
    all_words = sum(_words(t.text) for t in turns)
    fillers = sum(len(FILLERS.findall(t.text)) for t in trainee)
    minutes = (turns[-1].at - turns[0].at).total_seconds() / 60 if len(turns) > 1 else 0
    wpm = round(trainee_words / minutes, 1) if minutes > 0 else None
    weakest = min(scores, key=lambda s: s.score) if scores else None
    feedback = " ".join(filter(None, [
        f"Overall {overall:g}.",
        summary,
        f"Work on {weakest.metric.value}: {weakest.reason}." if weakest else None,
        f"{fillers} filler words." if fillers else None,
    ]))
    return Evaluation(scores, overall, round(trainee_words / all_words, 2) if all_words else 0.0,
                      fillers, wpm, feedback, sale_closed=sale_closed)


# The JSON the LLM evaluator must answer with (OpenAI structured outputs, strict).
def llm_response_schema(rubric: dict[Metric, float]) -> dict[str, Any]:
    metric = {
        "type": "object",
        "properties": {
            "score": {"type": "number"},
            "reason": {"type": "string"},
            "quote": {"type": "string"},
        },
        "required": ["score", "reason", "quote"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "metrics": {"type": "object", "properties": {m.value: metric for m in rubric},
                        "required": [m.value for m in rubric], "additionalProperties": False},
            "saleClosed": {"type": "boolean"},
            "summary": {"type": "string"},
        },
        "required": ["metrics", "saleClosed", "summary"],
        "additionalProperties": False,
    }


def from_llm(answer: dict[str, Any], turns: Sequence[Turn], rubric: dict[Metric, float]) -> Evaluation:
    """Check an LLM's scores before trusting them: every rubric metric, 0–100, with a reason
    quoting what the trainee actually said (an invented quote is refused)."""
    said = " ".join(" ".join(t.text.split()).lower() for t in turns)
    scores = []
    for metric in rubric:
        item = answer.get("metrics", {}).get(metric.value)
        if not isinstance(item, dict) or not isinstance(item.get("score"), int | float):
            raise ValueError(f"the evaluator did not score {metric.value}")
        score = float(item["score"])
        if not 0 <= score <= 100:
            raise ValueError(f"{metric.value} scored {score}, outside 0..100")
        quote = " ".join(str(item.get("quote", "")).split())
        if quote and quote.lower() not in said:
            raise ValueError(f"the {metric.value} quote is not in the transcript")
        reason = str(item.get("reason", "")).strip()[:300] or "No reason given"
        text = f'{reason} ("{quote[:QUOTE_LENGTH]}")' if quote else reason
        scores.append(Score(metric, round(score, 1), text))
    summary = str(answer.get("summary", "")).strip()[:1000] or None
    return _evaluation(turns, rubric, tuple(scores), bool(answer.get("saleClosed")), summary)


def badges(session_count: int, best_score: float, sessions_at_80: int) -> list[str]:
    """Seed 001: Dedicated Learner: 10 sessions; Sales Expert: a 95; Consistent Performer:
    five sessions at 80 or more."""
    earned = []
    if session_count >= 10:
        earned.append("Dedicated Learner")
    if best_score >= 95:
        earned.append("Sales Expert")
    if sessions_at_80 >= 5:
        earned.append("Consistent Performer")
    return earned


TURN_MAX_LENGTH = 4000
TURNS_PER_SESSION = 500


def check_turn(text: str, max_length: int = TURN_MAX_LENGTH) -> str:
    if len(text) > max_length * 4:  # refuse megabytes before touching them
        raise DomainError("TURN_TOO_LONG", f"A transcript turn is at most {max_length} characters", ("text",))
    text = text.strip()
    if not text:
        raise DomainError("EMPTY_TURN", "A transcript turn needs text", ("text",))
    if len(text) > max_length:
        raise DomainError("TURN_TOO_LONG", f"A transcript turn is at most {max_length} characters", ("text",))
    if "\x00" in text:
        raise DomainError("INVALID_TEXT", "A transcript turn cannot contain NUL characters", ("text",))
    return text


def parse_role(role: str) -> Role:
    try:
        return Role(role.strip().lower())
    except ValueError:
        raise DomainError("INVALID_ROLE", "role must be trainee or customer", ("role",)) from None


# ---------------------------------------------------------------- sessions


class TrainingStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class EventType(enum.StrEnum):
    TRANSCRIPT = "TRANSCRIPT"
    SCORE_UPDATED = "SCORE_UPDATED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


def check_in_progress(status: TrainingStatus) -> None:
    """Completed and cancelled sessions are immutable."""
    if status is TrainingStatus.COMPLETED:
        raise DomainError("SESSION_COMPLETED", "This training session is completed and can no longer change",
                          ("sessionId",))
    if status is TrainingStatus.CANCELLED:
        raise DomainError("SESSION_CANCELLED", "This training session was cancelled", ("sessionId",))


def check_room_for_turn(turn_count: int) -> None:
    if turn_count >= TURNS_PER_SESSION:
        raise DomainError("TOO_MANY_TURNS", f"A session holds at most {TURNS_PER_SESSION} turns", ("sessionId",))


def check_can_complete(turns: Sequence[Turn]) -> None:
    if not any(t.role is Role.TRAINEE for t in turns):
        raise DomainError("EMPTY_TRANSCRIPT", "Nothing to score: the trainee has not spoken yet; "
                          "append the transcript or cancel the session", ("sessionId",))


def minutes_used(started_at: datetime, ended_at: datetime) -> int:
    """Billed per started minute (seed 002 usage records are whole minutes)."""
    seconds = max(0.0, (ended_at - started_at).total_seconds())
    return max(1, math.ceil(seconds / 60))


def minutes_left(total: int, used: int, running: int = 0) -> int:
    """Minutes a new session may use: what the organization has left, less one minute held by
    each session already running (each is billed at least a minute); refuses when none remain."""
    left = total - used - running
    if left < 1:
        raise DomainError("QUOTA_EXHAUSTED", f"Your organization has used all {total} training minutes of "
                          "this period; upgrade the plan or wait for the next period")
    return left


MEMBER_LIMIT_MAX = 1_000_000


def member_minutes_left(limit: int, used: int, running: int = 0) -> int:
    """The same rule for one member's limit set by their organization's admins."""
    left = limit - used - running
    if left < 1:
        raise DomainError("MEMBER_LIMIT_REACHED", f"You have used the {limit} training minutes your "
                          "organization allows you this period; ask your manager for more")
    return left


def check_member_limit(minutes: int | None) -> int | None:
    if minutes is not None and not 0 <= minutes <= MEMBER_LIMIT_MAX:
        raise DomainError("INVALID_MINUTES", f"A limit is 0 to {MEMBER_LIMIT_MAX:,} minutes", ("minutes",))
    return minutes


def check_time_left(started_at: datetime, minutes_allowed: int, now: datetime) -> None:
    """A session may not run past the minutes its organization had left when it started."""
    if now > started_at + timedelta(minutes=minutes_allowed):
        raise DomainError("QUOTA_EXHAUSTED", f"This session has used the {minutes_allowed} minutes your "
                          "organization had left; complete it to get your score", ("sessionId",))


def should_rescore(scored_at: datetime | None, now: datetime, interval_seconds: float) -> bool:
    """Live scores are recomputed at most every `interval_seconds`."""
    return scored_at is None or (now - scored_at).total_seconds() >= interval_seconds


def check_voice_allowed(plan: PlanTier) -> None:
    """Seed 003: realtime voice is a PRO feature."""
    if plan is not PlanTier.PRO:
        raise DomainError("PLAN_REQUIRED", "Realtime voice training needs the PRO plan", ("sessionId",))


def check_override(score: float, reason: str | None) -> str:
    v = Validator()
    if not 0 <= score <= 100:
        v.add("INVALID_SCORE", "A score is between 0 and 100", "score")
    cleaned = v.run(clean_text, reason, "reason", max_length=1000, required=True, multiline=True)
    v.check()  # raises unless the reason was given and valid
    return cast(str, cleaned)


def buyer_instructions(*, subject: Subject, description: str, persona_type: str, personality: str,
                       budget: str | None, priorities: Sequence[str], background: str | None,
                       pain_points: Sequence[str]) -> str:
    """The Realtime model plays the buyer (seeds 000/001): who they are, what they want, and
    the objections to raise; it never coaches or evaluates during the roleplay."""
    objections = "\n".join(f'{i}. "{o}"' for i, o in enumerate(subject.objections, 1)) or "- your own doubts"
    return (
        f"You are a customer considering {subject.name}. Stay in character for the whole conversation.\n"
        f"PERSONA: {persona_type}; {personality}. Budget: {budget or 'flexible'}. "
        f"Priorities: {', '.join(priorities) or 'unstated'}. {background or ''}\n"
        f"SCENARIO: {description}\n"
        f"PAIN POINTS: {', '.join(pain_points) or 'none stated'}\n"
        f"OBJECTIONS TO RAISE, naturally and one at a time:\n{objections}\n"
        "Ask questions, push back on vague answers, and agree to buy or to a next step only if the "
        "salesperson has earned it. Never give feedback or break character."
    )


# ---------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class ScenarioDraft:
    name: str | None
    description: str | None
    difficulty: int
    rubric: dict[str, float]
    objections: Sequence[str] = ()
    pain_points: Sequence[str] = ()
    key_features: Sequence[str] = ()
    customer_type: str | None = None
    pass_score: float = DEFAULT_PASS_SCORE


@dataclass(frozen=True)
class ValidScenario:
    name: str
    description: str
    difficulty: int
    rubric: dict[Metric, float]
    objections: list[str] = field(default_factory=list)
    pain_points: list[str] = field(default_factory=list)
    key_features: list[str] = field(default_factory=list)
    customer_type: str | None = None
    pass_score: float = DEFAULT_PASS_SCORE


LIST_MAX = 20
ITEM_MAX = 300


def clean_items(v: Validator, values: Sequence[str], name: str, max_length: int = ITEM_MAX) -> list[str]:
    if len(values) > LIST_MAX:
        v.add("TOO_MANY", f"At most {LIST_MAX} {name}", name)
        return []
    cleaned = [v.run(clean_text, item, name, max_length=max_length) for item in values]
    return [c for c in cleaned if c]


def clean_objections(v: Validator, objections: Sequence[dict[str, str | None]]) -> list[dict[str, str | None]]:
    """Seed 001: each objection with the model response and a training tip."""
    if len(objections) > LIST_MAX:
        v.add("TOO_MANY", f"At most {LIST_MAX} objections", "objections")
        return []
    cleaned = []
    for item in objections:
        objection = v.run(clean_text, item.get("objection"), "objections", max_length=ITEM_MAX, required=True)
        response = v.run(clean_text, item.get("response"), "objections", max_length=2000, multiline=True)
        tip = v.run(clean_text, item.get("tip"), "objections", max_length=ITEM_MAX)
        if objection:
            cleaned.append({"objection": objection, "response": response, "tip": tip})
    return cleaned


def clean_pricing_tiers(v: Validator, tiers: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Named price points, e.g. {"name": "Standard", "price": "49.00"} (money as a string)."""
    if len(tiers) > LIST_MAX:
        v.add("TOO_MANY", f"At most {LIST_MAX} pricing tiers", "pricingTiers")
        return []
    cleaned = []
    for tier in tiers:
        name = v.run(clean_text, tier.get("name"), "pricingTiers", max_length=60, required=True)
        price = tier.get("price")
        if price is None or price < 0:
            v.add("INVALID_PRICE", "A pricing tier needs a price of 0 or more", "pricingTiers")
        elif name:
            cleaned.append({"name": name, "price": str(price)})
    return cleaned


def validate_scenario(draft: ScenarioDraft) -> ValidScenario:
    v = Validator()
    name = v.run(clean_text, draft.name, "name", max_length=120, required=True)
    description = v.run(clean_text, draft.description, "description", max_length=4000,
                        required=True, multiline=True)
    if not 1 <= draft.difficulty <= 5:
        v.add("INVALID_DIFFICULTY", "Difficulty is 1 (easy) to 5 (hard)", "difficulty")
    if not 0 <= draft.pass_score <= 100:
        v.add("INVALID_SCORE", "The pass score is between 0 and 100", "passScore")
    rubric = v.run(validate_rubric, draft.rubric)
    customer_type = v.run(clean_text, draft.customer_type, "customerType", max_length=60)
    valid = ValidScenario(  # (name and description are None only if v.check() below raises)
        name=cast(str, name), description=cast(str, description), difficulty=draft.difficulty, rubric=rubric or {},
        objections=clean_items(v, draft.objections, "objections"),
        pain_points=clean_items(v, draft.pain_points, "painPoints"),
        key_features=clean_items(v, draft.key_features, "keyFeatures"),
        customer_type=customer_type, pass_score=draft.pass_score,
    )
    v.check()
    return valid
