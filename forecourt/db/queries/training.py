"""Training analytics: each answer is one SQL statement, whatever the number of sessions.

A session's score is the manager's override when there is one, else the evaluator's.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

SCORE = "coalesce(s.override_score, s.overall_score)"

PROGRESS = text(f"""
WITH done AS (
    SELECT {SCORE} AS score, s.sale_completed, s.ended_at, s.metrics
    FROM training_sessions s
    WHERE s.trainee_id = :user_id AND s.status = 'completed'
)
SELECT
    (SELECT count(*) FROM done) AS total,
    (SELECT coalesce(avg(score), 0) FROM done) AS average,
    (SELECT coalesce(avg(CASE WHEN sale_completed THEN 1.0 ELSE 0.0 END), 0) FROM done) AS close_rate,
    (SELECT coalesce(max(score), 0) FROM done) AS best,
    (SELECT count(*) FROM done WHERE score >= 80) AS at_80,
    (SELECT coalesce(jsonb_agg(jsonb_build_object('metric', metric, 'score', score) ORDER BY metric), '[]')
     FROM (SELECT m->>'metric' AS metric, avg((m->>'score')::float) AS score
           FROM done, jsonb_array_elements(done.metrics) AS m GROUP BY 1) AS skill) AS skills,
    (SELECT coalesce(array_agg(score ORDER BY ended_at), '{{}}')
     FROM (SELECT score, ended_at FROM done ORDER BY ended_at DESC LIMIT 10) AS recent) AS trend
""")

# Breakdowns of one trainee's completed sessions by what was sold / who was buying.
_BREAKDOWN = """
SELECT {key} AS key, count(*) AS sessions, avg({score}) AS average,
       avg(CASE WHEN s.sale_completed THEN 1.0 ELSE 0.0 END) AS close_rate
FROM training_sessions s
JOIN scenarios sc ON sc.id = s.scenario_id
{join}
WHERE s.trainee_id = :user_id AND s.status = 'completed'
GROUP BY 1 ORDER BY 1
"""
BY_VEHICLE_TYPE = text(_BREAKDOWN.format(
    key="coalesce(c.body_type, 'other')", score=SCORE,
    join="JOIN vehicle_catalog c ON c.id = sc.catalog_entry_id"))
BY_BUYER_TYPE = text(_BREAKDOWN.format(
    key="p.type", score=SCORE, join="JOIN buyer_personas p ON p.id = sc.persona_id"))

LEADERBOARD = text(f"""
SELECT s.trainee_id AS user_id, count(*) AS sessions, avg({SCORE}) AS average,
       count(*) FILTER (WHERE s.sale_completed) AS closed,
       avg(CASE WHEN s.sale_completed THEN 1.0 ELSE 0.0 END) AS close_rate
FROM training_sessions s
WHERE s.organization_id = :organization_id AND s.status = 'completed'
GROUP BY s.trainee_id
ORDER BY average DESC, sessions DESC, s.trainee_id
LIMIT :limit
""")

_PREVIOUS = text(f"""
SELECT t.id, prev.score
FROM training_sessions t
JOIN LATERAL (
    SELECT {SCORE} AS score FROM training_sessions s
    WHERE s.trainee_id = t.trainee_id AND s.status = 'completed' AND s.id <> t.id
      AND s.ended_at < coalesce(t.ended_at, t.started_at + interval '100 years')
    ORDER BY s.ended_at DESC LIMIT 1
) AS prev ON true
WHERE t.id = ANY(:ids)
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


def previous_scores(ids: Sequence[uuid.UUID]):
    return _PREVIOUS.bindparams(ids=list(ids))
