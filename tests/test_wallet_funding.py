"""Wallet funding through Stripe: the real stripe SDK against a local fake Stripe API, and
signed webhooks that credit the wallet once, in any order, and never when forged."""

import asyncio
import logging
import time

import pytest

from tests.conftest import make_settings
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET
from tests.harness import GraphQLClient, LiveServer

FUND = """mutation($amount: Money!) { fundWallet(input: {amount: $amount}) {
  clientSecret paymentIntentId userErrors { field code message } } }"""
WALLET = "{ me { wallet { balance transactions { totalCount edges { node { type amount } } } } } }"


@pytest.fixture
def stripe_server(tmp_path, database_url, clock, stripe_api):
    settings = make_settings(tmp_path, STRIPE_API_KEY=API_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                             STRIPE_API_BASE=stripe_api.url, WALLET_CURRENCY="ngn")
    live = LiveServer(settings, database_url, clock).start()
    yield live
    live.stop()


@pytest.fixture
async def client(stripe_server):
    c = GraphQLClient(stripe_server.url)
    yield c
    await c.close()


async def register(client, db):
    from tests.conftest import PASSWORD, REGISTER

    email = f"fund{time.monotonic_ns()}@example.com"
    body = await client(REGISTER, {"input": {"email": email, "password": PASSWORD}})
    return body["data"]["register"]["accessToken"], await db.fetchval("SELECT id FROM users WHERE email = $1", email)


async def deliver(client, payload: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature:
        headers["Stripe-Signature"] = signature
    return await client.http.post("/webhooks/stripe", content=payload, headers=headers)


async def test_funding_credits_the_wallet_once_when_stripe_confirms(client, stripe_api, db):
    token, user_id = await register(client, db)
    body = await client(FUND, {"amount": "250000.50"}, token=token)
    payload = body["data"]["fundWallet"]
    assert payload["userErrors"] == [] and payload["clientSecret"].startswith(payload["paymentIntentId"])
    sent = stripe_api.requests[-1]
    assert sent["amount"] == "25000050" and sent["currency"] == "ngn"
    assert sent["metadata"]["user_id"] == str(user_id)
    assert await db.fetchval("SELECT status FROM payments") == "pending"
    assert (await client(WALLET, token=token))["data"]["me"]["wallet"]["balance"] == "0.00"

    event = stripe_api.signed_event("payment_intent.succeeded", stripe_api.settle(payload["paymentIntentId"]))
    for _ in range(3):  # Stripe redelivers; the event counts once
        assert (await deliver(client, *event)).status_code == 200
    wallet = (await client(WALLET, token=token))["data"]["me"]["wallet"]
    assert wallet["balance"] == "250000.50"
    assert [e["node"] for e in wallet["transactions"]["edges"]] == [{"type": "deposit", "amount": "250000.50"}]
    # a second event for the same payment (a different event id) does not credit again
    again = stripe_api.signed_event("payment_intent.succeeded", stripe_api.settle(payload["paymentIntentId"]))
    assert (await deliver(client, *again)).status_code == 200
    # nor does a late failure undo it
    late = stripe_api.signed_event("payment_intent.payment_failed", stripe_api.intents[payload["paymentIntentId"]])
    assert (await deliver(client, *late)).status_code == 200
    assert await db.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user_id) == 250000.50
    assert await db.fetchval("SELECT status FROM payments") == "succeeded"


async def test_concurrent_redeliveries_credit_once(client, stripe_api, db):
    token, user_id = await register(client, db)
    intent_id = (await client(FUND, {"amount": "1000.00"}, token=token))["data"]["fundWallet"]["paymentIntentId"]
    event = stripe_api.signed_event("payment_intent.succeeded", stripe_api.settle(intent_id))
    other = stripe_api.signed_event("payment_intent.succeeded", stripe_api.intents[intent_id])
    responses = await asyncio.gather(*(deliver(client, *e) for e in [event] * 5 + [other] * 5))
    assert {r.status_code for r in responses} <= {200, 500}
    for r in responses:  # Stripe retries failures (e.g. a lost race on the unique key)
        if r.status_code == 500:
            assert (await deliver(client, *event)).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM transactions WHERE user_id = $1", user_id) == 1
    assert await db.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user_id) == 1000


async def test_a_success_that_arrives_before_anything_else_still_credits(client, stripe_api, db):
    _, user_id = await register(client, db)
    intent = {"id": "pi_early", "object": "payment_intent", "amount": 500, "amount_received": 500,
              "currency": "ngn", "status": "succeeded", "metadata": {"user_id": str(user_id)}}
    assert (await deliver(client, *stripe_api.signed_event("payment_intent.succeeded", intent))).status_code == 200
    assert await db.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user_id) == 5


@pytest.mark.parametrize("forgery", ["wrong secret", "tampered", "no header", "stale"])
async def test_forged_or_stale_webhooks_are_refused_and_change_nothing(forgery, client, stripe_api, db):
    _, user_id = await register(client, db)
    intent = {"id": "pi_forged", "object": "payment_intent", "amount": 9900, "amount_received": 9900,
              "currency": "ngn", "status": "succeeded", "metadata": {"user_id": str(user_id)}}
    payload, signature = stripe_api.signed_event(
        "payment_intent.succeeded", intent,
        secret="whsec_someone_else" if forgery == "wrong secret" else WEBHOOK_SECRET,
        timestamp=int(time.time()) - 3600 if forgery == "stale" else None)
    if forgery == "tampered":
        payload = payload.replace(b"9900", b"9999900")
    response = await deliver(client, payload, None if forgery == "no header" else signature)
    assert response.status_code == 400 and response.json()["errors"][0]["extensions"]["code"] == "BAD_SIGNATURE"
    assert await db.fetchval("SELECT count(*) FROM transactions") == 0
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_provider_failures_are_clear_and_write_nothing(client, stripe_api, db):
    token, _ = await register(client, db)
    stripe_api.fail_next = 5  # more than the SDK's retries
    body = await client(FUND, {"amount": "100.00"}, token=token)
    assert body["data"]["fundWallet"]["userErrors"][0]["code"] == "PAYMENT_PROVIDER_ERROR"
    bad = await client(FUND, {"amount": "0.00"}, token=token)
    assert bad["data"]["fundWallet"]["userErrors"][0]["code"] == "INVALID_AMOUNT"
    assert await db.fetchval("SELECT count(*) FROM payments") == 0


async def test_without_stripe_configured_funding_says_so(gql, make_user, server):
    account = await make_user("user")
    body = await gql(FUND, {"amount": "100.00"}, token=account.token)
    assert body["data"]["fundWallet"]["userErrors"][0]["code"] == "PROVIDER_NOT_CONFIGURED"
    assert (await gql.http.post("/webhooks/stripe", content=b"{}")).status_code == 404


# ---------------------------------------------------------------- webhook edge cases


def intent_for(user_id, **changes):
    """A succeeded wallet top-up as our fundWallet creates it, with `changes` applied (None removes a key)."""
    intent = {"id": f"pi_{time.monotonic_ns()}", "object": "payment_intent", "amount": 500,
              "amount_received": 500, "currency": "ngn", "status": "succeeded",
              "metadata": {"user_id": str(user_id)}}
    intent.update(changes)
    return {key: value for key, value in intent.items() if value is not None}


async def nothing_written(db):
    return [await db.fetchval(f"SELECT count(*) FROM {table}") for table in ("payments", "transactions")] == [0, 0]


@pytest.mark.parametrize("changes", [
    {"currency": None}, {"currency": 566}, {"currency": ""}, {"currency": "naira"},
    {"amount_received": None}, {"amount_received": "500"}, {"amount_received": 5.5},
    {"amount_received": -500}, {"amount_received": 0}, {"amount_received": True},
    {"metadata": None}, {"metadata": "user"}, {"id": None}, {"id": "pi_" + "x" * 300},
], ids=lambda changes: "-".join(f"{k}={v!r}"[:24] for k, v in changes.items()))
async def test_a_malformed_intent_is_refused_and_writes_nothing(changes, client, stripe_api, db):
    _, user_id = await register(client, db)
    event = stripe_api.signed_event("payment_intent.succeeded", intent_for(user_id, **changes))
    for _ in range(2):  # not recorded as handled: a redelivery (after a fix) is read again
        response = await deliver(client, *event)
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_EVENT"
    assert await nothing_written(db)
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_a_malformed_failure_or_cancellation_is_refused_too(client, stripe_api, db):
    _, user_id = await register(client, db)
    for event_type in ("payment_intent.payment_failed", "payment_intent.canceled", "payment_intent.processing"):
        intent = intent_for(user_id, amount="500", amount_received=0, status="canceled")
        response = await deliver(client, *stripe_api.signed_event(event_type, intent))
        assert response.status_code == 400 and response.json()["errors"][0]["extensions"]["code"] == "INVALID_EVENT"
    assert await nothing_written(db)


@pytest.mark.parametrize(("changes", "logged"), [
    ({"metadata": {"user_id": "7f9c24e8-3b12-4f6a-9c1d-5e8a2b7c4d10"}}, "names no user of ours"),
    ({"metadata": {}}, "names no user of ours"),
    ({"metadata": {"user_id": "not-a-uuid"}}, "names no user of ours"),
    ({"metadata": {"user_id": ["a", "list"]}}, "names no user of ours"),
    ({"currency": "usd"}, "is in USD, wallets hold NGN"),
    ({"currency": "USD"}, "is in USD, wallets hold NGN"),
    ({"amount": 10**20, "amount_received": 10**20}, "larger than any top-up"),
], ids=["unknown-user", "no-user", "not-a-uuid", "not-a-string", "usd", "USD", "huge"])
async def test_an_intent_that_is_not_ours_is_acknowledged_logged_and_changes_nothing(
    changes, logged, client, stripe_api, db, caplog,
):
    _, user_id = await register(client, db)
    caplog.set_level(logging.WARNING)
    for event_type in ("payment_intent.processing", "payment_intent.succeeded"):
        event = stripe_api.signed_event(event_type, intent_for(user_id, **changes))
        for _ in range(3):  # acknowledged every time, so Stripe stops redelivering
            assert (await deliver(client, *event)).status_code == 200
    assert await nothing_written(db)
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 2
    assert await db.fetchval("SELECT coalesce(sum(balance), 0) FROM wallets") == 0
    assert logged in caplog.text and WEBHOOK_SECRET not in caplog.text


async def test_a_wallet_currency_intent_in_other_letter_case_is_credited(client, stripe_api, db):
    _, user_id = await register(client, db)
    event = stripe_api.signed_event("payment_intent.succeeded", intent_for(user_id, currency="NGN"))
    assert (await deliver(client, *event)).status_code == 200
    assert await db.fetchval("SELECT balance FROM wallets WHERE user_id = $1", user_id) == 5


async def test_a_delivery_signed_a_year_ahead_is_refused(client, stripe_api, db):
    _, user_id = await register(client, db)
    event = stripe_api.signed_event("payment_intent.succeeded", intent_for(user_id),
                                    timestamp=int(time.time()) + 365 * 86400)
    response = await deliver(client, *event)
    assert response.status_code == 400 and response.json()["errors"][0]["extensions"]["code"] == "BAD_SIGNATURE"
    assert await nothing_written(db) and await db.fetchval("SELECT count(*) FROM webhook_events") == 0
