"""The Stripe wrapper on its own: the real stripe SDK against the local fake Stripe API over
127.0.0.1 (amounts in minor units, bracketed metadata, idempotent replays, retries, a bad key),
and webhook signature checks on deliveries signed the way Stripe signs them."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal

import pytest
import stripe

from forecourt.domain.errors import DomainError
from forecourt.integrations.stripe import Stripe, WebhookRejected, to_minor_units
from tests.conftest import make_settings
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe

METADATA = {"user_id": "7f9c24e8-3b12-4f6a-9c1d-5e8a2b7c4d10", "payment_id": "pay-1"}


@pytest.fixture
def fast_retries(monkeypatch):
    # The SDK backs off at least 0.5 s per retry; the behaviour under test is the retry, not the wait.
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.02)


def client(tmp_path, fake: FakeStripe | None = None, **overrides: str) -> Stripe:
    values = {"STRIPE_API_KEY": API_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "WALLET_CURRENCY": "ngn",
              "STRIPE_API_BASE": fake.url if fake else "http://127.0.0.1:9"}
    return Stripe(make_settings(tmp_path, **(values | overrides)))


# ---------------------------------------------------------------- payment intents


async def test_payment_intent_sends_minor_units_and_bracketed_metadata(tmp_path, stripe_api):
    intent = await client(tmp_path, stripe_api).create_payment_intent(
        Decimal("250000.50"), metadata=METADATA, idempotency_key="fund-1")
    assert stripe_api.requests == [{
        "amount": "25000050", "currency": "ngn", "metadata": METADATA,
        "automatic_payment_methods": {"enabled": "true"},
    }]
    stored = stripe_api.intents[intent.id]
    assert intent.id.startswith("pi_") and intent.client_secret == stored["client_secret"]
    assert intent.status == "requires_payment_method" and stored["amount"] == 25000050


async def test_zero_decimal_currencies_are_sent_whole(tmp_path, stripe_api):
    yen = client(tmp_path, stripe_api, WALLET_CURRENCY="jpy")
    await yen.create_payment_intent(Decimal("1500.00"), metadata=METADATA, idempotency_key="yen-1")
    assert stripe_api.requests[-1]["amount"] == "1500" and stripe_api.requests[-1]["currency"] == "jpy"


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    (Decimal("0.01"), "ngn", 1), (Decimal("100"), "usd", 10000), (Decimal("1E+3"), "usd", 100000),
    (Decimal("1500"), "JPY", 1500), (Decimal("1500.00"), "jpy", 1500),
])
def test_minor_units_are_exact(amount, currency, minor):
    assert to_minor_units(amount, currency) == minor


@pytest.mark.parametrize(("amount", "currency"), [
    (Decimal("10.005"), "ngn"), (Decimal("0.001"), "usd"), (Decimal("1500.5"), "jpy"), (Decimal("NaN"), "usd"),
])
async def test_fractions_of_a_minor_unit_are_refused_before_calling_stripe(tmp_path, stripe_api, amount, currency):
    with pytest.raises(DomainError) as refused:
        await client(tmp_path, stripe_api, WALLET_CURRENCY=currency).create_payment_intent(
            amount, metadata=METADATA, idempotency_key="frac")
    assert refused.value.code == "INVALID_AMOUNT" and refused.value.field == ("amount",)
    assert stripe_api.requests == []


async def test_an_idempotency_key_replays_the_same_intent(tmp_path, stripe_api):
    payments = client(tmp_path, stripe_api)
    first = await payments.create_payment_intent(Decimal("100.00"), metadata=METADATA, idempotency_key="fund-2")
    again = await payments.create_payment_intent(Decimal("100.00"), metadata=METADATA, idempotency_key="fund-2")
    other = await payments.create_payment_intent(Decimal("100.00"), metadata=METADATA, idempotency_key="fund-3")
    assert again == first and other.id != first.id
    assert len(stripe_api.intents) == 2


async def test_a_reused_key_with_other_parameters_is_refused(tmp_path, stripe_api):
    payments = client(tmp_path, stripe_api)
    await payments.create_payment_intent(Decimal("100.00"), metadata=METADATA, idempotency_key="fund-4")
    with pytest.raises(DomainError) as refused:
        await payments.create_payment_intent(Decimal("200.00"), metadata=METADATA, idempotency_key="fund-4")
    assert refused.value.code == "PAYMENT_PROVIDER_ERROR"
    assert len(stripe_api.intents) == 1


async def test_a_bad_key_fails_without_revealing_it(tmp_path, stripe_api, caplog):
    secret = "sk_test_not_the_right_one_4242"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DomainError) as failed:
        await client(tmp_path, stripe_api, STRIPE_API_KEY=secret).create_payment_intent(
            Decimal("100.00"), metadata=METADATA, idempotency_key="fund-5")
    assert failed.value.code == "PAYMENT_PROVIDER_ERROR"
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    for text in (str(failed.value), repr(failed.value), caplog.text):
        assert secret not in text and "4242" not in text
    assert "AuthenticationError" in caplog.text  # the log still says what went wrong
    assert stripe_api.intents == {}


async def test_server_errors_are_retried_under_one_idempotency_key(tmp_path, stripe_api, fast_retries):
    payments = client(tmp_path, stripe_api)
    stripe_api.fail_next = 2
    intent = await payments.create_payment_intent(Decimal("100.00"), metadata=METADATA, idempotency_key="fund-6")
    assert len(stripe_api.requests) == 3 and list(stripe_api.intents) == [intent.id]
    # the retries carried the caller's key: asking again replays the intent the last try made
    again = await payments.create_payment_intent(Decimal("100.00"), metadata=METADATA, idempotency_key="fund-6")
    assert again.id == intent.id


async def test_retries_give_up_after_two(tmp_path, stripe_api, fast_retries):
    stripe_api.fail_next = 3
    with pytest.raises(DomainError) as failed:
        await client(tmp_path, stripe_api).create_payment_intent(
            Decimal("100.00"), metadata=METADATA, idempotency_key="fund-7")
    assert failed.value.code == "PAYMENT_PROVIDER_ERROR"
    assert len(stripe_api.requests) == 3 and stripe_api.intents == {}


async def test_an_unreachable_api_is_a_provider_error(tmp_path, fast_retries):
    with pytest.raises(DomainError) as failed:
        await client(tmp_path).create_payment_intent(Decimal("1.00"), metadata=METADATA, idempotency_key="k")
    assert failed.value.code == "PAYMENT_PROVIDER_ERROR"


# ---------------------------------------------------------------- webhooks


def test_a_signed_event_is_accepted(tmp_path):
    payments = client(tmp_path)
    intent = {"id": "pi_123", "object": "payment_intent", "amount": 500, "amount_received": 500,
              "currency": "ngn", "status": "succeeded", "metadata": METADATA}
    payload, signature = FakeStripe.signed_event("payment_intent.succeeded", intent, event_id="evt_1")
    assert json.loads(payload)["object"] == "event"
    event = payments.verify_webhook(payload, signature)
    assert (event.id, event.type) == ("evt_1", "payment_intent.succeeded")
    assert event.data == intent and type(event.data["metadata"]) is dict


def test_an_intent_settled_on_the_fake_verifies(tmp_path):
    fake = FakeStripe()  # no server: signing and settling are local
    # the fake's stored intents are what webhook tests send; they must round-trip as-is
    fake.intents["pi_9"] = {"id": "pi_9", "object": "payment_intent", "amount": 700, "amount_received": 0,
                            "currency": "ngn", "status": "requires_payment_method", "metadata": METADATA}
    settled = fake.settle("pi_9")
    event = client(tmp_path).verify_webhook(*FakeStripe.signed_event("payment_intent.succeeded", settled))
    assert event.data["status"] == "succeeded" and event.data["amount_received"] == 700


def tampered(fake: type[FakeStripe]) -> tuple[bytes, str]:
    payload, signature = fake.signed_event("payment_intent.succeeded", {"amount_received": 5})
    body = json.loads(payload)
    body["data"]["object"]["amount_received"] = 10**9
    return json.dumps(body).encode(), signature


@pytest.mark.parametrize(("forge", "reason"), [
    (tampered, "matching"),
    (lambda fake: fake.signed_event("payment_intent.succeeded", {}, secret="whsec_someone_else"), "matching"),
    (lambda fake: (fake.signed_event("payment_intent.succeeded", {})[0], None), "No Stripe-Signature"),
    (lambda fake: (fake.signed_event("payment_intent.succeeded", {})[0], ""), "No Stripe-Signature"),
    (lambda fake: (fake.signed_event("payment_intent.succeeded", {})[0], "v1=abc"), "Unable to extract"),
    (lambda fake: fake.signed_event("payment_intent.succeeded", {}, timestamp=int(time.time()) - 301), "tolerance"),
    (lambda fake: fake.signed_event("payment_intent.succeeded", {}, timestamp=int(time.time()) + 301), "tolerance"),
    (lambda fake: fake.signed_event("payment_intent.succeeded", {}, timestamp=int(time.time()) + 365 * 86400),
     "tolerance"),
], ids=["tampered", "wrong-secret", "missing", "empty", "garbled", "stale", "future", "a-year-ahead"])
def test_forged_or_stale_deliveries_are_rejected(tmp_path, forge, reason):
    payload, signature = forge(FakeStripe)
    with pytest.raises(WebhookRejected) as rejected:
        client(tmp_path).verify_webhook(payload, signature)
    assert reason in str(rejected.value)
    assert WEBHOOK_SECRET not in str(rejected.value)


@pytest.mark.parametrize("skew", [-290, 290], ids=["behind", "ahead"])
def test_a_delivery_within_tolerance_either_way_is_accepted(tmp_path, skew):
    # clocks drift both ways; up to Stripe's 300 s either side is accepted
    payload, signature = FakeStripe.signed_event("payment_intent.processing", {}, timestamp=int(time.time()) + skew)
    assert client(tmp_path).verify_webhook(payload, signature).type == "payment_intent.processing"


@pytest.mark.parametrize("envelope", [
    {"id": 42, "type": "payment_intent.succeeded"}, {"id": "evt_1", "type": None},
    {"id": "", "type": "payment_intent.succeeded"}, {"id": "evt_" + "x" * 300, "type": "payment_intent.succeeded"},
    {"id": "evt_1", "type": "x" * 101},
], ids=["numeric-id", "no-type", "empty-id", "long-id", "long-type"])
def test_a_signed_event_without_a_usable_id_or_type_is_rejected(tmp_path, envelope):
    payload = json.dumps({"object": "event", "data": {"object": {}}} | envelope)
    header = stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET)
    with pytest.raises(WebhookRejected, match="not a Stripe event"):
        client(tmp_path).verify_webhook(payload.encode(), header)


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe"])
def test_a_signed_but_malformed_body_is_rejected(tmp_path, payload):
    signature = stripe.WebhookSignature.generate_signature_header(payload.decode("latin-1"), WEBHOOK_SECRET)
    with pytest.raises(WebhookRejected):
        client(tmp_path).verify_webhook(payload, signature)


def test_webhooks_without_a_secret_are_refused(tmp_path):
    payload, signature = FakeStripe.signed_event("payment_intent.succeeded", {})
    with pytest.raises(WebhookRejected):
        client(tmp_path, STRIPE_WEBHOOK_SECRET="").verify_webhook(payload, signature)


def test_a_signed_json_array_is_rejected_not_a_crash(tmp_path):
    client = Stripe(make_settings(tmp_path, STRIPE_API_KEY=API_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET))
    payload = b"[]"
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), WEBHOOK_SECRET)
    with pytest.raises(WebhookRejected):
        client.verify_webhook(payload, header)
