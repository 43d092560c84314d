"""Sales training rules (seeds 000, 001, 002): rubrics, the transparent built-in evaluator,
pass marks and badges.

The evaluator scores every rubric metric from the transcript alone, and every score comes with
a short reason quoting the turn it rests on: reps do not trust opaque numbers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from forecourt.domain.errors import DomainError, Validator

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
    scores = tuple(scorers[metric]() for metric in rubric)
    overall = round(sum(s.score * rubric[s.metric] for s in scores), 1)

    trainee_words = sum(_words(t.text) for t in trainee)
    all_words = sum(_words(t.text) for t in turns)
    fillers = sum(len(FILLERS.findall(t.text)) for t in trainee)
    minutes = (turns[-1].at - turns[0].at).total_seconds() / 60 if len(turns) > 1 else 0
    wpm = round(trainee_words / minutes, 1) if minutes > 0 else None
    weakest = min(scores, key=lambda s: s.score) if scores else None
    feedback = " ".join(filter(None, [
        f"Overall {overall:g}.",
        f"Work on {weakest.metric.value}: {weakest.reason}." if weakest else None,
        f"{fillers} filler words." if fillers else None,
    ]))
    return Evaluation(scores, overall, round(trainee_words / all_words, 2) if all_words else 0.0,
                      fillers, wpm, feedback)


def badges(session_count: int, scores: Sequence[float]) -> list[str]:
    """Dedicated Learner: 10 sessions; Sales Expert: a 95; Consistent Performer: five ≥ 80 in a row."""
    earned = []
    if session_count >= 10:
        earned.append("Dedicated Learner")
    if any(s >= 95 for s in scores):
        earned.append("Sales Expert")
    streak = best = 0
    for score in scores:
        streak = streak + 1 if score >= 80 else 0
        best = max(best, streak)
    if best >= 5:
        earned.append("Consistent Performer")
    return earned


def check_turn(text: str, max_length: int = 4000) -> str:
    text = text.strip()
    if not text:
        raise DomainError("EMPTY_TURN", "A transcript turn needs text", ("text",))
    if len(text) > max_length:
        raise DomainError("TURN_TOO_LONG", f"A transcript turn is at most {max_length} characters", ("text",))
    return text
