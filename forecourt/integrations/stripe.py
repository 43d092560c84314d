"""Stripe through the official SDK: PaymentIntents to fund wallets, Customers and Checkout /
Billing Portal sessions for organizations' plans (Stripe Billing), and verified webhooks.

The API base is a setting so tests run the real SDK against a local fake speaking Stripe's wire
protocol. The secret key and the webhook secret are never logged or put in messages.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe

from forecourt.config import Settings
from forecourt.domain.errors import DomainError
from forecourt.domain.webhooks import MAX_ID_LENGTH
from forecourt.integrations.openai import not_configured

log = logging.getLogger(__name__)

# Stripe amounts are integers in the currency's minor unit; these currencies have none.
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                          "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})


# How far a delivery's signed timestamp may be from now, either way: Stripe's default.
WEBHOOK_TOLERANCE = stripe.Webhook.DEFAULT_TOLERANCE
MAX_EVENT_TYPE_LENGTH = 100  # webhook_events.type


def signed_at(signature_header: str) -> int:
    """The `t=` timestamp of a Stripe-Signature header the SDK has already verified."""
    for item in signature_header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t":
            return int(value)
    raise ValueError("no timestamp")


class WebhookRejected(Exception):
    """A webhook whose signature, age or body does not check out."""


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    client_secret: str
    status: str


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    data: dict[str, Any]
    created: int | None = None  # Stripe's unix time of the event, for ordering late deliveries


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


def to_minor_units(amount: Decimal, currency: str) -> int:
    scale = 1 if currency.lower() in ZERO_DECIMAL else 100
    minor = amount * scale
    if minor != minor.to_integral_value():
        raise DomainError("INVALID_AMOUNT", f"{currency.upper()} amounts cannot have that many decimals",
                          ("amount",))
    return int(minor)


def from_minor_units(minor: int, currency: str) -> Decimal:
    scale = 1 if currency.lower() in ZERO_DECIMAL else 100
    return (Decimal(minor) / scale).quantize(Decimal("0.01"))


def provider_error(what: str, err: stripe.StripeError, message: str | None = None) -> DomainError:
    # The SDK's message never contains the key; log the type and Stripe's request id only.
    log.warning("stripe: %s failed: %s (request %s)", what, type(err).__name__,
                getattr(err, "request_id", None))
    return DomainError("PAYMENT_PROVIDER_ERROR",
                       message or f"The payment provider could not create the {what}; try again")


class Stripe:
    def __init__(self, settings: Settings) -> None:
        if not settings.stripe_api_key:
            raise not_configured("Stripe")
        self.currency = settings.wallet_currency.lower()
        self._webhook_secret = settings.stripe_webhook_secret
        self._http = stripe.HTTPXClient(timeout=20)
        self._client = stripe.StripeClient(
            settings.stripe_api_key,
            base_addresses={"api": settings.stripe_api_base},
            http_client=self._http,
            max_network_retries=2,
        )

    async def create_payment_intent(self, amount: Decimal, *, metadata: dict[str, str],
                                    idempotency_key: str) -> PaymentIntent:
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params={
                    "amount": to_minor_units(amount, self.currency),
                    "currency": self.currency,
                    "metadata": metadata,
                    "automatic_payment_methods": {"enabled": True},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as err:
            raise provider_error("payment intent", err,
                                 "The payment provider could not start this payment; try again") from None
        return PaymentIntent(intent.id, intent.client_secret, intent.status)

    async def create_customer(self, *, name: str, metadata: dict[str, str], idempotency_key: str) -> str:
        """A Customer for an organization; the same key within Stripe's 24 h replays the same one."""
        try:
            customer = await self._client.v1.customers.create_async(
                params={"name": name, "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as err:
            raise provider_error("customer", err) from None
        return customer.id

    async def create_subscription_checkout(
        self, *, customer: str, price: str, success_url: str, cancel_url: str,
        client_reference_id: str, metadata: dict[str, str], idempotency_key: str,
    ) -> CheckoutSession:
        """A hosted Checkout page that subscribes `customer` to `price`. The metadata is also put
        on the subscription, so its webhooks name the organization."""
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params={
                    "mode": "subscription",
                    "customer": customer,
                    "line_items": [{"price": price, "quantity": 1}],
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                    "client_reference_id": client_reference_id,
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as err:
            raise provider_error("checkout session", err) from None
        if not session.url:
            raise DomainError("PAYMENT_PROVIDER_ERROR", "The payment provider returned no checkout page")
        return CheckoutSession(session.id, session.url)

    async def create_portal_session(self, *, customer: str, return_url: str) -> str:
        """Stripe's hosted Billing Portal, where a customer changes plan, card or cancels."""
        try:
            session = await self._client.v1.billing_portal.sessions.create_async(
                params={"customer": customer, "return_url": return_url},
            )
        except stripe.StripeError as err:
            raise provider_error("billing portal session", err) from None
        return session.url

    def verify_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """The event, if Stripe signed it with our secret within the tolerance either side of
        now; WebhookRejected otherwise."""
        if not self._webhook_secret:
            raise WebhookRejected("webhooks are not configured")
        try:
            event = self._client.construct_event(payload, signature, self._webhook_secret,
                                                 tolerance=WEBHOOK_TOLERANCE)
            # The SDK refuses only timestamps too far in the past; a future one would let a
            # leaked delivery be replayed until that time comes.
            if signed_at(signature) > time.time() + WEBHOOK_TOLERANCE:
                raise WebhookRejected("Timestamp outside the tolerance zone")
            created = getattr(event, "created", None)
            if not (isinstance(event.id, str) and 0 < len(event.id) <= MAX_ID_LENGTH
                    and isinstance(event.type, str) and 0 < len(event.type) <= MAX_EVENT_TYPE_LENGTH):
                raise WebhookRejected("not a Stripe event")
            return WebhookEvent(id=event.id, type=event.type, data=event.data.object.to_dict(),
                                created=created if isinstance(created, int) else None)
        except stripe.SignatureVerificationError as err:
            raise WebhookRejected(str(err).split(".")[0]) from None
        except (ValueError, AttributeError, KeyError, TypeError):
            # signed, but not an event envelope (the SDK fails on e.g. a JSON array)
            raise WebhookRejected("not a Stripe event") from None

    async def close(self) -> None:
        await self._http.close_async()
