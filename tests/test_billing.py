"""Organizations' plans billed with Stripe Billing, through the real API: the real stripe SDK
against the local fake Stripe API over 127.0.0.1 (customers, Checkout, Billing Portal), signed
webhooks applied once and in order, minutes per plan and period, platform admins allocating
minutes (audited), tenant isolation, and a downgrade while a training session runs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import timedelta

import pytest
import stripe

from forecourt.schema.relay import to_global_id
from tests.conftest import make_settings
from tests.fakes.stripe_server import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.harness import GraphQLClient, LiveServer

PRICE_BASIC, PRICE_PRO = "price_basic_test", "price_pro_test"
SUCCESS, CANCEL = "https://app.example.com/billing?session={CHECKOUT_SESSION_ID}", "https://app.example.com/billing"

CHECKOUT = """mutation($input: StartPlanCheckoutInput!) { startPlanCheckout(input: $input) {
  url userErrors { field code message } } }"""
PORTAL = """mutation($input: OpenBillingPortalInput!) { openBillingPortal(input: $input) {
  url userErrors { field code message } } }"""
SET_QUOTA = """mutation($input: SetMinuteQuotaInput!) { setMinuteQuota(input: $input) {
  organization { id minutesRemaining billing { minutesTotal minutesUsed minutesRemaining } }
  userErrors { field code message } } }"""
BILLING_FIELDS = """plan subscriptionStatus currentPeriodEnd cancelAtPeriodEnd trialEndsAt
  minutesTotal minutesUsed minutesRemaining"""
MY_BILLING = f"{{ me {{ organization {{ plan minutesRemaining billing {{ {BILLING_FIELDS} }} }} }} }}"
ORG_BILLING = f"""query($id: ID!) {{ node(id: $id) {{ ... on Organization {{ name billing {{ {BILLING_FIELDS} }} }} }} }}"""


STRIPE_SETTINGS = {"STRIPE_API_KEY": API_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                   "STRIPE_PRICE_BASIC": PRICE_BASIC, "STRIPE_PRICE_PRO": PRICE_PRO}


@pytest.fixture
def settings(tmp_path, stripe_api):
    """This module's server (and so `gql` and `make_user`) talks to the fake Stripe API."""
    return make_settings(tmp_path, STRIPE_API_BASE=stripe_api.url, **STRIPE_SETTINGS)


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.02)


def checkout_input(plan="PRO", **over):
    return {"input": {"plan": plan, "successUrl": SUCCESS, "cancelUrl": CANCEL, **over}}


async def checkout(gql, org, plan="PRO", token=None):
    body = await gql(CHECKOUT, checkout_input(plan), token=token or org.admin.token)
    payload = body["data"]["startPlanCheckout"]
    assert payload["userErrors"] == [], payload
    return payload["url"]


async def deliver(gql, event_type, obj, *, event_id=None, created=None, secret=WEBHOOK_SECRET):
    payload, signature = FakeStripe.signed_event(event_type, obj, event_id=event_id, created=created, secret=secret)
    return await gql.http.post("/webhooks/stripe", content=payload,
                               headers={"Content-Type": "application/json", "Stripe-Signature": signature})


async def delivered(gql, event_type, obj, **kwargs):
    response = await deliver(gql, event_type, obj, **kwargs)
    assert response.status_code == 200, response.text
    return response


async def subscribed(gql, stripe_api, org, plan="PRO", *, status="active", created=None):
    """An organization that went through Checkout and whose subscription Stripe reported."""
    await checkout(gql, org, plan)
    session_id = list(stripe_api.checkout_sessions)[-1]
    session, subscription = stripe_api.complete_checkout(session_id, status=status)
    await delivered(gql, "customer.subscription.created", subscription, created=created)
    await delivered(gql, "checkout.session.completed", session, created=created)
    return subscription


async def quota(db, org):
    return await db.fetchrow("SELECT total_minutes, used_minutes, period_end FROM minute_quotas "
                             "WHERE organization_id = $1", org.raw_id)


async def plan_of(db, org):
    return await db.fetchval("SELECT plan FROM organizations WHERE id = $1", org.raw_id)


# ---------------------------------------------------------------- checkout


async def test_checkout_creates_the_customer_once_and_returns_the_checkout_page(gql, make_organization, stripe_api, db):
    org = await make_organization()
    url = await checkout(gql, org, "PRO")
    assert url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
    (customer_id, customer), = stripe_api.customers.items()
    assert customer["metadata"] == {"organization_id": str(org.raw_id)} and customer["name"] == "Lagos Motors"
    assert await db.fetchval("SELECT stripe_customer_id FROM organizations WHERE id = $1", org.raw_id) == customer_id

    (_path, params, key), = [c for c in stripe_api.calls if c[0] == "/v1/checkout/sessions"]
    assert params == {
        "mode": "subscription", "customer": customer_id, "line_items": {"0": {"price": PRICE_PRO, "quantity": "1"}},
        "success_url": SUCCESS, "cancel_url": CANCEL, "client_reference_id": str(org.raw_id),
        "metadata": {"organization_id": str(org.raw_id), "plan": "pro"},
        "subscription_data": {"metadata": {"organization_id": str(org.raw_id), "plan": "pro"}},
    }
    assert key and all(k for _, _, k in stripe_api.calls)  # every create carries an idempotency key

    # the admin changes their mind before paying: the same customer, the BASIC price
    again = await checkout(gql, org, "BASIC")
    assert again != url and len(stripe_api.customers) == 1
    last = stripe_api.calls[-1]
    assert last[0] == "/v1/checkout/sessions" and last[1]["customer"] == customer_id
    assert last[1]["line_items"]["0"]["price"] == PRICE_BASIC and last[2] != key
    # nothing changes until Stripe says the customer paid
    assert await plan_of(db, org) == "free" and await db.fetchval("SELECT count(*) FROM billing_subscriptions") == 0
    # development return URLs on this machine are allowed
    local = await gql(CHECKOUT, checkout_input(successUrl="http://localhost:3000/ok", cancelUrl="http://127.0.0.1/x"),
                      token=org.admin.token)
    assert local["data"]["startPlanCheckout"]["userErrors"] == []


async def test_concurrent_first_checkouts_make_one_customer(gql, make_organization, stripe_api, db):
    org = await make_organization()
    results = await asyncio.gather(*(gql(CHECKOUT, checkout_input(), token=org.admin.token) for _ in range(4)))
    assert all(r["data"]["startPlanCheckout"]["userErrors"] == [] for r in results)
    assert len(stripe_api.customers) == 1 and len(stripe_api.checkout_sessions) == 4


async def test_only_the_organizations_admins_start_a_checkout_and_bad_input_writes_nothing(
        gql, make_organization, make_user, stripe_api, db):
    org, rival = await make_organization(), await make_organization("Rival Sales Academy")
    refused = await gql(CHECKOUT, checkout_input(), token=org.members[0].token)
    assert refused["data"]["startPlanCheckout"]["userErrors"][0]["code"] == "NOT_ORGANIZATION_ADMIN"
    foreign = await gql(CHECKOUT, checkout_input(organizationId=org.id), token=rival.admin.token)
    assert foreign["data"]["startPlanCheckout"]["userErrors"][0] == {
        "field": ["input", "organizationId"], "code": "NOT_FOUND", "message": "No such organization"}
    loner = await gql(CHECKOUT, checkout_input(), token=(await make_user("user")).token)
    assert loner["data"]["startPlanCheckout"]["userErrors"][0]["code"] == "NO_ORGANIZATION"
    free = await gql(CHECKOUT, checkout_input("FREE"), token=org.admin.token)
    assert free["data"]["startPlanCheckout"]["userErrors"][0]["code"] == "INVALID_PLAN"
    for bad in ["http://app.example.com/ok", "javascript:alert(1)", "ftp://example.com/", "", "https://",
                "https://user:pw@example.com/", "https://exa mple.com/", "https://example.com:99999/", "x" * 3000]:
        body = await gql(CHECKOUT, checkout_input(successUrl=bad, cancelUrl=bad), token=org.admin.token)
        errors = body["data"]["startPlanCheckout"]["userErrors"]
        assert [(e["field"], e["code"]) for e in errors] == [
            (["input", "successUrl"], "INVALID_URL"), (["input", "cancelUrl"], "INVALID_URL")], (bad, errors)
    assert stripe_api.calls == [] and await db.fetchval(
        "SELECT count(*) FROM organizations WHERE stripe_customer_id IS NOT NULL") == 0

    # a platform admin may bill any organization
    admin = await make_user("admin")
    body = await gql(CHECKOUT, checkout_input("BASIC", organizationId=rival.id), token=admin.token)
    assert body["data"]["startPlanCheckout"]["url"]
    assert [c["metadata"]["organization_id"] for c in stripe_api.customers.values()] == [str(rival.raw_id)]


async def test_an_organization_with_a_live_subscription_uses_the_portal(gql, make_organization, stripe_api, db):
    org = await make_organization()
    none_yet = await gql(PORTAL, {"input": {"returnUrl": CANCEL}}, token=org.admin.token)
    assert none_yet["data"]["openBillingPortal"]["userErrors"][0]["code"] == "NO_BILLING_ACCOUNT"
    await subscribed(gql, stripe_api, org, "BASIC")
    body = await gql(CHECKOUT, checkout_input("PRO"), token=org.admin.token)
    assert body["data"]["startPlanCheckout"]["userErrors"][0]["code"] == "SUBSCRIPTION_EXISTS"
    portal = (await gql(PORTAL, {"input": {"returnUrl": CANCEL}}, token=org.admin.token))["data"]["openBillingPortal"]
    assert portal["userErrors"] == [] and portal["url"].startswith("https://billing.stripe.com/p/session/")
    (session,) = stripe_api.portal_sessions.values()
    assert session["customer"] == await db.fetchval(
        "SELECT stripe_customer_id FROM organizations WHERE id = $1", org.raw_id) and session["return_url"] == CANCEL
    member = await gql(PORTAL, {"input": {"returnUrl": CANCEL}}, token=org.members[0].token)
    assert member["data"]["openBillingPortal"]["userErrors"][0]["code"] == "NOT_ORGANIZATION_ADMIN"
    bad = await gql(PORTAL, {"input": {"returnUrl": "http://evil.example.com"}}, token=org.admin.token)
    assert bad["data"]["openBillingPortal"]["userErrors"][0]["field"] == ["input", "returnUrl"]


async def test_a_failed_checkout_keeps_the_new_customer_for_the_next_try(gql, make_organization, stripe_api, db, fast_retries):
    org = await make_organization()
    stripe_api.fail_paths["/v1/checkout/sessions"] = 3  # beyond the SDK's two retries
    body = await gql(CHECKOUT, checkout_input(), token=org.admin.token)
    assert body["data"]["startPlanCheckout"] == {
        "url": None, "userErrors": [{"field": None, "code": "PAYMENT_PROVIDER_ERROR",
                                     "message": "The payment provider could not create the checkout session; try again"}]}
    (customer_id,) = stripe_api.customers
    assert await db.fetchval("SELECT stripe_customer_id FROM organizations WHERE id = $1", org.raw_id) == customer_id
    assert await checkout(gql, org) and len(stripe_api.customers) == 1


async def test_without_stripe_or_a_price_checkout_says_so(tmp_path, database_url, clock, gql, make_organization, stripe_api, db):
    org = await make_organization()
    for overrides in ({}, {**STRIPE_SETTINGS, "STRIPE_API_BASE": stripe_api.url, "STRIPE_PRICE_PRO": ""}):
        with LiveServer(make_settings(tmp_path, **overrides), database_url, clock) as live:
            client = GraphQLClient(live.url)
            try:
                body = await client(CHECKOUT, checkout_input("PRO"), token=org.admin.token)
                assert body["data"]["startPlanCheckout"]["userErrors"][0]["code"] == "PROVIDER_NOT_CONFIGURED"
                portal = await client(PORTAL, {"input": {"returnUrl": CANCEL}}, token=org.admin.token)
                if not overrides:
                    assert portal["data"]["openBillingPortal"]["userErrors"][0]["code"] == "PROVIDER_NOT_CONFIGURED"
                    assert (await client.http.post("/webhooks/stripe", content=b"{}")).status_code == 404
                else:  # BASIC has a price, so it can still be bought
                    basic = await client(CHECKOUT, checkout_input("BASIC"), token=org.admin.token)
                    assert basic["data"]["startPlanCheckout"]["userErrors"] == []
            finally:
                await client.close()
    assert [c[1]["line_items"]["0"]["price"] for c in stripe_api.calls if c[0] == "/v1/checkout/sessions"] == [PRICE_BASIC]


# ---------------------------------------------------------------- webhooks


async def test_a_paid_checkout_moves_the_organization_to_its_plan(gql, make_organization, stripe_api, db, caplog):
    caplog.set_level(logging.DEBUG)
    org = await make_organization()
    await db.execute("UPDATE minute_quotas SET used_minutes = 45 WHERE organization_id = $1", org.raw_id)
    subscription = await subscribed(gql, stripe_api, org, "PRO")
    assert await plan_of(db, org) == "pro"
    row = await db.fetchrow("SELECT * FROM billing_subscriptions")
    item = subscription["items"]["data"][0]
    assert (row["organization_id"], row["stripe_subscription_id"], row["plan"], row["status"]) == (
        org.raw_id, subscription["id"], "pro", "active")
    assert int(row["current_period_end"].timestamp()) == item["current_period_end"]
    assert tuple(await quota(db, org))[:2] == (3000, 45)  # the new period starts when the invoice is paid

    await delivered(gql, "invoice.paid", FakeStripe.invoice(subscription))
    total, used, period_end = await quota(db, org)
    assert (total, used, int(period_end.timestamp())) == (3000, 0, item["current_period_end"])
    billing = (await gql(MY_BILLING, token=org.members[0].token))["data"]["me"]["organization"]
    assert billing["plan"] == "PRO" and billing["minutesRemaining"] == 3000
    assert billing["billing"] | {"currentPeriodEnd": None} == {
        "plan": "PRO", "subscriptionStatus": "ACTIVE", "currentPeriodEnd": None, "cancelAtPeriodEnd": False,
        "trialEndsAt": None, "minutesTotal": 3000, "minutesUsed": 0, "minutesRemaining": 3000}
    assert billing["billing"]["currentPeriodEnd"].startswith(time.strftime(
        "%Y-%m-%dT%H:%M", time.gmtime(item["current_period_end"])))
    assert "plan free -> pro" in caplog.text  # the server's log is captured here ...
    for secret in (API_KEY, WEBHOOK_SECRET):  # ... and never holds a secret
        assert secret not in caplog.text


async def test_a_replayed_event_applies_once(gql, make_organization, stripe_api, db):
    org = await make_organization()
    subscription = await subscribed(gql, stripe_api, org, "PRO")
    now = int(time.time()) + 5
    downgrade = stripe_api.subscription(subscription["customer"], PRICE_BASIC, subscription_id=subscription["id"])
    upgrade = stripe_api.subscription(subscription["customer"], PRICE_PRO, subscription_id=subscription["id"])
    await delivered(gql, "customer.subscription.updated", downgrade, event_id="evt_down", created=now)
    await delivered(gql, "customer.subscription.updated", upgrade, event_id="evt_up", created=now)
    assert await plan_of(db, org) == "pro"
    # Stripe redelivers the downgrade (same id, same second as the upgrade): already applied
    responses = await asyncio.gather(*(deliver(gql, "customer.subscription.updated", downgrade,
                                               event_id="evt_down", created=now) for _ in range(3)))
    assert {r.status_code for r in responses} == {200}
    assert await plan_of(db, org) == "pro"
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE event_id = 'evt_down'") == 1


async def test_an_older_event_arriving_late_changes_nothing(gql, make_organization, stripe_api, db):
    org = await make_organization()
    start = int(time.time())
    subscription = await subscribed(gql, stripe_api, org, "BASIC", created=start)
    upgraded = stripe_api.subscription(subscription["customer"], PRICE_PRO, subscription_id=subscription["id"])
    await delivered(gql, "customer.subscription.updated", upgraded, created=start + 60)
    assert await plan_of(db, org) == "pro" and (await quota(db, org))["total_minutes"] == 3000
    # the BASIC state from before the upgrade, delivered late
    stale = stripe_api.subscription(subscription["customer"], PRICE_BASIC, subscription_id=subscription["id"],
                                    cancel_at_period_end=True)
    await delivered(gql, "customer.subscription.updated", stale, created=start + 30)
    await delivered(gql, "customer.subscription.deleted", dict(stale, status="canceled"), created=start + 59)
    row = await db.fetchrow("SELECT plan, status, cancel_at_period_end, last_event_at FROM billing_subscriptions")
    assert (row["plan"], row["status"], row["cancel_at_period_end"]) == ("pro", "active", False)
    assert int(row["last_event_at"].timestamp()) == start + 60
    assert await plan_of(db, org) == "pro" and (await quota(db, org))["total_minutes"] == 3000
    # a placeholder from a late checkout.session.completed does not block the subscription's events
    assert await db.fetchval("SELECT count(*) FROM billing_subscriptions") == 1


async def test_a_deleted_subscription_goes_back_to_free(gql, make_organization, stripe_api, db):
    org = await make_organization()
    subscription = await subscribed(gql, stripe_api, org, "PRO")
    await db.execute("UPDATE minute_quotas SET used_minutes = 700 WHERE organization_id = $1", org.raw_id)
    await delivered(gql, "customer.subscription.deleted", dict(subscription, status="canceled"),
                    created=int(time.time()) + 5)
    assert await plan_of(db, org) == "free"
    assert tuple(await quota(db, org))[:2] == (60, 700)
    billing = (await gql(MY_BILLING, token=org.admin.token))["data"]["me"]["organization"]["billing"]
    assert (billing["plan"], billing["subscriptionStatus"], billing["minutesRemaining"]) == ("FREE", "CANCELED", 0)
    # ... and may subscribe again
    assert await checkout(gql, org, "BASIC")


async def test_unpaid_or_past_due_subscriptions(gql, make_organization, stripe_api, db):
    org = await make_organization()
    subscription = await subscribed(gql, stripe_api, org, "BASIC")
    now = int(time.time())
    await delivered(gql, "customer.subscription.updated", dict(subscription, status="past_due"), created=now + 1)
    assert await plan_of(db, org) == "basic"  # Stripe is retrying the card: the plan stays
    await delivered(gql, "customer.subscription.updated", dict(subscription, status="unpaid"), created=now + 2)
    assert await plan_of(db, org) == "free" and (await quota(db, org))["total_minutes"] == 60


async def test_invoice_paid_starts_a_new_period_only_once(gql, make_organization, stripe_api, db):
    org = await make_organization()
    subscription = await subscribed(gql, stripe_api, org, "BASIC")
    start = subscription["items"]["data"][0]["current_period_start"]
    month = 30 * 86400
    await delivered(gql, "invoice.paid", FakeStripe.invoice(subscription, period_start=start, period_end=start + month))
    await db.execute("UPDATE minute_quotas SET used_minutes = 512 WHERE organization_id = $1", org.raw_id)
    renewal = FakeStripe.invoice(subscription, period_start=start + month, period_end=start + 2 * month)
    await delivered(gql, "invoice.paid", renewal)
    total, used, period_end = await quota(db, org)
    assert (total, used, int(period_end.timestamp())) == (600, 0, start + 2 * month)

    await db.execute("UPDATE minute_quotas SET used_minutes = 42 WHERE organization_id = $1", org.raw_id)
    # the same period again (another event id) and the previous period's invoice, late: no reset
    await delivered(gql, "invoice.paid", FakeStripe.invoice(subscription, period_start=start + month,
                                                             period_end=start + 2 * month))
    await delivered(gql, "invoice.paid", FakeStripe.invoice(subscription, period_start=start, period_end=start + month))
    total, used, period_end = await quota(db, org)
    assert (used, int(period_end.timestamp())) == (42, start + 2 * month)


async def test_trial_ending_is_recorded(gql, make_organization, stripe_api, db):
    org = await make_organization()
    trial_end = int(time.time()) + 3 * 86400
    await checkout(gql, org, "PRO")
    session, subscription = stripe_api.complete_checkout(list(stripe_api.checkout_sessions)[-1], status="trialing")
    await delivered(gql, "checkout.session.completed", session)
    assert await plan_of(db, org) == "free"  # the placeholder from checkout grants nothing by itself
    assert await db.fetchval("SELECT status FROM billing_subscriptions") == "incomplete"
    subscription["trial_end"] = trial_end
    await delivered(gql, "customer.subscription.created", subscription)  # created before checkout ended
    await delivered(gql, "customer.subscription.trial_will_end", subscription, created=int(time.time()) + 1)
    assert int((await db.fetchval("SELECT trial_ends_at FROM organizations WHERE id = $1", org.raw_id)
                ).timestamp()) == trial_end
    billing = (await gql(MY_BILLING, token=org.admin.token))["data"]["me"]["organization"]["billing"]
    assert (billing["plan"], billing["subscriptionStatus"]) == ("PRO", "TRIALING")
    assert billing["trialEndsAt"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(trial_end)))


async def test_events_for_no_organization_of_ours_are_acknowledged_and_logged(gql, make_organization, stripe_api, db, caplog):
    org = await make_organization()
    stranger = stripe_api.subscription("cus_someone_else", PRICE_PRO)
    caplog.set_level(logging.WARNING)
    for number, (event_type, obj) in enumerate([
        ("customer.subscription.updated", stranger),
        ("customer.subscription.created", dict(stranger, metadata={"organization_id": str(uuid.uuid4())})),
        ("customer.subscription.created", dict(stranger, metadata={"organization_id": "not-a-uuid"})),
        ("invoice.paid", FakeStripe.invoice(stranger)),
        ("checkout.session.completed", {"id": "cs_x", "object": "checkout.session", "mode": "subscription",
                                        "customer": "cus_someone_else", "client_reference_id": None}),
        ("checkout.session.completed", {"id": "cs_y", "object": "checkout.session", "mode": "subscription",
                                        "client_reference_id": {"not": "an id"}}),
        ("invoice.paid", dict(FakeStripe.invoice(stranger), customer="cus_" + "x" * 250)),
    ]):
        for _ in range(2):  # acknowledged every time, so Stripe stops redelivering
            assert (await deliver(gql, event_type, obj, event_id=f"evt_stranger_{number}")).status_code == 200
    assert "names no organization of ours" in caplog.text
    assert await db.fetchval("SELECT count(*) FROM billing_subscriptions") == 0
    assert await plan_of(db, org) == "free" and await db.fetchval("SELECT count(*) FROM webhook_events") == 7
    # a price this server does not sell grants nothing
    await checkout(gql, org, "PRO")
    customer = next(iter(stripe_api.customers))
    await delivered(gql, "customer.subscription.created", stripe_api.subscription(customer, "price_unknown"))
    assert await plan_of(db, org) == "free" and "sells no plan here" in caplog.text


@pytest.mark.parametrize(("event_type", "obj"), [
    ("customer.subscription.updated", {"id": "sub_broken", "object": "subscription", "status": "sleeping"}),
    ("customer.subscription.updated", {"object": "subscription"}),
    ("customer.subscription.updated", {"id": "sub_" + "x" * 300, "object": "subscription", "status": "active"}),
    ("customer.subscription.updated", {"id": "sub_1", "status": "active", "items": {"data": {"0": {}}}}),
    ("customer.subscription.updated", {"id": "sub_1", "status": "active",
                                       "items": {"data": [{"current_period_end": "soon"}]}}),
    ("customer.subscription.updated", {"id": "sub_1", "status": "active", "trial_end": 10**20}),
    ("invoice.paid", {"object": "invoice", "lines": "nope"}),
    ("invoice.paid", {"id": "in_1", "parent": {"subscription_details": "sub_1"}}),
    ("invoice.paid", {"id": "in_1", "lines": {"data": [{"period": {"start": 0, "end": -10**20}}]}}),
    ("checkout.session.completed", {"object": "checkout.session", "mode": "subscription"}),
], ids=["unknown-status", "no-id", "long-id", "items-not-a-list", "period-not-a-time", "time-out-of-range",
        "invoice-no-id", "details-not-an-object", "invoice-time-out-of-range", "checkout-no-id"])
async def test_malformed_billing_events_are_refused_and_write_nothing(event_type, obj, gql, make_organization, db):
    await make_organization()
    for _ in range(2):  # not recorded as handled: a redelivery (after a fix) is read again
        response = await deliver(gql, event_type, obj, event_id="evt_malformed")
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_EVENT"
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0
    assert await db.fetchval("SELECT count(*) FROM billing_subscriptions") == 0


async def test_forged_billing_webhooks_are_refused(gql, make_organization, stripe_api, db):
    org = await make_organization()
    await checkout(gql, org, "PRO")
    customer = next(iter(stripe_api.customers))
    subscription = stripe_api.subscription(customer, PRICE_PRO)
    forged = await deliver(gql, "customer.subscription.created", subscription, secret="whsec_someone_else")
    assert forged.status_code == 400 and forged.json()["errors"][0]["extensions"]["code"] == "BAD_SIGNATURE"
    payload, signature = FakeStripe.signed_event("customer.subscription.created", subscription)
    tampered = json.loads(payload)
    tampered["data"]["object"]["items"]["data"][0]["price"]["id"] = PRICE_PRO + "x"
    response = await gql.http.post("/webhooks/stripe", content=json.dumps(tampered).encode(),
                                   headers={"Stripe-Signature": signature})
    assert response.status_code == 400
    assert await plan_of(db, org) == "free" and await db.fetchval("SELECT count(*) FROM webhook_events") == 0


# ---------------------------------------------------------------- minutes and tenancy


async def test_platform_admins_allocate_minutes_audited(gql, make_organization, make_user, stripe_api, db):
    org = await make_organization()
    admin = await make_user("admin")
    body = await gql(SET_QUOTA, {"input": {"organizationId": org.id, "totalMinutes": 5000, "reason": "Pilot"}},
                     token=admin.token)
    assert body["data"]["setMinuteQuota"] == {"organization": {
        "id": org.id, "minutesRemaining": 5000, "billing": {"minutesTotal": 5000, "minutesUsed": 0,
                                                            "minutesRemaining": 5000}}, "userErrors": []}
    entry = await db.fetchrow("SELECT admin_id, action, target_type, target_id, old_value, new_value, reason "
                              "FROM admin_audit_log")
    assert (entry["admin_id"], entry["action"], entry["target_type"], entry["target_id"], entry["reason"]) == (
        admin.raw_id, "organization.set_minute_quota", "organization", org.raw_id, "Pilot")
    assert json.loads(entry["old_value"]) == {"totalMinutes": 60} and json.loads(entry["new_value"]) == {"totalMinutes": 5000}

    for account in (org.admin, org.members[0]):  # an organization's own admin cannot grant itself minutes
        denied = await gql(SET_QUOTA, {"input": {"organizationId": org.id, "totalMinutes": 9999}}, token=account.token)
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN" and denied["data"] is None
    for total, code in [(-1, "INVALID_MINUTES"), (1_000_001, "INVALID_MINUTES")]:
        bad = await gql(SET_QUOTA, {"input": {"organizationId": org.id, "totalMinutes": total}}, token=admin.token)
        assert bad["data"]["setMinuteQuota"]["userErrors"][0] == {
            "field": ["input", "totalMinutes"], "code": code, "message": "Minutes must be between 0 and 1,000,000"}
    missing = await gql(SET_QUOTA, {"input": {"organizationId": to_global_id("Organization", uuid.uuid4()),
                                              "totalMinutes": 10}}, token=admin.token)
    assert missing["data"]["setMinuteQuota"]["userErrors"][0]["code"] == "NOT_FOUND"
    wrong_type = await gql(SET_QUOTA, {"input": {"organizationId": org.admin.id, "totalMinutes": 10}}, token=admin.token)
    assert wrong_type["data"]["setMinuteQuota"]["userErrors"][0]["code"] == "INVALID_ID"
    assert (await quota(db, org))["total_minutes"] == 5000
    assert await db.fetchval("SELECT count(*) FROM admin_audit_log") == 1

    # a subscription event that keeps the plan keeps the allocation; a plan change resets it
    subscription = await subscribed(gql, stripe_api, org, "BASIC")
    assert (await quota(db, org))["total_minutes"] == 600
    await gql(SET_QUOTA, {"input": {"organizationId": org.id, "totalMinutes": 800}}, token=admin.token)
    await delivered(gql, "customer.subscription.updated", dict(subscription, cancel_at_period_end=True),
                    created=int(time.time()) + 5)
    assert (await quota(db, org))["total_minutes"] == 800
    billing = (await gql(MY_BILLING, token=org.admin.token))["data"]["me"]["organization"]["billing"]
    assert billing["cancelAtPeriodEnd"] is True and billing["minutesTotal"] == 800


async def test_billing_is_visible_to_the_organization_only(gql, make_organization, make_user, stripe_api, db):
    org, rival = await make_organization(), await make_organization("Rival Sales Academy")
    await subscribed(gql, stripe_api, org, "PRO")
    for account in (org.admin, org.members[0], await make_user("admin")):
        node = (await gql(ORG_BILLING, {"id": org.id}, token=account.token))["data"]["node"]
        assert node["billing"]["plan"] == "PRO" and node["billing"]["subscriptionStatus"] == "ACTIVE"
    for account in (rival.admin, rival.members[0], await make_user("manager")):
        body = await gql(ORG_BILLING, {"id": org.id}, token=account.token)
        assert body["data"]["node"] is None and "errors" not in body
    assert (await gql(ORG_BILLING, {"id": org.id}))["data"]["node"] is None
    own = (await gql(MY_BILLING, token=rival.admin.token))["data"]["me"]["organization"]["billing"]
    assert (own["plan"], own["subscriptionStatus"], own["minutesTotal"]) == ("FREE", None, 60)


async def test_billing_of_many_organizations_is_one_statement(gql, make_organization, make_user, server, stripe_api):
    orgs = [await make_organization(f"Org {i}", members=0) for i in range(4)]
    admin = await make_user("admin")
    query = "query { " + " ".join(
        f'o{i}: node(id: "{o.id}") {{ ... on Organization {{ billing {{ minutesTotal subscriptionStatus }} }} }}'
        for i, o in enumerate(orgs)) + " }"
    server.statements.reset()
    body = await gql(query, token=admin.token)
    assert all(body["data"][f"o{i}"]["billing"]["minutesTotal"] == 60 for i in range(4))
    billing_reads = [s for s in server.statements.statements if "billing_subscriptions" in s]
    assert len(billing_reads) == 1


# ---------------------------------------------------------------- a downgrade while a session runs

PERSONA = """mutation($input: CreateBuyerPersonaInput!) { createBuyerPersona(input: $input) {
  persona { id } userErrors { code message } } }"""
PRODUCT = """mutation($input: CreateTrainingProductInput!) { createTrainingProduct(input: $input) {
  product { id } userErrors { code message } } }"""
SCENARIO = """mutation($input: CreateScenarioInput!) { createScenario(input: $input) {
  scenario { id } userErrors { field code message } } }"""
START = """mutation($id: ID!) { startTrainingSession(input: {scenarioId: $id}) {
  session { id status } userErrors { code message } } }"""
APPEND = """mutation($id: ID!, $text: String!) { appendTranscript(input: {sessionId: $id, role: "trainee", text: $text}) {
  session { status } userErrors { code message } } }"""
COMPLETE = """mutation($id: ID!) { completeTrainingSession(input: {sessionId: $id}) {
  session { status overallScore } userErrors { code message } } }"""


async def product_scenario(gql, admin):
    persona = await gql(PERSONA, {"input": {"type": "Office Manager", "personality": "busy"}}, token=admin.token)
    product = await gql(PRODUCT, {"input": {"name": "Cloud Phones", "features": ["call recording"]}}, token=admin.token)
    body = await gql(SCENARIO, {"input": {
        "name": "Phone system demo", "description": "A small office replacing its phones.", "difficulty": 1,
        "personaId": persona["data"]["createBuyerPersona"]["persona"]["id"],
        "productId": product["data"]["createTrainingProduct"]["product"]["id"], "preset": "RETAIL"}},
        token=admin.token)
    assert body["data"]["createScenario"]["userErrors"] == [], body
    return body["data"]["createScenario"]["scenario"]["id"]


async def test_a_downgrade_mid_session_applies_cleanly_and_the_session_completes(gql, make_organization, stripe_api, db, clock):
    org = await make_organization()
    subscription = await subscribed(gql, stripe_api, org, "PRO")
    await delivered(gql, "invoice.paid", FakeStripe.invoice(subscription))
    trainee = org.members[0]
    started = (await gql(START, {"id": await product_scenario(gql, org.admin)}, token=trainee.token)
               )["data"]["startTrainingSession"]
    assert started["userErrors"] == []
    session_id = started["session"]["id"]
    ok = await gql(APPEND, {"id": session_id, "text": "Hello! What made you look at new phones?"}, token=trainee.token)
    assert ok["data"]["appendTranscript"]["userErrors"] == []
    before = dict(await db.fetchrow("SELECT * FROM training_sessions"))

    clock.advance(minutes=2)
    downgraded = stripe_api.subscription(subscription["customer"], PRICE_BASIC, subscription_id=subscription["id"])
    await delivered(gql, "customer.subscription.updated", downgraded, created=int(time.time()) + 5)
    assert await plan_of(db, org) == "basic"
    assert tuple(await quota(db, org))[:2] == (600, 0)
    assert dict(await db.fetchrow("SELECT * FROM training_sessions")) == before  # the running session untouched

    more = await gql(APPEND, {"id": session_id, "text": "Call recording keeps every order on file."},
                     token=trainee.token)
    assert more["data"]["appendTranscript"]["userErrors"] == []
    clock.advance(minutes=1)
    done = (await gql(COMPLETE, {"id": session_id}, token=trainee.token))["data"]["completeTrainingSession"]
    assert done["userErrors"] == [] and done["session"]["status"] == "COMPLETED"
    assert (await quota(db, org))["used_minutes"] == 3  # charged after the downgrade, to the new allowance
    billing = (await gql(MY_BILLING, token=org.admin.token))["data"]["me"]["organization"]["billing"]
    assert (billing["plan"], billing["minutesTotal"], billing["minutesUsed"]) == ("BASIC", 600, 3)


VOICE = "mutation($id: ID!) { createVoiceSession(sessionId: $id) { ephemeralKey userErrors { code message } } }"


async def test_a_downgrade_by_webhook_stops_voice_turns_and_the_session_still_completes(
        tmp_path, database_url, clock, fake_openai, make_organization, gql, stripe_api, db):
    from tests.fakes.openai_server import API_KEY as OPENAI_KEY

    settings = make_settings(tmp_path, STRIPE_API_BASE=stripe_api.url, OPENAI_API_KEY=OPENAI_KEY,
                             OPENAI_BASE_URL=fake_openai.url, **STRIPE_SETTINGS)
    with LiveServer(settings, database_url, clock) as live:
        client = GraphQLClient(live.url)
        try:
            org = await make_organization()
            subscription = await subscribed(client, stripe_api, org, "PRO")
            trainee = org.members[0]
            session_id = (await client(START, {"id": await product_scenario(client, org.admin)}, token=trainee.token)
                          )["data"]["startTrainingSession"]["session"]["id"]
            voice = (await client(VOICE, {"id": session_id}, token=trainee.token))["data"]["createVoiceSession"]
            assert voice["userErrors"] == [] and voice["ephemeralKey"]
            said = await client(APPEND, {"id": session_id, "text": "Hello, what brings you in?"}, token=trainee.token)
            assert said["data"]["appendTranscript"]["userErrors"] == []
            before = dict(await db.fetchrow("SELECT * FROM training_sessions"))

            downgraded = stripe_api.subscription(subscription["customer"], PRICE_BASIC, subscription_id=subscription["id"])
            await delivered(client, "customer.subscription.updated", downgraded, created=int(time.time()) + 5)
            assert await plan_of(db, org) == "basic" and (await quota(db, org))["total_minutes"] == 600
            assert dict(await db.fetchrow("SELECT * FROM training_sessions")) == before

            cut = await client(APPEND, {"id": session_id, "text": "Shall we talk price?"}, token=trainee.token)
            assert cut["data"]["appendTranscript"]["userErrors"][0]["code"] == "PLAN_REQUIRED"
            assert await db.fetchval("SELECT count(*) FROM training_turns") == 1  # nothing partial
            done = (await client(COMPLETE, {"id": session_id}, token=trainee.token))["data"]["completeTrainingSession"]
            assert done["userErrors"] == [] and done["session"]["status"] == "COMPLETED"
        finally:
            await client.close()


async def test_unbilled_organizations_get_their_minutes_back_every_period(gql, make_organization, stripe_api, db, server, clock):
    """FREE organizations have no invoices: a job (every process, SKIP LOCKED) starts their
    period and resets the minutes used when it ends; a subscribed organization waits for Stripe."""
    from forecourt import jobs

    free, paid = await make_organization("Free Co"), await make_organization("Paid Co")
    await subscribed(gql, stripe_api, paid, "BASIC")
    for org in (free, paid):
        await db.execute("UPDATE minute_quotas SET used_minutes = 50, period_end = NULL WHERE organization_id = $1",
                         org.raw_id)
    state = server.app.state.forecourt
    assert await server.call(jobs.renew_minutes, state) == 0  # a period starts; usage kept
    _total, used, period_end = await quota(db, free)
    assert used == 50 and period_end == clock.now + timedelta(days=30)
    assert (await quota(db, paid))["period_end"] is None  # Stripe's invoices drive paid periods

    clock.advance(days=29)
    assert await server.call(jobs.renew_minutes, state) == 0
    clock.advance(days=65)  # more than two periods later: one reset, the period catches up
    await db.execute("INSERT INTO member_minute_limits (user_id, organization_id, limit_minutes, used_minutes) "
                     "VALUES ($1, $2, 30, 7)", free.admin.raw_id, free.raw_id)
    assert await server.call(jobs.renew_minutes, state) == 1
    assert await db.fetchval("SELECT used_minutes FROM member_minute_limits") == 0  # members start again too
    _total, used, renewed_end = await quota(db, free)
    assert used == 0 and renewed_end == period_end + timedelta(days=90) and renewed_end > clock.now
    assert (await quota(db, paid))["used_minutes"] == 50
    assert await server.call(jobs.renew_minutes, state) == 0  # once per period
