"""Plans billed with Stripe Billing (seeds 002, 003): which plan a subscription grants, how
Stripe's webhook objects are read, which events are stale, when a billing period starts, and
what a checkout may ask for. Pure: no I/O; times come in as arguments."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from forecourt.domain.errors import DomainError, Validator
from forecourt.domain.organizations import PlanTier
from forecourt.domain.webhooks import InvalidEvent, list_items, metadata, object_id, timestamp

PAID_PLANS = frozenset({PlanTier.BASIC, PlanTier.PRO})
PLAN_RANK = {PlanTier.FREE: 0, PlanTier.BASIC: 1, PlanTier.PRO: 2}
MAX_QUOTA_MINUTES = 1_000_000  # ~1.9 years of talk a month: a typo guard, far above any plan
MAX_URL_LENGTH = 2048
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


class SubscriptionStatus(enum.StrEnum):
    """Stripe's subscription statuses."""

    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"


# A subscription grants its plan while it is paid for, on trial, or while Stripe retries a
# failed renewal (past_due); unpaid, paused, canceled and never-completed ones grant nothing.
ENTITLED = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE})


# ---------------------------------------------------------------- reading Stripe objects


@dataclass(frozen=True)
class SubscriptionState:
    """A `customer.subscription.*` event's subscription, as far as plans are concerned."""

    id: str
    customer: str | None
    status: SubscriptionStatus
    price_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool
    trial_end: datetime | None
    organization_ref: str | None  # metadata.organization_id, set by our checkout


def parse_subscription(obj: Mapping[str, Any]) -> SubscriptionState:
    sub_id = object_id(obj.get("id"))
    if sub_id is None or obj.get("object", "subscription") != "subscription":
        raise InvalidEvent("not a subscription")
    try:
        status = SubscriptionStatus(obj.get("status", ""))  # "" is no status either
    except ValueError:
        raise InvalidEvent(f"unknown subscription status {obj.get('status')!r}") from None
    first = next(iter(list_items(obj.get("items"))), None)
    first = first if isinstance(first, dict) else {}
    price = first.get("price") or first.get("plan") or {}
    # Since API version 2025-03-31 the billing period lives on the subscription items; older
    # versions put it on the subscription itself.
    start = first.get("current_period_start", obj.get("current_period_start"))
    end = first.get("current_period_end", obj.get("current_period_end"))
    return SubscriptionState(
        id=sub_id,
        customer=object_id(obj.get("customer")),
        status=status,
        price_id=object_id(price),
        period_start=timestamp(start),
        period_end=timestamp(end),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        trial_end=timestamp(obj.get("trial_end")),
        organization_ref=metadata(obj).get("organization_id"),
    )


@dataclass(frozen=True)
class CheckoutCompleted:
    session_id: str
    customer: str | None
    subscription: str | None
    organization_ref: str | None
    plan: PlanTier | None


def parse_checkout(obj: Mapping[str, Any]) -> CheckoutCompleted | None:
    """A completed Checkout Session; None when it is not a subscription checkout."""
    session_id = object_id(obj.get("id"))
    if session_id is None:
        raise InvalidEvent("not a checkout session")
    if obj.get("mode") != "subscription":
        return None
    labels = metadata(obj)
    plan_label = labels.get("plan")
    try:
        plan = PlanTier(plan_label) if plan_label else None
    except ValueError:
        plan = None
    return CheckoutCompleted(
        session_id=session_id,
        customer=object_id(obj.get("customer")),
        subscription=object_id(obj.get("subscription")),
        organization_ref=obj.get("client_reference_id") or labels.get("organization_id"),
        plan=plan,
    )


@dataclass(frozen=True)
class InvoicePaid:
    id: str
    customer: str | None
    subscription: str | None
    period_start: datetime | None
    period_end: datetime | None


def parse_invoice(obj: Mapping[str, Any]) -> InvoicePaid:
    """A paid invoice and the service period it pays for: the latest period among its lines
    (an invoice's own period_start/period_end describe the usage period just ended, not the
    subscription period paid in advance)."""
    invoice_id = object_id(obj.get("id"))
    if invoice_id is None:
        raise InvalidEvent("not an invoice")
    parent = obj.get("parent")
    details = (parent.get("subscription_details") if isinstance(parent, dict) else None) or {}
    if not isinstance(details, dict):
        raise InvalidEvent("an invoice whose subscription_details is not an object")
    # the new place, then the pre-2025 one
    subscription = object_id(details.get("subscription")) or object_id(obj.get("subscription"))
    periods: list[tuple[datetime | None, datetime]] = []
    for line in list_items(obj.get("lines")):
        period = line.get("period") if isinstance(line, dict) else None
        if isinstance(period, dict) and period.get("end") is not None:
            # (timestamp() of a value that is not None is a datetime or raises)
            period_end = timestamp(period["end"])
            if period_end is not None:
                periods.append((timestamp(period.get("start")), period_end))
    start, end = max(periods, key=lambda p: p[1]) if periods else (None, None)
    return InvoicePaid(invoice_id, object_id(obj.get("customer")), subscription, start, end)


# ---------------------------------------------------------------- rules


def plan_for_price(price_id: str | None, prices: Mapping[str, PlanTier]) -> PlanTier | None:
    """The plan a configured Stripe price sells; None for prices this server does not sell."""
    return prices.get(price_id) if price_id else None


def effective_plan(subscriptions: Iterable[tuple[PlanTier, SubscriptionStatus]]) -> PlanTier:
    """The best plan any entitled subscription grants; FREE without one."""
    granted = [plan for plan, status in subscriptions if status in ENTITLED]
    return max(granted, key=PLAN_RANK.__getitem__, default=PlanTier.FREE)


def is_stale(event_created: datetime | None, last_applied: datetime | None) -> bool:
    """An event older than the last one applied to the same subscription arrived late: ignore
    it. Stripe's `created` has one-second resolution, so events of the same second apply."""
    return event_created is not None and last_applied is not None and event_created < last_applied


# Organizations Stripe does not bill (FREE, or nothing entitled) get their minutes back on a
# fixed cycle instead of on `invoice.paid`.
UNBILLED_PERIOD = timedelta(days=30)


def unbilled_period_end(stored_end: datetime | None, now: datetime) -> tuple[datetime, bool]:
    """The end of the current unbilled period and whether the minutes used start again: a quota
    without a period starts one now (keeping its usage); an ended period rolls over, as many
    cycles as have passed, and resets the usage."""
    if stored_end is None:
        return now + UNBILLED_PERIOD, False
    if stored_end > now:
        return stored_end, False
    cycles = (now - stored_end) // UNBILLED_PERIOD + 1
    return stored_end + cycles * UNBILLED_PERIOD, True


def starts_new_period(stored_end: datetime | None, paid_end: datetime | None) -> bool:
    """Only an invoice for a period ending after the stored one resets the minutes used."""
    return paid_end is not None and (stored_end is None or paid_end > stored_end)


def check_checkout_plan(plan: PlanTier) -> None:
    if plan not in PAID_PLANS:
        raise DomainError("INVALID_PLAN", "Checkout is for the paid plans, BASIC and PRO", ("plan",))


def check_no_live_subscription(subscriptions: Iterable[tuple[PlanTier, SubscriptionStatus]]) -> None:
    if any(status in ENTITLED for _, status in subscriptions):
        raise DomainError(
            "SUBSCRIPTION_EXISTS",
            "This organization already has a subscription; change or cancel it in the billing portal",
            ("plan",),
        )


def check_quota_minutes(total: int) -> int:
    if not 0 <= total <= MAX_QUOTA_MINUTES:
        raise DomainError("INVALID_MINUTES", f"Minutes must be between 0 and {MAX_QUOTA_MINUTES:,}",
                          ("totalMinutes",))
    return total


def validate_redirect_url(url: str | None, field: str, *, allow_local_http: bool) -> str:
    """Where Stripe sends the customer back: https, or http to this machine in development.
    Stripe's `{CHECKOUT_SESSION_ID}` placeholder is allowed."""
    url = (url or "").strip()
    if not url:
        raise DomainError("INVALID_URL", "A URL is required", (field,))
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise DomainError("INVALID_URL", "Not a valid URL", (field,))
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise DomainError("INVALID_URL", "Not a valid URL", (field,)) from None
    if not host or parts.username is not None or parts.password is not None:
        raise DomainError("INVALID_URL", "The URL needs a host and no credentials", (field,))
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_local_http and host in LOCAL_HOSTS:
        return url
    allowed = "https (or http://localhost in development)" if allow_local_http else "https"
    raise DomainError("INVALID_URL", f"The URL must use {allowed}", (field,))


def validate_checkout_urls(success_url: str | None, cancel_url: str | None, *,
                           allow_local_http: bool) -> tuple[str, str]:
    checks = Validator()
    success = checks.run(validate_redirect_url, success_url, "successUrl", allow_local_http=allow_local_http)
    cancel = checks.run(validate_redirect_url, cancel_url, "cancelUrl", allow_local_http=allow_local_http)
    checks.check()  # raises unless both were valid
    return cast(str, success), cast(str, cancel)


def current_subscription(rows: Iterable[Any]) -> Any | None:
    """The subscription to show: an entitled one with the best plan, else the latest one.
    Rows need `.plan`, `.status` and `.updated_at`."""
    rows = list(rows)
    if not rows:
        return None

    def rank(row: Any) -> tuple[bool, int, Any]:
        entitled = SubscriptionStatus(row.status) in ENTITLED
        return (entitled, PLAN_RANK[PlanTier(row.plan)] if entitled else 0, row.updated_at)

    return max(rows, key=rank)
