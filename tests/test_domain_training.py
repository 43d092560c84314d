"""The built-in evaluator pinned on hand-written transcripts: a strong and a weak salesperson
for the Ford dealership subject, plus rubric validation and badges."""

from datetime import UTC, datetime, timedelta

import pytest

from forecourt.domain import training as rules
from forecourt.domain.errors import DomainError
from forecourt.domain.training import (
    DEALERSHIP_RUBRIC,
    RETAIL_RUBRIC,
    Metric,
    Role,
    Subject,
    Turn,
)

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
EXPLORER = Subject("Ford Explorer", ["third-row seating", "Co-Pilot360", "towing capacity", "hybrid", "SYNC 4"])


def transcript(*lines: str, seconds_apart: int = 15) -> list[Turn]:
    turns = []
    for i, line in enumerate(lines):
        role, _, text = line.partition(": ")
        turns.append(Turn(Role.TRAINEE if role == "S" else Role.CUSTOMER, text, START + timedelta(seconds=i * seconds_apart)))
    return turns


STRONG = transcript(
    "S: Welcome in, thanks for coming by! What brings you to the dealership today?",
    "C: We need something bigger, we have three kids and a boat.",
    "S: How do you use the car on a typical week, and what matters most to you?",
    "C: School runs, weekend trips. Safety is important. Honestly the price is a concern.",
    "S: I understand. With three kids, the third-row seating gives you room for everyone, and "
    "Co-Pilot360 watches your blind spots on the school run.",
    "S: For the boat, the towing capacity is 5,600 pounds, so your weekends are covered.",
    "C: It still seems expensive compared to the other dealer.",
    "S: That's a fair point. Compared to them, our warranty and financing bring the monthly cost down.",
    "S: Would you like to take it for a test drive now?",
    "C: Sure, let's do it.",
)
WEAK = transcript(
    "S: um so this is the car, it's like basically really good",
    "C: It looks too expensive for me.",
    "S: yeah it's um a nice car you know",
    "C: I'll think about it.",
    "S: ok",
)


def scores(evaluation):
    return {s.metric: s for s in evaluation.scores}


def test_a_strong_salesperson_scores_high_with_reasons_that_quote_the_transcript():
    result = rules.evaluate(STRONG, EXPLORER, DEALERSHIP_RUBRIC)
    by_metric = scores(result)
    assert set(by_metric) == set(DEALERSHIP_RUBRIC)
    assert by_metric[Metric.NEEDS_ASSESSMENT].score == 90  # two open and one closed question, two needs
    assert by_metric[Metric.CLOSING].score == 100 and "test drive" in by_metric[Metric.CLOSING].reason
    assert by_metric[Metric.PRODUCT_KNOWLEDGE].score == 75  # 3 of 5 features, scaled
    assert '"I understand. With three kids' in by_metric[Metric.PRODUCT_KNOWLEDGE].reason
    assert by_metric[Metric.FEATURE_PRESENTATION].score == 100
    assert result.overall == pytest.approx(round(0.25 * 75 + 0.30 * 90 + 0.25 * 100 + 0.20 * 100, 1))
    assert result.passed() and result.filler_words == 0
    retail = scores(rules.evaluate(STRONG, EXPLORER, RETAIL_RUBRIC))
    assert retail[Metric.OBJECTION_HANDLING].score == 100 and retail[Metric.RAPPORT].score == 60


def test_a_weak_salesperson_scores_low_and_is_told_why():
    result = rules.evaluate(WEAK, EXPLORER, RETAIL_RUBRIC)
    by_metric = scores(result)
    assert by_metric[Metric.PRODUCT_KNOWLEDGE].score == 0
    assert by_metric[Metric.OBJECTION_HANDLING].score == 0  # two objections, neither answered
    assert by_metric[Metric.CLOSING].reason == "Never asked for the sale or a next step"
    assert result.filler_words == 4 and not result.passed()  # um, basically, um, you know
    assert result.talk_ratio > 0.5 and result.words_per_minute == pytest.approx(20.0)
    assert "filler words" in result.feedback


def test_rubrics_must_sum_to_one_and_name_known_metrics():
    assert rules.validate_rubric({"closing": 0.5, "rapport": 0.5}) == {Metric.CLOSING: 0.5, Metric.RAPPORT: 0.5}
    for bad, code in [({"closing": 0.5, "rapport": 0.4}, "WEIGHTS_MUST_SUM_TO_ONE"),
                      ({"charisma": 1.0}, "UNKNOWN_METRIC"), ({}, "EMPTY_RUBRIC"),
                      ({"closing": 1.5, "rapport": -0.5}, "INVALID_WEIGHT")]:
        with pytest.raises(DomainError) as err:
            rules.validate_rubric(bad)
        assert code in {e.code for e in err.value.errors}
    for preset in (DEALERSHIP_RUBRIC, RETAIL_RUBRIC):
        assert rules.validate_rubric({m.value: w for m, w in preset.items()})


def test_badges():
    """Seed 001: 10 sessions; one score of 95; five sessions at 80 or more (not necessarily in a row)."""
    assert rules.badges(3, best_score=96, sessions_at_80=1) == ["Sales Expert"]
    assert rules.badges(9, best_score=94.9, sessions_at_80=4) == []
    assert rules.badges(10, best_score=90, sessions_at_80=5) == ["Dedicated Learner", "Consistent Performer"]


def test_turns_are_bounded():
    with pytest.raises(DomainError):
        rules.check_turn("   ")
    with pytest.raises(DomainError) as err:
        rules.check_turn("x" * 1_000_000)
    assert err.value.code == "TURN_TOO_LONG"


def llm_answer(**overrides):
    metrics = {m.value: {"score": 80, "reason": "good", "quote": "What brings you to the dealership today?"}
               for m in DEALERSHIP_RUBRIC}
    metrics.update(overrides)
    return {"metrics": metrics, "saleClosed": True, "summary": "Good call."}


def test_llm_scores_are_checked_before_they_are_trusted():
    result = rules.from_llm(llm_answer(), STRONG, DEALERSHIP_RUBRIC)
    assert result.overall == 80 and result.sale_closed and "Good call." in result.feedback
    assert all("What brings you" in s.reason for s in result.scores)
    assert result.words_per_minute is not None and result.talk_ratio > 0.5
    schema = rules.llm_response_schema(DEALERSHIP_RUBRIC)
    assert schema["properties"]["metrics"]["required"] == [m.value for m in DEALERSHIP_RUBRIC]
    for bad in (
        {"closing": {"score": 101, "reason": "x", "quote": ""}},  # out of range
        {"closing": {"score": 90, "reason": "x", "quote": "Sign now and get a free boat"}},  # invented quote
        {"closing": "great"},  # not an object
    ):
        with pytest.raises(ValueError):
            rules.from_llm(llm_answer(**bad), STRONG, DEALERSHIP_RUBRIC)
    missing = llm_answer()
    del missing["metrics"]["closing"]
    with pytest.raises(ValueError):
        rules.from_llm(missing, STRONG, DEALERSHIP_RUBRIC)


def test_session_rules():
    with pytest.raises(DomainError) as err:
        rules.minutes_left(60, 60)
    assert err.value.code == "QUOTA_EXHAUSTED"
    assert rules.minutes_left(60, 59) == 1
    assert rules.minutes_used(START, START + timedelta(seconds=1)) == 1
    assert rules.minutes_used(START, START + timedelta(seconds=61)) == 2
    with pytest.raises(DomainError):
        rules.check_time_left(START, 2, START + timedelta(minutes=2, seconds=1))
    rules.check_time_left(START, 2, START + timedelta(minutes=2))
    assert rules.should_rescore(None, START, 5)
    assert not rules.should_rescore(START, START + timedelta(seconds=4.9), 5)
    assert rules.should_rescore(START, START + timedelta(seconds=5), 5)
    for status, code in ((rules.TrainingStatus.COMPLETED, "SESSION_COMPLETED"),
                         (rules.TrainingStatus.CANCELLED, "SESSION_CANCELLED")):
        with pytest.raises(DomainError) as err:
            rules.check_in_progress(status)
        assert err.value.code == code
    with pytest.raises(DomainError) as err:
        rules.check_voice_allowed(rules.PlanTier.BASIC)
    assert err.value.code == "PLAN_REQUIRED"
    rules.check_voice_allowed(rules.PlanTier.PRO)
    assert rules.parse_role(" Customer ") is Role.CUSTOMER
    with pytest.raises(DomainError):
        rules.parse_role("coach")


def test_the_seeded_presets_are_valid_scenarios():
    from forecourt.services.seed_training import DEALERSHIP, RETAIL

    for name, _, persona, difficulty, description, features, objections, pains in DEALERSHIP:
        rules.validate_scenario(rules.ScenarioDraft(name, description, difficulty,
                                                    {m.value: w for m, w in DEALERSHIP_RUBRIC.items()},
                                                    objections, pains, features, persona))
    for name, _, persona, difficulty, description, pains in RETAIL:
        rules.validate_scenario(rules.ScenarioDraft(name, description, difficulty,
                                                    {m.value: w for m, w in RETAIL_RUBRIC.items()},
                                                    (), pains, (), persona))


def test_buyer_instructions_keep_the_model_in_character():
    text = rules.buyer_instructions(subject=EXPLORER, description="A family SUV.", persona_type="Family Buyer",
                                    personality="cautious", budget=None, priorities=["safety"],
                                    background=None, pain_points=["boat"])
    assert "Ford Explorer" in text and "Family Buyer" in text and "Never give feedback" in text


def test_running_sessions_hold_a_minute_each():
    assert rules.minutes_left(10, 4, running=5) == 1
    with pytest.raises(DomainError):
        rules.minutes_left(10, 4, running=6)
