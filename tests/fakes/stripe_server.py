"""A local stand-in for the Stripe API on 127.0.0.1, speaking its wire protocol: form-encoded
requests with bracketed keys, bearer secret keys, Idempotency-Key replays, Stripe-shaped objects
and errors (PaymentIntents; Customers, Checkout and Billing Portal sessions); and signed webhook
deliveries built the way Stripe builds them (subscriptions and invoices in the 2025-03-31 shape)."""

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
        self.requests: list[dict] = []  # the params of every create call, in order
        self.calls: list[tuple[str, dict, str | None]] = []  # (path, params, Idempotency-Key) of each create
        self.intents: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}
        self.checkout_sessions: dict[str, dict] = {}
        self.portal_sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self._replies: dict[str, tuple[dict, dict]] = {}
        self.fail_next = 0
        self.fail_paths: dict[str, int] = {}  # path -> how many of its next calls fail with a 500
        self.app = Starlette(routes=[
            Route("/v1/payment_intents", self.create_intent, methods=["POST"]),
            Route("/v1/payment_intents/{id}", self.get_intent, methods=["GET"]),
            Route("/v1/customers", self.create_customer, methods=["POST"]),
            Route("/v1/checkout/sessions", self.create_checkout_session, methods=["POST"]),
            Route("/v1/billing_portal/sessions", self.create_portal_session, methods=["POST"]),
        ])

    async def _create(self, request: Request, build) -> JSONResponse:
        """What every create endpoint does: check the key, record the call, fail on demand,
        replay an Idempotency-Key (refusing one reused with other parameters), then build."""
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided", "api_key_invalid")
        params = _unflatten(parse_qsl((await request.body()).decode()))
        key = request.headers.get("idempotency-key")
        self.requests.append(params)
        self.calls.append((request.url.path, params, key))
        if self.fail_paths.get(request.url.path):
            self.fail_paths[request.url.path] -= 1
            return _error(500, "api_error", "An unknown error occurred")
        if self.fail_next:
            self.fail_next -= 1
            return _error(500, "api_error", "An unknown error occurred")
        if key and key in self._replies:
            earlier_params, earlier = self._replies[key]
            if earlier_params != params:
                return _error(400, "idempotency_error",
                              "Keys for idempotent requests can only be used with the same parameters")
            return JSONResponse(earlier, headers={"Idempotent-Replayed": "true"})
        built = build(params)
        if isinstance(built, JSONResponse):
            return built
        if key:
            self._replies[key] = (params, built)
        return JSONResponse(built)

    async def create_intent(self, request: Request) -> JSONResponse:
        return await self._create(request, self._intent)

    def _intent(self, params: dict) -> dict | JSONResponse:
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
        return intent

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

    # ------------------------------------------------------------ Stripe Billing

    async def create_customer(self, request: Request) -> JSONResponse:
        return await self._create(request, self._customer)

    def _customer(self, params: dict) -> dict:
        customer = {"id": f"cus_{secrets.token_hex(7)}", "object": "customer", "name": params.get("name"),
                    "email": params.get("email"), "metadata": params.get("metadata", {}),
                    "created": int(time.time()), "livemode": False}
        self.customers[customer["id"]] = customer
        return customer

    async def create_checkout_session(self, request: Request) -> JSONResponse:
        return await self._create(request, self._checkout)

    def _checkout(self, params: dict) -> dict | JSONResponse:
        for required in ("mode", "success_url"):
            if not params.get(required):
                return _error(400, "invalid_request_error", f"Missing required param: {required}.",
                              "parameter_missing")
        items = list((params.get("line_items") or {}).values())
        if params["mode"] == "subscription" and not (items and items[0].get("price")):
            return _error(400, "invalid_request_error", "A subscription needs a recurring price in line_items.",
                          "parameter_missing")
        if params.get("customer") and params["customer"] not in self.customers:
            return _error(400, "invalid_request_error", f"No such customer: '{params['customer']}'",
                          "resource_missing")
        session_id = f"cs_test_{secrets.token_hex(16)}"
        session = {
            "id": session_id, "object": "checkout.session", "mode": params["mode"], "status": "open",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}", "customer": params.get("customer"),
            "client_reference_id": params.get("client_reference_id"), "metadata": params.get("metadata", {}),
            "success_url": params["success_url"], "cancel_url": params.get("cancel_url"),
            "subscription": None, "payment_status": "unpaid", "line_items": items,
            "subscription_data": params.get("subscription_data", {}),
            "created": int(time.time()), "livemode": False,
        }
        self.checkout_sessions[session_id] = session
        return session

    async def create_portal_session(self, request: Request) -> JSONResponse:
        return await self._create(request, self._portal)

    def _portal(self, params: dict) -> dict | JSONResponse:
        if params.get("customer") not in self.customers:
            return _error(400, "invalid_request_error", f"No such customer: '{params.get('customer')}'",
                          "resource_missing")
        session = {"id": f"bps_{secrets.token_hex(12)}", "object": "billing_portal.session",
                   "customer": params["customer"], "return_url": params.get("return_url"),
                   "url": f"https://billing.stripe.com/p/session/test_{secrets.token_hex(12)}",
                   "created": int(time.time()), "livemode": False}
        self.portal_sessions[session["id"]] = session
        return session

    def complete_checkout(self, session_id: str, *, status: str = "active", start: int | None = None,
                          trial_end: int | None = None) -> tuple[dict, dict]:
        """The customer paid: the subscription Checkout creates (metadata from subscription_data,
        as Stripe copies it) and the completed session, as their webhooks carry them."""
        session = self.checkout_sessions[session_id]
        price = session["line_items"][0]["price"]
        subscription = self.subscription(
            session["customer"], price, status=status, start=start, trial_end=trial_end,
            metadata=session["subscription_data"].get("metadata", {}))
        session.update(status="complete", subscription=subscription["id"],
                       payment_status="no_payment_required" if status == "trialing" else "paid")
        return dict(session), subscription

    def subscription(self, customer: str, price: str, *, status: str = "active", start: int | None = None,
                     days: int = 30, trial_end: int | None = None, metadata: dict | None = None,
                     subscription_id: str | None = None, cancel_at_period_end: bool = False) -> dict:
        """A subscription shaped as API versions since 2025-03-31 send it: the billing period on
        its items, none on the subscription itself."""
        start = start or int(time.time())
        sub_id = subscription_id or f"sub_{secrets.token_hex(12)}"
        sub = {
            "id": sub_id, "object": "subscription", "customer": customer, "status": status,
            "cancel_at_period_end": cancel_at_period_end, "trial_end": trial_end,
            "metadata": dict(metadata or {}), "created": start, "livemode": False,
            "items": {"object": "list", "has_more": False, "data": [{
                "id": f"si_{secrets.token_hex(8)}", "object": "subscription_item", "quantity": 1,
                "price": {"id": price, "object": "price", "recurring": {"interval": "month"}},
                "current_period_start": start, "current_period_end": start + days * 86400,
            }]},
        }
        self.subscriptions[sub_id] = sub
        return sub

    @staticmethod
    def invoice(subscription: dict, *, period_start: int | None = None, period_end: int | None = None) -> dict:
        """A paid subscription invoice (2025-03-31 shape: the subscription under `parent`); its
        line carries the service period it pays for."""
        item = subscription["items"]["data"][0]
        start = period_start if period_start is not None else item["current_period_start"]
        end = period_end if period_end is not None else item["current_period_end"]
        return {
            "id": f"in_{secrets.token_hex(12)}", "object": "invoice", "customer": subscription["customer"],
            "status": "paid", "billing_reason": "subscription_cycle", "paid": True,
            "period_start": start, "period_end": start,
            "parent": {"type": "subscription_details",
                       "subscription_details": {"subscription": subscription["id"], "metadata": {}}},
            "lines": {"object": "list", "has_more": False, "data": [{
                "id": f"il_{secrets.token_hex(8)}", "object": "line_item", "amount": 4900,
                "period": {"start": start, "end": end},
                "pricing": {"price_details": {"price": item["price"]["id"]}},
            }]},
        }

    @staticmethod
    def signed_event(event_type: str, data_object: dict, *, event_id: str | None = None,
                     secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
                     created: int | None = None) -> tuple[bytes, str]:
        """A webhook delivery: the event envelope and its Stripe-Signature header."""
        payload = json.dumps({
            "id": event_id or f"evt_{secrets.token_hex(12)}", "object": "event", "type": event_type,
            "api_version": "2025-03-31.basil", "created": created or int(time.time()), "livemode": False,
            "data": {"object": data_object}, "pending_webhooks": 1, "request": {"id": None},
        })
        header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)
        return payload.encode(), header
