"""Organizations' plans billed with Stripe Billing (seeds 002, 003).

An organization's admin starts a Checkout for BASIC or PRO; Stripe's webhooks then say what
the organization has: `customer.subscription.*` carry the subscription (plan from its price,
status, period, trial), `invoice.paid` opens a new billing period (the minutes used start
again), `checkout.session.completed` links the customer and subscription. Each event applies
once (webhook_events), an event older than the last one applied to its subscription is
ignored, an event naming no organization of ours is acknowledged and logged, and a malformed
one is refused (InvalidEvent).

Lock order, whoever writes: organization -> billing subscription -> minute quota.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from forecourt.auth.principal import Principal
from forecourt.config import Settings
from forecourt.db.models import BillingSubscription, MinuteQuota, Organization
from forecourt.domain import billing as rules
from forecourt.domain.errors import DomainError
from forecourt.domain.organizations import PLAN_MINUTES, OrgRole, PlanTier
from forecourt.domain.webhooks import timestamp
from forecourt.integrations.openai import not_configured
from forecourt.integrations.stripe import Stripe, WebhookEvent
from forecourt.services import Work, training
from forecourt.services.wallet import first_delivery

log = logging.getLogger(__name__)


def prices(settings: Settings) -> dict[str, PlanTier]:
    """Configured Stripe price id -> the plan it sells."""
    configured = {settings.stripe_price_basic: PlanTier.BASIC, settings.stripe_price_pro: PlanTier.PRO}
    return {price: plan for price, plan in configured.items() if price}


def price_for(settings: Settings, plan: PlanTier) -> str | None:
    price = {PlanTier.BASIC: settings.stripe_price_basic, PlanTier.PRO: settings.stripe_price_pro}.get(plan)
    return price or None


# ---------------------------------------------------------------- access


def can_manage_billing(principal: Principal | None, organization_id: uuid.UUID) -> bool:
    """Platform admins, and the organization's own admins."""
    return principal is not None and (
        principal.is_admin
        or (principal.organization_id == organization_id and principal.org_role == OrgRole.ADMIN.value)
    )


async def _organization_to_bill(work: Work, organization_id: uuid.UUID | None, *, lock: bool) -> Organization:
    actor = work.actor
    assert actor is not None
    target = organization_id or actor.organization_id
    if target is None:
        raise DomainError("NO_ORGANIZATION", "Plans belong to an organization: create or join one first",
                          ("organizationId",))
    # Another organization is "not found" to anyone but platform admins: no probing.
    if not (actor.is_admin or actor.organization_id == target):
        raise DomainError("NOT_FOUND", "No such organization", ("organizationId",))
    stmt = select(Organization).where(Organization.id == target)
    org = await work.session.scalar(stmt.with_for_update() if lock else stmt)
    if org is None:
        raise DomainError("NOT_FOUND", "No such organization", ("organizationId",))
    if not can_manage_billing(actor, org.id):
        raise DomainError("NOT_ORGANIZATION_ADMIN", "Only the organization's admins manage its plan")
    return org


async def _subscriptions(work: Work, organization_id: uuid.UUID) -> list[tuple[PlanTier, rules.SubscriptionStatus]]:
    rows = await work.session.execute(
        select(BillingSubscription.plan, BillingSubscription.status)
        .where(BillingSubscription.organization_id == organization_id)
    )
    return [(PlanTier(plan), rules.SubscriptionStatus(status)) for plan, status in rows]


# ---------------------------------------------------------------- checkout and portal


async def start_checkout(
    work: Work, *, stripe: Stripe | None, settings: Settings, plan: PlanTier,
    success_url: str | None, cancel_url: str | None, organization_id: uuid.UUID | None = None,
) -> str:
    """A Stripe Checkout page subscribing the organization to `plan`; its URL. The organization
    gets one Stripe Customer, created on its first checkout and reused afterwards."""
    org = await _organization_to_bill(work, organization_id, lock=True)
    rules.check_checkout_plan(plan)
    success, cancel = rules.validate_checkout_urls(success_url, cancel_url,
                                                   allow_local_http=settings.is_development)
    price = price_for(settings, plan)
    if stripe is None:
        raise not_configured("Stripe")
    if not price:
        raise DomainError("PROVIDER_NOT_CONFIGURED",
                          f"No Stripe price is configured for the {plan.name} plan", ("plan",))
    rules.check_no_live_subscription(await _subscriptions(work, org.id))

    created_customer = org.stripe_customer_id is None
    if created_customer:
        # Under the organization's row lock, and with a key per organization: one customer.
        org.stripe_customer_id = await stripe.create_customer(
            name=org.name, metadata={"organization_id": str(org.id)},
            idempotency_key=f"organization-customer-{org.id}",
        )
        await work.session.flush()
    metadata = {"organization_id": str(org.id), "plan": plan.value}
    try:
        checkout = await stripe.create_subscription_checkout(
            customer=org.stripe_customer_id, price=price, success_url=success, cancel_url=cancel,
            client_reference_id=str(org.id), metadata=metadata,
            idempotency_key=f"plan-checkout-{org.id}-{uuid.uuid4().hex}",
        )
    except DomainError as err:
        # The customer exists at Stripe now; keep the link so the next try reuses it.
        raise DomainError(err.code, err.message, err.field, persist=created_customer) from None
    return checkout.url


async def open_portal(
    work: Work, *, stripe: Stripe | None, settings: Settings, return_url: str | None,
    organization_id: uuid.UUID | None = None,
) -> str:
    """Stripe's Billing Portal for the organization: change plan, card, or cancel."""
    org = await _organization_to_bill(work, organization_id, lock=False)
    url = rules.validate_redirect_url(return_url, "returnUrl", allow_local_http=settings.is_development)
    if stripe is None:
        raise not_configured("Stripe")
    if org.stripe_customer_id is None:
        raise DomainError("NO_BILLING_ACCOUNT", "This organization has no billing account yet: start a plan checkout")
    return await stripe.create_portal_session(customer=org.stripe_customer_id, return_url=url)


# ---------------------------------------------------------------- webhooks

CHECKOUT_COMPLETED = "checkout.session.completed"
INVOICE_PAID = "invoice.paid"
SUBSCRIPTION_EVENTS = "customer.subscription."


def handles(event_type: str) -> bool:
    return event_type in (CHECKOUT_COMPLETED, INVOICE_PAID) or event_type.startswith(SUBSCRIPTION_EVENTS)


async def stripe_event(work: Work, event: WebhookEvent, plans_by_price: Mapping[str, PlanTier]) -> None:
    """Apply a verified Stripe Billing event once, whatever the order and number of deliveries.
    A malformed object raises InvalidEvent: the delivery is refused and nothing is written."""
    if not await first_delivery(work.session, "stripe", event.id, event.type):
        return
    if event.type == CHECKOUT_COMPLETED:
        completed = rules.parse_checkout(event.data)
        if completed is not None:
            await _checkout_completed(work, event, completed)
    elif event.type == INVOICE_PAID:
        await _invoice_paid(work, event, rules.parse_invoice(event.data))
    elif event.type.startswith(SUBSCRIPTION_EVENTS):
        await _subscription_changed(work, event, rules.parse_subscription(event.data), plans_by_price)


async def _find_organization(
    work: Work, *, subscription: str | None = None, ref: str | None = None, customer: str | None = None,
) -> uuid.UUID | None:
    """The organization an event is about: by the subscription we already know, the
    organization id our checkout put in the metadata, or the Stripe customer."""
    if subscription:
        found = await work.session.scalar(
            select(BillingSubscription.organization_id)
            .where(BillingSubscription.stripe_subscription_id == subscription))
        if found:
            return found
    if ref:
        try:
            org_id = uuid.UUID(str(ref))
        except ValueError:
            org_id = None
        if org_id and await work.session.scalar(select(Organization.id).where(Organization.id == org_id)):
            return org_id
    if customer:
        return await work.session.scalar(select(Organization.id).where(Organization.stripe_customer_id == customer))
    return None


async def _lock_organization(work: Work, organization_id: uuid.UUID) -> Organization:
    org = await work.session.scalar(select(Organization).where(Organization.id == organization_id).with_for_update())
    assert org is not None
    return org


async def _lock_quota(work: Work, organization_id: uuid.UUID) -> MinuteQuota:
    await work.session.execute(
        insert(MinuteQuota).values(id=uuid.uuid4(), organization_id=organization_id,
                                   total_minutes=PLAN_MINUTES[PlanTier.FREE])
        .on_conflict_do_nothing(index_elements=["organization_id"]))
    quota = await work.session.scalar(
        select(MinuteQuota).where(MinuteQuota.organization_id == organization_id).with_for_update())
    assert quota is not None
    return quota


async def _checkout_completed(work: Work, event: WebhookEvent, completed: rules.CheckoutCompleted) -> None:
    org_id = await _find_organization(work, ref=completed.organization_ref, customer=completed.customer)
    if org_id is None:
        log.warning("stripe event %s: checkout %s names no organization of ours", event.id, completed.session_id)
        return
    org = await _lock_organization(work, org_id)
    if completed.customer and org.stripe_customer_id != completed.customer:
        taken = await work.session.scalar(
            select(Organization.id).where(Organization.stripe_customer_id == completed.customer))
        if org.stripe_customer_id is None and taken is None:
            org.stripe_customer_id = completed.customer
        else:
            log.warning("stripe event %s: checkout %s for organization %s names customer %s; kept %s",
                        event.id, completed.session_id, org.id, completed.customer, org.stripe_customer_id)
    if completed.subscription and completed.plan:
        # A placeholder until the subscription's own events say more; with no event time, so
        # any of them (even one created before this checkout event) applies over it.
        await work.session.execute(
            insert(BillingSubscription).values(
                id=uuid.uuid4(), organization_id=org.id, stripe_subscription_id=completed.subscription,
                plan=completed.plan.value, status=rules.SubscriptionStatus.INCOMPLETE.value)
            .on_conflict_do_nothing(index_elements=["stripe_subscription_id"]))


async def _subscription_changed(work: Work, event: WebhookEvent, state: rules.SubscriptionState,
                                plans_by_price: Mapping[str, PlanTier]) -> None:
    org_id = await _find_organization(work, subscription=state.id, ref=state.organization_ref,
                                      customer=state.customer)
    if org_id is None:
        log.warning("stripe event %s: subscription %s (customer %s) names no organization of ours",
                    event.id, state.id, state.customer)
        return
    org = await _lock_organization(work, org_id)
    plan = rules.plan_for_price(state.price_id, plans_by_price)
    if plan is None:
        log.warning("stripe event %s: subscription %s has price %s, which sells no plan here",
                    event.id, state.id, state.price_id)
    await work.session.execute(
        insert(BillingSubscription).values(
            id=uuid.uuid4(), organization_id=org.id, stripe_subscription_id=state.id,
            plan=(plan or PlanTier.FREE).value, status=state.status.value)
        .on_conflict_do_nothing(index_elements=["stripe_subscription_id"]))
    row = await work.session.scalar(
        select(BillingSubscription).where(BillingSubscription.stripe_subscription_id == state.id).with_for_update())
    assert row is not None
    created = timestamp(event.created)
    if rules.is_stale(created, row.last_event_at):
        log.info("stripe event %s (%s) for subscription %s is older than the state applied; ignored",
                 event.id, event.type, state.id)
        return
    if plan is not None:
        row.plan = plan.value
    row.status = state.status.value
    row.current_period_start = state.period_start
    row.current_period_end = state.period_end
    row.cancel_at_period_end = state.cancel_at_period_end
    row.trial_end = state.trial_end
    if created is not None:
        row.last_event_at = created
    if state.trial_end is not None:
        org.trial_ends_at = state.trial_end
    await work.session.flush()

    old, new = PlanTier(org.plan), rules.effective_plan(await _subscriptions(work, org.id))
    if new != old:
        # A plan change sets the new plan's allowance; an event that keeps the plan keeps the
        # total (a platform admin may have allocated more). Running sessions keep their rows:
        # their voice turns check the plan as they come (PLAN_REQUIRED after a downgrade).
        org.plan = new.value
        quota = await _lock_quota(work, org.id)
        quota.total_minutes = PLAN_MINUTES[new]
        log.info("organization %s: plan %s -> %s (stripe event %s)", org.id, old.value, new.value, event.id)


async def _invoice_paid(work: Work, event: WebhookEvent, invoice: rules.InvoicePaid) -> None:
    if invoice.subscription is None:
        return  # not a subscription invoice
    org_id = await _find_organization(work, subscription=invoice.subscription, customer=invoice.customer)
    if org_id is None:
        log.warning("stripe event %s: invoice %s (customer %s) names no organization of ours",
                    event.id, invoice.id, invoice.customer)
        return
    await _lock_organization(work, org_id)
    quota = await _lock_quota(work, org_id)
    if rules.starts_new_period(quota.period_end, invoice.period_end):
        log.info("organization %s: new billing period to %s (invoice %s); %s minutes used before",
                 org_id, invoice.period_end, invoice.id, quota.used_minutes)
        quota.used_minutes = 0
        await training.reset_member_usage(work, org_id)
        quota.period_end = invoice.period_end


# ---------------------------------------------------------------- unbilled periods

RENEWAL_BATCH = 100


async def renew_unbilled_periods(work: Work) -> int:
    """Roll over the minute periods of organizations no Stripe subscription bills (their minutes
    come back every 30 days); paid organizations renew on `invoice.paid`. SKIP LOCKED lets every
    process run this; returns how many quotas were reset."""
    entitled = [status.value for status in rules.ENTITLED]
    quotas = list(await work.session.scalars(
        select(MinuteQuota)
        .where(
            (MinuteQuota.period_end.is_(None)) | (MinuteQuota.period_end <= work.now),
            ~select(BillingSubscription.id).where(
                BillingSubscription.organization_id == MinuteQuota.organization_id,
                BillingSubscription.status.in_(entitled),
            ).exists(),
        )
        .order_by(MinuteQuota.organization_id)
        .limit(RENEWAL_BATCH)
        .with_for_update(skip_locked=True)
    ))
    reset = 0
    for quota in quotas:
        quota.period_end, starts_again = rules.unbilled_period_end(quota.period_end, work.now)
        if starts_again:
            quota.used_minutes = 0
            await training.reset_member_usage(work, quota.organization_id)
            reset += 1
    await work.session.flush()
    return reset
