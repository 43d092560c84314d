"""Reading Stripe's payment intents for wallet funding: pure, no database."""

import uuid

import pytest

from forecourt.domain.wallet import IntentUpdate, parse_payment_intent
from forecourt.domain.webhooks import InvalidEvent

USER = uuid.UUID("7f9c24e8-3b12-4f6a-9c1d-5e8a2b7c4d10")
INTENT = {"id": "pi_1", "object": "payment_intent", "amount": 700, "amount_received": 500,
          "currency": "NGN", "metadata": {"user_id": str(USER)}}


def test_a_success_reads_what_was_received_and_anything_else_what_was_asked():
    assert parse_payment_intent(INTENT, "succeeded") == IntentUpdate("pi_1", "succeeded", 500, "ngn", USER)
    assert parse_payment_intent(INTENT, "processing").amount == 700


@pytest.mark.parametrize("metadata", [{}, {"user_id": "someone"}, {"user_id": 7}, {"order": "x"}])
def test_an_intent_without_our_user_id_is_not_a_top_up(metadata):
    assert parse_payment_intent(INTENT | {"metadata": metadata}, "succeeded").user_id is None


@pytest.mark.parametrize("changes", [
    {"id": None}, {"object": "charge"}, {"currency": None}, {"currency": "n9n"}, {"currency": "ñgn"},
    {"amount_received": None}, {"amount_received": "500"}, {"amount_received": 0}, {"amount_received": -1},
    {"amount_received": 5.0}, {"amount_received": False}, {"metadata": None}, {"metadata": ["user_id"]},
])
def test_a_malformed_intent_is_an_invalid_event(changes):
    with pytest.raises(InvalidEvent):
        parse_payment_intent({k: v for k, v in (INTENT | changes).items() if v is not None}, "succeeded")
