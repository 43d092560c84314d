"""Billing rules on their own: reading Stripe objects of old and new API versions, which plan
subscriptions grant, stale events, new periods, redirect URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from forecourt.domain import billing as rules
from forecourt.domain.billing import SubscriptionStatus as S
from forecourt.domain.errors import DomainError, ValidationFailed
from forecourt.domain.organizations import PlanTier as P

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_a_subscription_of_api_2025_03_31_has_its_period_on_the_item():
    sub = rules.parse_subscription({
        "id": "sub_1", "object": "subscription", "customer": {"id": "cus_1", "object": "customer"},
        "status": "trialing", "cancel_at_period_end": True, "trial_end": T0 + 7 * 86400,
        "metadata": {"organization_id": "org-1"},
        "items": {"data": [{"price": {"id": "price_pro"}, "current_period_start": T0,
                            "current_period_end": T0 + 30 * 86400}]},
    })
    assert sub == rules.SubscriptionState(
        id="sub_1", customer="cus_1", status=S.TRIALING, price_id="price_pro",
        period_start=datetime(2026, 1, 1, tzinfo=UTC), period_end=datetime(2026, 1, 31, tzinfo=UTC),
        cancel_at_period_end=True, trial_end=datetime(2026, 1, 8, tzinfo=UTC), organization_ref="org-1")


def test_an_older_api_version_puts_the_period_on_the_subscription():
    sub = rules.parse_subscription({
        "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active",
        "current_period_start": T0, "current_period_end": T0 + 86400,
        "items": {"data": [{"plan": {"id": "price_basic"}}]},
    })
    assert (sub.price_id, sub.period_end, sub.trial_end, sub.organization_ref) == (
        "price_basic", datetime(2026, 1, 2, tzinfo=UTC), None, None)


@pytest.mark.parametrize("obj", [
    {}, {"id": "sub_1", "status": "dormant"}, {"id": "sub_1", "object": "invoice", "status": "active"},
    {"id": "sub_1", "status": "active", "trial_end": "tomorrow"},
    {"id": "sub_1", "status": "active", "trial_end": True},
])
def test_malformed_subscriptions_are_invalid_events(obj):
    with pytest.raises(rules.InvalidEvent):
        rules.parse_subscription(obj)


def test_invoices_of_both_shapes_name_their_subscription_and_the_latest_period():
    lines = {"data": [{"period": {"start": T0, "end": T0 + 10}}, {"period": {"start": T0 + 10, "end": T0 + 20}}]}
    new = rules.parse_invoice({"id": "in_1", "customer": "cus_1", "lines": lines,
                               "parent": {"subscription_details": {"subscription": "sub_1"}}})
    old = rules.parse_invoice({"id": "in_1", "customer": "cus_1", "lines": lines, "subscription": "sub_1"})
    assert new == old == rules.InvoicePaid("in_1", "cus_1", "sub_1", rules.timestamp(T0 + 10), rules.timestamp(T0 + 20))
    bare = rules.parse_invoice({"id": "in_2", "lines": {"data": []}})
    assert (bare.subscription, bare.period_end) == (None, None)


def test_checkouts_other_than_subscriptions_are_not_ours():
    assert rules.parse_checkout({"id": "cs_1", "mode": "payment"}) is None
    done = rules.parse_checkout({"id": "cs_1", "mode": "subscription", "customer": "cus_1", "subscription": "sub_1",
                                 "client_reference_id": "org-1", "metadata": {"plan": "gold"}})
    assert (done.organization_ref, done.plan) == ("org-1", None)


def test_the_best_entitled_subscription_sets_the_plan():
    assert rules.effective_plan([]) is P.FREE
    assert rules.effective_plan([(P.PRO, S.CANCELED), (P.BASIC, S.ACTIVE)]) is P.BASIC
    assert rules.effective_plan([(P.BASIC, S.TRIALING), (P.PRO, S.PAST_DUE)]) is P.PRO
    for status in (S.UNPAID, S.PAUSED, S.INCOMPLETE, S.INCOMPLETE_EXPIRED, S.CANCELED):
        assert rules.effective_plan([(P.PRO, status)]) is P.FREE


def test_stale_events_and_new_periods():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert rules.is_stale(t, t + timedelta(seconds=1))
    assert not rules.is_stale(t, t)  # the same second: Stripe's clock cannot order them
    assert not rules.is_stale(t, None) and not rules.is_stale(None, t)
    assert rules.starts_new_period(None, t) and rules.starts_new_period(t, t + timedelta(days=30))
    assert not rules.starts_new_period(t, t) and not rules.starts_new_period(t, t - timedelta(days=30))
    assert not rules.starts_new_period(t, None)


def test_checkout_rules():
    rules.check_checkout_plan(P.BASIC)
    with pytest.raises(DomainError, match="paid plans"):
        rules.check_checkout_plan(P.FREE)
    rules.check_no_live_subscription([(P.PRO, S.CANCELED), (P.BASIC, S.INCOMPLETE_EXPIRED)])
    with pytest.raises(DomainError) as exists:
        rules.check_no_live_subscription([(P.BASIC, S.PAST_DUE)])
    assert exists.value.code == "SUBSCRIPTION_EXISTS"
    assert rules.check_quota_minutes(0) == 0
    for bad in (-1, rules.MAX_QUOTA_MINUTES + 1):
        with pytest.raises(DomainError):
            rules.check_quota_minutes(bad)


@pytest.mark.parametrize(("url", "dev", "ok"), [
    ("https://app.example.com/done?s={CHECKOUT_SESSION_ID}", False, True),
    ("http://localhost:3000/done", True, True),
    ("http://127.0.0.1/done", True, True),
    ("http://localhost:3000/done", False, False),  # production: https only
    ("http://example.com/done", True, False),
    ("http://localhost.evil.com/", True, False),
    ("//example.com/done", True, False),
    ("javascript:alert(1)", True, False),
    ("https://a@b.com/", True, False),
    ("https://example.com/\nx", True, False),
])
def test_redirect_urls(url, dev, ok):
    if ok:
        assert rules.validate_redirect_url(url, "successUrl", allow_local_http=dev) == url
    else:
        with pytest.raises(DomainError) as refused:
            rules.validate_redirect_url(url, "successUrl", allow_local_http=dev)
        assert (refused.value.code, refused.value.field) == ("INVALID_URL", ("successUrl",))


def test_both_urls_are_reported_together():
    with pytest.raises(ValidationFailed) as refused:
        rules.validate_checkout_urls("ftp://x", None, allow_local_http=True)
    assert [e.field for e in refused.value.errors] == [("successUrl",), ("cancelUrl",)]


def test_the_subscription_shown_is_the_entitled_one():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    old_pro = SimpleNamespace(plan="pro", status="canceled", updated_at=t + timedelta(days=2))
    basic = SimpleNamespace(plan="basic", status="active", updated_at=t)
    assert rules.current_subscription([old_pro, basic]) is basic
    assert rules.current_subscription([old_pro]) is old_pro
    assert rules.current_subscription([]) is None


def test_unbilled_periods_start_roll_over_and_catch_up():
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert rules.unbilled_period_end(None, now) == (now + timedelta(days=30), False)
    later = now + timedelta(days=3)
    assert rules.unbilled_period_end(later, now) == (later, False)
    assert rules.unbilled_period_end(now, now) == (now + timedelta(days=30), True)
    ended = now - timedelta(days=65)  # three cycles behind: lands on the first end after now
    assert rules.unbilled_period_end(ended, now) == (ended + timedelta(days=90), True)
