"""A local stand-in for the Stripe API on 127.0.0.1, speaking its wire protocol: form-encoded
requests with bracketed keys, bearer secret keys, Idempotency-Key replays, Stripe-shaped objects
and errors; and signed webhook deliveries built the way Stripe builds them."""

from __future__ import annotations

import json
import secrets
import time
from urllib.parse import parse_qsl

import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk_test_forecourt"
WEBHOOK_SECRET = "whsec_forecourt_test"


def _unflatten(pairs: list[tuple[str, str]]) -> dict:
    """metadata[user_id]=x&automatic_payment_methods[enabled]=true -> nested dicts."""
    out: dict = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _error(status: int, kind: str, message: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, "code": code}}, status_code=status)


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.intents: dict[str, dict] = {}
        self._replies: dict[str, tuple[dict, dict]] = {}
        self.fail_next = 0
        self.app = Starlette(routes=[
            Route("/v1/payment_intents", self.create_intent, methods=["POST"]),
            Route("/v1/payment_intents/{id}", self.get_intent, methods=["GET"]),
        ])

    async def create_intent(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided", "api_key_invalid")
        params = _unflatten(parse_qsl((await request.body()).decode()))
        self.requests.append(params)
        if self.fail_next:
            self.fail_next -= 1
            return _error(500, "api_error", "An unknown error occurred")
        key = request.headers.get("idempotency-key")
        if key and key in self._replies:
            earlier_params, earlier = self._replies[key]
            if earlier_params != params:
                return _error(400, "idempotency_error",
                              "Keys for idempotent requests can only be used with the same parameters")
            return JSONResponse(earlier, headers={"Idempotent-Replayed": "true"})
        if not params.get("amount", "").isdigit() or int(params["amount"]) < 1:
            return _error(400, "invalid_request_error", "Invalid positive integer", "parameter_invalid_integer")
        intent_id = f"pi_{secrets.token_hex(12)}"
        intent = {
            "id": intent_id, "object": "payment_intent", "amount": int(params["amount"]),
            "amount_received": 0, "currency": params["currency"], "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "metadata": params.get("metadata", {}), "created": int(time.time()), "livemode": False,
        }
        self.intents[intent_id] = intent
        if key:
            self._replies[key] = (params, intent)
        return JSONResponse(intent)

    async def get_intent(self, request: Request) -> JSONResponse:
        intent = self.intents.get(request.path_params["id"])
        if intent is None:
            return _error(404, "invalid_request_error", "No such payment_intent", "resource_missing")
        return JSONResponse(intent)

    def settle(self, intent_id: str, status: str = "succeeded") -> dict:
        intent = self.intents[intent_id]
        intent["status"] = status
        if status == "succeeded":
            intent["amount_received"] = intent["amount"]
        return dict(intent)

    @staticmethod
    def signed_event(event_type: str, data_object: dict, *, event_id: str | None = None,
                     secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
        """A webhook delivery: the event envelope and its Stripe-Signature header."""
        payload = json.dumps({
            "id": event_id or f"evt_{secrets.token_hex(12)}", "object": "event", "type": event_type,
            "api_version": "2025-01-27.acacia", "created": int(time.time()), "livemode": False,
            "data": {"object": data_object}, "pending_webhooks": 1, "request": {"id": None},
        })
        header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
        return payload.encode(), header
