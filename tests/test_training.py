"""Sales training through the real API: scenarios, sessions with live scores, completion,
immutability, minute quotas, score overrides, tenant isolation, analytics, and the LLM evaluator
against a local fake OpenAI."""

import asyncio
import json

import asyncpg
import pytest

from forecourt.schema.relay import to_global_id
from tests.conftest import make_settings
from tests.fakes.openai_server import API_KEY, FakeOpenAI
from tests.harness import GraphQLClient, LiveServer
from tests.test_catalog import add_catalog
from tests.test_subscriptions import receive

SESSION_FIELDS = """id status sequence overallScore evaluatedScore passed passScore saleCompleted feedback
  startedAt endedAt scoreChange metrics { metric score reason } transcript { role text }
  override { score reason reviewer { id } } analysis { evaluator talkRatio fillerWords wordsPerMinute durationSeconds }
  trainee { id } scenario { id name }"""
PAYLOAD = f"session {{ {SESSION_FIELDS} }} userErrors {{ field code message }}"
START = f"mutation($id: ID!) {{ startTrainingSession(input: {{scenarioId: $id}}) {{ {PAYLOAD} }} }}"
APPEND = f"""mutation($id: ID!, $role: String!, $text: String!) {{
  appendTranscript(input: {{sessionId: $id, role: $role, text: $text}}) {{ {PAYLOAD} }} }}"""
COMPLETE = f"""mutation($id: ID!, $sale: Boolean) {{
  completeTrainingSession(input: {{sessionId: $id, saleCompleted: $sale}}) {{ {PAYLOAD} }} }}"""
CANCEL = f"mutation($id: ID!) {{ cancelTrainingSession(input: {{sessionId: $id}}) {{ {PAYLOAD} }} }}"
OVERRIDE = f"""mutation($id: ID!, $score: Float!, $reason: String!) {{
  overrideTrainingScore(input: {{sessionId: $id, score: $score, reason: $reason}}) {{ {PAYLOAD} }} }}"""
SESSION = f"query($id: ID!) {{ trainingSession(id: $id) {{ {SESSION_FIELDS} }} }}"
PERSONA = """mutation($input: CreateBuyerPersonaInput!) { createBuyerPersona(input: $input) {
  persona { id type priorities } userErrors { field code message } } }"""
PRODUCT = """mutation($input: CreateTrainingProductInput!) { createTrainingProduct(input: $input) {
  product { id name features pricingTiers { name price } objections { objection response tip } }
  userErrors { field code message } } }"""
SCENARIO = """mutation($input: CreateScenarioInput!) { createScenario(input: $input) {
  scenario { id name isPreset difficulty rubric { metric weight } persona { type } vehicle { make model }
             productName keyFeatures }
  userErrors { field code message } } }"""
PROGRESS = """query($user: ID) { trainingProgress(userId: $user) { totalSessions averageScore closeRate
  skills { metric score } badges trend byVehicleType { key sessions averageScore closeRate }
  byBuyerType { key sessions averageScore } } }"""
LEADERBOARD = """query { leaderboard(limit: 5) { user { id } sessionCount averageScore salesClosed closeRate } }"""
EVENTS = """subscription($id: ID!, $after: Int) { trainingSessionEvents(sessionId: $id, afterSequence: $after) {
  type sequence turn { role text } session { status overallScore metrics { metric score } } } }"""

STRONG = [
    ("trainee", "Welcome in, thanks for coming by! What brings you to the dealership today?"),
    ("customer", "We need something bigger, we have three kids and a boat."),
    ("trainee", "How do you use the car on a typical week, and what matters most to you?"),
    ("customer", "School runs, weekend trips. Safety is important. Honestly the price is a concern."),
    ("trainee", "I understand. With three kids, the third-row seating gives you room for everyone, "
                "and Co-Pilot360 watches your blind spots on the school run."),
    ("trainee", "For the boat, the towing capacity is 5,600 pounds, so your weekends are covered."),
    ("customer", "It still seems expensive compared to the other dealer."),
    ("trainee", "That's a fair point. Compared to them, our warranty and financing bring the monthly cost down."),
    ("trainee", "Would you like to take it for a test drive now?"),
    ("customer", "Sure, let's do it."),
]
WEAK = [
    ("trainee", "um so this is the car, it's like basically really good"),
    ("customer", "It looks too expensive for me."),
    ("trainee", "yeah it's um a nice car you know"),
]


async def explorer_scenario(gql, db, admin, **over):
    """A dealership scenario (seed 000) on a catalog Ford Explorer, created through the API."""
    entry = (await db.fetchval("SELECT id FROM vehicle_catalog WHERE model = 'Explorer'")
             or await add_catalog(db, "Ford", "Explorer", 2022, "SUV"))
    persona = await gql(PERSONA, {"input": {"type": "Family Buyer", "personality": "practical, cautious",
                                            "budget": "$45,000", "priorities": ["safety", "space"]}},
                        token=admin.token)
    assert persona["data"]["createBuyerPersona"]["userErrors"] == [], persona
    body = await gql(SCENARIO, {"input": {
        "name": over.pop("name", "Family SUV walk-in"), "description": "A family of five shopping for an SUV.",
        "difficulty": 2, "personaId": persona["data"]["createBuyerPersona"]["persona"]["id"],
        "vehicleId": to_global_id("CatalogEntry", entry), "preset": "DEALERSHIP",
        "keyFeatures": ["third-row seating", "Co-Pilot360", "towing capacity", "hybrid", "SYNC 4"],
        "objections": ["It's too expensive"], **over}}, token=admin.token)
    payload = body["data"]["createScenario"]
    assert payload["userErrors"] == [], payload
    return payload["scenario"]


async def run_session(gql, trainee, scenario_id, lines, clock=None, sale=None):
    started = await gql(START, {"id": scenario_id}, token=trainee.token)
    payload = started["data"]["startTrainingSession"]
    assert payload["userErrors"] == [], payload
    session_id = payload["session"]["id"]
    for role, text in lines:
        if clock is not None:
            clock.advance(seconds=10)
        body = await gql(APPEND, {"id": session_id, "role": role, "text": text}, token=trainee.token)
        assert body["data"]["appendTranscript"]["userErrors"] == [], body
    completed = await gql(COMPLETE, {"id": session_id, "sale": sale}, token=trainee.token)
    assert completed["data"]["completeTrainingSession"]["userErrors"] == [], completed
    return completed["data"]["completeTrainingSession"]["session"]


async def test_content_management_presets_validation_and_tenancy(gql, make_organization, make_user, db):
    team, rival = await make_organization(members=2), await make_organization("Abuja Autos", members=2)
    scenario = await explorer_scenario(gql, db, team.admin)
    assert scenario["rubric"] == [{"metric": "productKnowledge", "weight": 0.25},
                                  {"metric": "needsAssessment", "weight": 0.3},
                                  {"metric": "featurePresentation", "weight": 0.25},
                                  {"metric": "closing", "weight": 0.2}]
    assert scenario["vehicle"] == {"make": "Ford", "model": "Explorer"} and not scenario["isPreset"]

    product = await gql(PRODUCT, {"input": {
        "name": "Saddle Bag", "features": ["full-grain leather", "lifetime warranty"],
        "pricingTiers": [{"name": "Standard", "price": "189.00"}],
        "objections": [{"objection": "Too pricey", "response": "It lasts a lifetime", "tip": "Anchor on value"}]}},
        token=team.admin.token)
    assert product["data"]["createTrainingProduct"]["product"]["pricingTiers"] == [{"name": "Standard", "price": "189.00"}]

    # Weights that do not sum to 1: a clear error and no scenario written.
    persona_id = (await gql(PERSONA, {"input": {"type": "Bargain Hunter", "personality": "blunt"}},
                            token=team.admin.token))["data"]["createBuyerPersona"]["persona"]["id"]
    count = await db.fetchval("SELECT count(*) FROM scenarios")
    bad = await gql(SCENARIO, {"input": {
        "name": "Bad weights", "description": "x", "difficulty": 3, "personaId": persona_id,
        "productId": product["data"]["createTrainingProduct"]["product"]["id"],
        "rubric": [{"metric": "CLOSING", "weight": 0.5}, {"metric": "RAPPORT", "weight": 0.4}]}},
        token=team.admin.token)
    assert bad["data"]["createScenario"]["userErrors"][0]["code"] == "WEIGHTS_MUST_SUM_TO_ONE"
    two_subjects = await gql(SCENARIO, {"input": {
        "name": "Two", "description": "x", "difficulty": 9, "personaId": persona_id, "preset": "RETAIL"}},
        token=team.admin.token)
    assert {e["code"] for e in two_subjects["data"]["createScenario"]["userErrors"]} == {"INVALID_DIFFICULTY", "ONE_SUBJECT"}
    assert await db.fetchval("SELECT count(*) FROM scenarios") == count

    # Members cannot manage content; only platform admins publish shared presets.
    member_try = await gql(PERSONA, {"input": {"type": "X", "personality": "y"}}, token=team.members[0].token)
    assert member_try["data"]["createBuyerPersona"]["userErrors"][0]["code"] == "NOT_ORGANIZATION_ADMIN"
    preset_try = await gql(PERSONA, {"input": {"type": "X", "personality": "y", "shared": True}}, token=team.admin.token)
    assert preset_try["data"]["createBuyerPersona"]["userErrors"][0]["code"] == "FORBIDDEN_PRESET"

    # Another company's scenario is invisible and cannot be started; its persona cannot be used.
    listed = await gql("query { scenarios { totalCount edges { node { id } } } }", token=rival.members[0].token)
    assert scenario["id"] not in [e["node"]["id"] for e in listed["data"]["scenarios"]["edges"]]
    refused = await gql(START, {"id": scenario["id"]}, token=rival.members[0].token)
    assert refused["data"]["startTrainingSession"]["userErrors"][0]["code"] == "NOT_FOUND"
    borrowed = await gql(SCENARIO, {"input": {
        "name": "Borrowed", "description": "x", "difficulty": 1, "personaId": persona_id,
        "vehicleId": to_global_id("CatalogEntry", await add_catalog(db, "Kia", "Rio", 2020, "Sedan")),
        "preset": "RETAIL"}}, token=rival.admin.token)
    assert borrowed["data"]["createScenario"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert (await gql(f'query {{ node(id: "{scenario["id"]}") {{ id }} }}', token=rival.admin.token))["data"]["node"] is None

    # A shared preset by a platform admin is visible to every organization.
    admin = await make_user("admin")
    shared_persona = (await gql(PERSONA, {"input": {"type": "First-time Buyer", "personality": "nervous", "shared": True}},
                                token=admin.token))["data"]["createBuyerPersona"]["persona"]["id"]
    shared = await gql(SCENARIO, {"input": {
        "name": "Shared walk-in", "description": "x", "difficulty": 1, "personaId": shared_persona,
        "vehicleId": to_global_id("CatalogEntry", await add_catalog(db, "Kia", "Rio", 2021, "Sedan")),
        "preset": "RETAIL", "shared": True}}, token=admin.token)
    assert shared["data"]["createScenario"]["scenario"]["isPreset"] is True
    listed = await gql("query { scenarios { edges { node { id } } } }", token=rival.members[0].token)
    assert shared["data"]["createScenario"]["scenario"]["id"] in [e["node"]["id"] for e in listed["data"]["scenarios"]["edges"]]


async def test_a_session_is_scored_with_reasons_charged_and_then_immutable(gql, make_organization, db, clock):
    team = await make_organization(members=2)
    scenario = await explorer_scenario(gql, db, team.admin)
    trainee = team.members[0]
    session = await run_session(gql, trainee, scenario["id"], STRONG, clock)

    assert session["status"] == "COMPLETED" and session["endedAt"]
    assert [m["metric"] for m in session["metrics"]] == ["productKnowledge", "needsAssessment",
                                                         "featurePresentation", "closing"]
    assert all(m["reason"] for m in session["metrics"])
    closing = next(m for m in session["metrics"] if m["metric"] == "closing")
    assert closing["score"] == 100 and "test drive" in closing["reason"]
    assert session["overallScore"] >= 80 and session["passed"] is True
    assert session["saleCompleted"] is True  # inferred: the customer said yes
    assert session["analysis"]["evaluator"] == "builtin" and session["analysis"]["durationSeconds"] == 100
    assert len(session["transcript"]) == len(STRONG) and session["scoreChange"] is None

    # Minutes: 100 seconds is 2 started minutes, charged once to the organization.
    assert await db.fetchval("SELECT minutes_used FROM usage_records") == 2
    assert await db.fetchval("SELECT used_minutes FROM minute_quotas WHERE organization_id = $1", team.raw_id) == 2

    # Completed sessions are immutable: through the API and in the database.
    again = await gql(APPEND, {"id": session["id"], "role": "trainee", "text": "one more thing"}, token=trainee.token)
    assert again["data"]["appendTranscript"]["userErrors"][0]["code"] == "SESSION_COMPLETED"
    twice = await gql(COMPLETE, {"id": session["id"]}, token=trainee.token)
    assert twice["data"]["completeTrainingSession"]["userErrors"][0]["code"] == "SESSION_COMPLETED"
    raw_id = await db.fetchval("SELECT id FROM training_sessions")
    with pytest.raises(asyncpg.PostgresError, match="finished"):
        await db.execute("UPDATE training_sessions SET overall_score = 100 WHERE id = $1", raw_id)
    with pytest.raises(asyncpg.PostgresError, match="not in progress"):
        await db.execute("INSERT INTO training_turns VALUES ($1, 99, 'trainee', 'sneaky', now())", raw_id)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("UPDATE training_turns SET text = 'rewritten' WHERE session_id = $1", raw_id)
    assert await db.fetchval("SELECT count(*) FROM usage_records") == 1

    # The next session shows the change against this one.
    weak = await run_session(gql, trainee, scenario["id"], WEAK, clock)
    assert weak["passed"] is False and weak["saleCompleted"] is False
    assert weak["scoreChange"] == pytest.approx(weak["overallScore"] - session["overallScore"], abs=0.11)


async def test_bad_turns_and_foreign_sessions_write_nothing(gql, make_organization, db):
    team, rival = await make_organization(members=2), await make_organization("Rival", members=2)
    scenario = await explorer_scenario(gql, db, team.admin)
    trainee = team.members[0]
    started = (await gql(START, {"id": scenario["id"]}, token=trainee.token))["data"]["startTrainingSession"]["session"]
    for role, text, code in [("trainee", "x" * 1_000_000, "TURN_TOO_LONG"), ("trainee", "   ", "EMPTY_TURN"),
                             ("narrator", "hello", "INVALID_ROLE")]:
        body = await gql(APPEND, {"id": started["id"], "role": role, "text": text}, token=trainee.token)
        assert body["data"]["appendTranscript"]["userErrors"][0]["code"] == code
    for intruder in (team.members[1], rival.admin):  # a colleague or another company: not found
        body = await gql(APPEND, {"id": started["id"], "role": "trainee", "text": "hi"}, token=intruder.token)
        assert body["data"]["appendTranscript"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert await db.fetchval("SELECT count(*) FROM training_turns") == 0
    assert await db.fetchval("SELECT count(*) FROM training_events") == 0
    empty = await gql(COMPLETE, {"id": started["id"]}, token=trainee.token)
    assert empty["data"]["completeTrainingSession"]["userErrors"][0]["code"] == "EMPTY_TRANSCRIPT"
    assert await db.fetchval("SELECT status FROM training_sessions") == "in_progress"

    # Cancelling: the trainee's manager may; the minutes used still count; it stays cancelled.
    cancelled = await gql(CANCEL, {"id": started["id"]}, token=team.admin.token)
    assert cancelled["data"]["cancelTrainingSession"]["session"]["status"] == "CANCELLED"
    assert await db.fetchval("SELECT minutes_used FROM usage_records") == 1
    late = await gql(APPEND, {"id": started["id"], "role": "trainee", "text": "hello?"}, token=trainee.token)
    assert late["data"]["appendTranscript"]["userErrors"][0]["code"] == "SESSION_CANCELLED"


async def test_minute_quota_refuses_starts_and_caps_a_running_session(gql, make_organization, make_user, db, clock):
    team = await make_organization(members=2, minutes=3)
    scenario = await explorer_scenario(gql, db, team.admin)
    trainee = team.members[0]
    started = (await gql(START, {"id": scenario["id"]}, token=trainee.token))["data"]["startTrainingSession"]["session"]
    await gql(APPEND, {"id": started["id"], "role": "trainee", "text": "Welcome! What brings you in?"}, token=trainee.token)
    clock.advance(minutes=3, seconds=1)  # past the 3 minutes the organization had left
    over = await gql(APPEND, {"id": started["id"], "role": "trainee", "text": "Still there?"}, token=trainee.token)
    assert over["data"]["appendTranscript"]["userErrors"][0]["code"] == "QUOTA_EXHAUSTED"
    assert await db.fetchval("SELECT count(*) FROM training_turns") == 1
    done = await gql(COMPLETE, {"id": started["id"]}, token=trainee.token)  # the score is still given
    assert done["data"]["completeTrainingSession"]["session"]["status"] == "COMPLETED"
    assert await db.fetchval("SELECT used_minutes FROM minute_quotas WHERE organization_id = $1", team.raw_id) == 4

    refused = await gql(START, {"id": scenario["id"]}, token=team.members[1].token)
    assert refused["data"]["startTrainingSession"]["userErrors"][0]["code"] == "QUOTA_EXHAUSTED"
    assert await db.fetchval("SELECT count(*) FROM training_sessions") == 1

    loner = await gql(START, {"id": scenario["id"]}, token=(await make_user("user")).token)
    assert loner["data"]["startTrainingSession"]["userErrors"][0]["code"] == "NO_ORGANIZATION"


async def test_manager_override_keeps_the_original_and_is_audited(gql, make_organization, db, clock):
    team = await make_organization(members=2)
    scenario = await explorer_scenario(gql, db, team.admin)
    trainee = team.members[0]
    session = await run_session(gql, trainee, scenario["id"], WEAK, clock)

    own = await gql(OVERRIDE, {"id": session["id"], "score": 99, "reason": "I deserve it"}, token=trainee.token)
    assert own["data"]["overrideTrainingScore"]["userErrors"][0]["code"] == "NOT_ORGANIZATION_ADMIN"
    bad = await gql(OVERRIDE, {"id": session["id"], "score": 120, "reason": ""}, token=team.admin.token)
    assert {e["code"] for e in bad["data"]["overrideTrainingScore"]["userErrors"]} == {"INVALID_SCORE", "REQUIRED"}
    body = await gql(OVERRIDE, {"id": session["id"], "score": 55, "reason": "Handled the price objection on the lot"},
                     token=team.admin.token)
    reviewed = body["data"]["overrideTrainingScore"]["session"]
    assert reviewed["overallScore"] == 55 and reviewed["evaluatedScore"] == session["overallScore"]
    assert reviewed["override"]["reviewer"]["id"] == team.admin.id
    audit = await db.fetchrow("SELECT action, reason, new_value FROM admin_audit_log WHERE target_id = "
                              "(SELECT id FROM training_sessions)")
    assert audit["action"] == "training.override_score" and json.loads(audit["new_value"]) == {"score": 55.0}
    progress = await gql(PROGRESS, {"user": trainee.id}, token=team.admin.token)
    assert progress["data"]["trainingProgress"]["averageScore"] == 55  # analytics use the review


async def test_progress_leaderboard_and_isolation_in_one_statement_each(gql, make_organization, db, clock, server):
    team, rival = await make_organization(members=3), await make_organization("Rival", members=2)
    scenario = await explorer_scenario(gql, db, team.admin)
    star, steady, novice = team.members
    for _ in range(5):
        await run_session(gql, star, scenario["id"], STRONG, clock)
    await run_session(gql, steady, scenario["id"], STRONG, clock)
    await run_session(gql, steady, scenario["id"], WEAK, clock)
    await run_session(gql, novice, scenario["id"], WEAK, clock)
    await run_session(gql, rival.members[0], (await explorer_scenario(gql, db, rival.admin))["id"], STRONG, clock)

    server.statements.reset()
    body = await gql(PROGRESS, {"user": None}, token=star.token)
    progress = body["data"]["trainingProgress"]
    assert progress["totalSessions"] == 5 and progress["closeRate"] == 1.0
    assert "Consistent Performer" in progress["badges"] and len(progress["trend"]) == 5
    assert {s["metric"] for s in progress["skills"]} == {"productKnowledge", "needsAssessment",
                                                         "featurePresentation", "closing"}
    assert progress["byVehicleType"] == [{"key": "SUV", "sessions": 5, "averageScore": progress["averageScore"],
                                          "closeRate": 1.0}]
    assert progress["byBuyerType"][0]["key"] == "Family Buyer"
    progress_statements = [s for s in server.statements.statements if "training_sessions" in s]
    assert len(progress_statements) == 3  # progress, by vehicle type, by buyer type

    server.statements.reset()
    board = (await gql(LEADERBOARD, token=novice.token))["data"]["leaderboard"]
    assert [e["user"]["id"] for e in board] == [star.id, steady.id, novice.id]
    assert board[1]["sessionCount"] == 2 and board[1]["salesClosed"] == 1 and board[1]["closeRate"] == 0.5
    assert len([s for s in server.statements.statements if "training_sessions" in s]) == 1

    # Tenancy: the rival's admin sees none of it; our manager sees the team's sessions only.
    assert (await gql(PROGRESS, {"user": star.id}, token=rival.admin.token))["errors"]
    assert (await gql(SESSION, {"id": to_global_id("TrainingSession", await db.fetchval(
        "SELECT id FROM training_sessions WHERE trainee_id = $1 LIMIT 1", star.raw_id))}, token=rival.admin.token)
            )["data"]["trainingSession"] is None
    listed = await gql("query { trainingSessions(first: 50) { totalCount } }", token=team.admin.token)
    assert listed["data"]["trainingSessions"]["totalCount"] == 8
    own = await gql("query { trainingSessions(first: 50) { totalCount } }", token=steady.token)
    assert own["data"]["trainingSessions"]["totalCount"] == 2


async def open_events(url, token, session_id, after=None):
    import websockets

    ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
    assert (await receive(ws))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": EVENTS, "variables": {"id": session_id, "after": after}}}))
    return ws


async def next_event(ws):
    message = await asyncio.wait_for(receive(ws), 10)
    assert message["type"] == "next", message
    return message["payload"]["data"]["trainingSessionEvents"]


async def test_live_events_throttle_scores_replay_and_complete(gql, make_organization, db, clock, server):
    team = await make_organization(members=2)
    scenario = await explorer_scenario(gql, db, team.admin)
    trainee = team.members[0]
    session_id = (await gql(START, {"id": scenario["id"]}, token=trainee.token))["data"]["startTrainingSession"]["session"]["id"]
    manager_ws = await open_events(server.ws_url, team.admin.token, session_id)
    try:
        await asyncio.sleep(0.2)
        for role, text in STRONG[:3]:  # same instant: one re-score only (at most every 5 s)
            await gql(APPEND, {"id": session_id, "role": role, "text": text}, token=trainee.token)
        clock.advance(seconds=5)
        await gql(APPEND, {"id": session_id, "role": STRONG[3][0], "text": STRONG[3][1]}, token=trainee.token)
        received = [await next_event(manager_ws) for _ in range(6)]
        assert [e["type"] for e in received] == ["TRANSCRIPT", "SCORE_UPDATED", "TRANSCRIPT", "TRANSCRIPT",
                                                 "TRANSCRIPT", "SCORE_UPDATED"]
        assert [e["sequence"] for e in received] == [1, 2, 3, 4, 5, 6]
        assert received[0]["turn"]["text"].startswith("Welcome in")
        assert received[5]["session"]["overallScore"] > received[1]["session"]["overallScore"]
        await gql(COMPLETE, {"id": session_id}, token=trainee.token)
        completed = await next_event(manager_ws)
        assert completed["type"] == "COMPLETED" and completed["session"]["status"] == "COMPLETED"
        assert (await asyncio.wait_for(receive(manager_ws), 10))["type"] == "complete"
    finally:
        await manager_ws.close()

    # A late subscriber replays from the log what it missed, then the stream ends.
    late = await open_events(server.ws_url, trainee.token, session_id, after=4)
    try:
        replayed = [await next_event(late) for _ in range(3)]
        assert [e["sequence"] for e in replayed] == [5, 6, 7]
        assert replayed[0]["session"]["status"] == "IN_PROGRESS" and replayed[2]["type"] == "COMPLETED"
    finally:
        await late.close()
    # Another company cannot listen in.
    rival = await make_organization("Rival", members=2)
    spy = await open_events(server.ws_url, rival.admin.token, session_id)
    try:
        message = await asyncio.wait_for(receive(spy), 10)
        assert message["type"] == "error" or message["payload"].get("errors")
    finally:
        await spy.close()


async def test_llm_evaluator_scores_when_configured_and_falls_back_when_it_invents(
        tmp_path, database_url, clock, fake_openai, make_organization, db):
    settings = make_settings(tmp_path, OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake_openai.url)
    with LiveServer(settings, database_url, clock) as live:
        client = GraphQLClient(live.url)
        try:
            team = await make_organization(members=2)
            scenario = await explorer_scenario(client, db, team.admin)
            trainee = team.members[0]
            scored = await run_session(client, trainee, scenario["id"], STRONG, clock)
            assert scored["analysis"]["evaluator"] == "llm"
            assert {m["score"] for m in scored["metrics"]} == {77} and scored["overallScore"] == 77
            assert all("Welcome in" in m["reason"] for m in scored["metrics"])
            assert "Solid discovery." in scored["feedback"]
            request = next(r for r in fake_openai.requests if "messages" in r)
            assert request["response_format"]["json_schema"]["strict"] is True
            assert "Family Buyer" in request["messages"][0]["content"]

            def invents(body):
                answer = FakeOpenAI.default_answer(body)
                answer["metrics"]["closing"]["quote"] = "Sign here and I'll throw in a free boat"
                return answer

            fake_openai.chat_answer = invents
            fallback = await run_session(client, trainee, scenario["id"], STRONG, clock)
            assert fallback["analysis"]["evaluator"] == "builtin" and fallback["overallScore"] >= 80
        finally:
            await client.close()


VOICE = "mutation($id: ID!) { createVoiceSession(sessionId: $id) { ephemeralKey expiresAt model userErrors { field code message } } }"


async def test_voice_is_pro_only_and_a_downgrade_stops_it_mid_session(
        tmp_path, database_url, clock, fake_openai, make_organization, db, caplog):
    settings = make_settings(tmp_path, OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake_openai.url)
    with LiveServer(settings, database_url, clock) as live:
        client = GraphQLClient(live.url)
        try:
            free, pro = await make_organization("Free Motors", members=2), await make_organization("Pro Motors", members=2, plan="pro")
            scenario = await explorer_scenario(client, db, pro.admin)
            on_free = await explorer_scenario(client, db, free.admin)
            free_session = (await client(START, {"id": on_free["id"]}, token=free.members[0].token)
                            )["data"]["startTrainingSession"]["session"]["id"]
            refused = await client(VOICE, {"id": free_session}, token=free.members[0].token)
            assert refused["data"]["createVoiceSession"]["userErrors"][0]["code"] == "PLAN_REQUIRED"

            trainee = pro.members[0]
            session_id = (await client(START, {"id": scenario["id"]}, token=trainee.token)
                          )["data"]["startTrainingSession"]["session"]["id"]
            other = await client(VOICE, {"id": session_id}, token=pro.members[1].token)
            assert other["data"]["createVoiceSession"]["userErrors"][0]["code"] == "NOT_FOUND"
            voice = (await client(VOICE, {"id": session_id}, token=trainee.token))["data"]["createVoiceSession"]
            assert voice["userErrors"] == [] and voice["ephemeralKey"].startswith("ek_fake_")
            assert voice["model"] == "gpt-realtime" and voice["expiresAt"]
            request = fake_openai.requests[-1]
            assert request["session"]["audio"]["output"]["voice"] == "coral"
            assert "Family Buyer" in request["session"]["instructions"] and "too expensive" in request["session"]["instructions"]
            assert API_KEY not in caplog.text and voice["ephemeralKey"] not in caplog.text

            ok = await client(APPEND, {"id": session_id, "role": "trainee", "text": "Welcome! What brings you in?"},
                              token=trainee.token)
            assert ok["data"]["appendTranscript"]["userErrors"] == []
            await db.execute("UPDATE organizations SET plan = 'basic' WHERE id = $1", pro.raw_id)  # downgraded
            cut = await client(APPEND, {"id": session_id, "role": "customer", "text": "A bigger car."}, token=trainee.token)
            assert cut["data"]["appendTranscript"]["userErrors"][0]["code"] == "PLAN_REQUIRED"
            assert await db.fetchval("SELECT count(*) FROM training_turns") == 1  # nothing partial
            again = await client(VOICE, {"id": session_id}, token=trainee.token)
            assert again["data"]["createVoiceSession"]["userErrors"][0]["code"] == "PLAN_REQUIRED"
            done = await client(COMPLETE, {"id": session_id}, token=trainee.token)  # still scored
            assert done["data"]["completeTrainingSession"]["session"]["status"] == "COMPLETED"
        finally:
            await client.close()


async def test_voice_without_openai_says_so(gql, make_organization, db):
    team = await make_organization(members=2, plan="pro")
    scenario = await explorer_scenario(gql, db, team.admin)
    session_id = (await gql(START, {"id": scenario["id"]}, token=team.members[0].token)
                  )["data"]["startTrainingSession"]["session"]["id"]
    body = await gql(VOICE, {"id": session_id}, token=team.members[0].token)
    assert body["data"]["createVoiceSession"]["userErrors"][0]["code"] == "PROVIDER_NOT_CONFIGURED"
    assert await db.fetchval("SELECT mode FROM training_sessions") == "text"


async def test_concurrent_starts_never_overdraw_the_quota(gql, make_organization, make_user, db):
    """Three minutes left and twelve trainees pressing start at once: three sessions start."""
    team = await make_organization(members=12, minutes=3)
    scenario = await explorer_scenario(gql, db, team.admin)
    results = await asyncio.gather(*(gql(START, {"id": scenario["id"]}, token=m.token) for m in team.members))
    codes = [r["data"]["startTrainingSession"]["userErrors"][0]["code"]
             if r["data"]["startTrainingSession"]["userErrors"] else "OK" for r in results]
    assert codes.count("OK") == 3 and codes.count("QUOTA_EXHAUSTED") == 9
    assert await db.fetchval("SELECT count(*) FROM training_sessions") == 3


LIMIT = """mutation($user: ID!, $minutes: Int) { setMemberMinuteLimit(input: {userId: $user, minutes: $minutes}) {
  limit { limitMinutes usedMinutes minutesRemaining user { id } } userErrors { field code message } } }"""


async def test_admins_cap_a_members_minutes(gql, make_organization, db, clock):
    team, rival = await make_organization(members=2), await make_organization("Rival", members=2)
    scenario = await explorer_scenario(gql, db, team.admin)
    capped, free = team.members

    for who, target, code in [(capped, free, "NOT_FOUND"), (rival.admin, capped, "NOT_FOUND")]:
        body = await gql(LIMIT, {"user": target.id, "minutes": 1}, token=who.token)  # members, other companies
        assert body["data"]["setMemberMinuteLimit"]["userErrors"][0]["code"] == code
    bad = await gql(LIMIT, {"user": capped.id, "minutes": -1}, token=team.admin.token)
    assert bad["data"]["setMemberMinuteLimit"]["userErrors"][0]["code"] == "INVALID_MINUTES"
    assert await db.fetchval("SELECT count(*) FROM member_minute_limits") == 0

    body = await gql(LIMIT, {"user": capped.id, "minutes": 2}, token=team.admin.token)
    assert body["data"]["setMemberMinuteLimit"]["limit"] == {"limitMinutes": 2, "usedMinutes": 0, "minutesRemaining": 2,
                                                             "user": {"id": capped.id}}
    assert await db.fetchval("SELECT action FROM admin_audit_log WHERE target_id = $1", capped.raw_id) == \
        "training.set_member_limit"

    started = (await gql(START, {"id": scenario["id"]}, token=capped.token))["data"]["startTrainingSession"]["session"]
    assert await db.fetchval("SELECT minutes_allowed FROM training_sessions WHERE id = "
                             "(SELECT id FROM training_sessions WHERE trainee_id = $1)", capped.raw_id) == 2
    second = await gql(START, {"id": scenario["id"]}, token=capped.token)  # the running one holds a minute
    assert second["data"]["startTrainingSession"]["userErrors"] == []
    third = await gql(START, {"id": scenario["id"]}, token=capped.token)
    assert third["data"]["startTrainingSession"]["userErrors"][0]["code"] == "MEMBER_LIMIT_REACHED"
    await gql(CANCEL, {"id": started["id"]}, token=capped.token)
    assert await db.fetchval("SELECT used_minutes FROM member_minute_limits WHERE user_id = $1", capped.raw_id) == 1
    others = await gql(START, {"id": scenario["id"]}, token=free.token)  # no limit: the organization's minutes
    assert others["data"]["startTrainingSession"]["userErrors"] == []

    listed = await gql("query { memberMinuteLimits { totalCount edges { node { usedMinutes user { id } } } } }",
                       token=team.admin.token)
    assert listed["data"]["memberMinuteLimits"]["edges"] == [{"node": {"usedMinutes": 1, "user": {"id": capped.id}}}]
    assert (await gql("query { memberMinuteLimits { totalCount } }", token=capped.token))["errors"]
    removed = await gql(LIMIT, {"user": capped.id, "minutes": None}, token=team.admin.token)
    assert removed["data"]["setMemberMinuteLimit"] == {"limit": None, "userErrors": []}
    assert await db.fetchval("SELECT count(*) FROM member_minute_limits") == 0
