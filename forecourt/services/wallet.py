"""The wallet: ledger postings, the buying-power view, admin adjustments and provider credits.

Every balance change is one `transactions` row; the database trigger applies it to the wallet
in the same statement, so a balance can never drift from its ledger.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.db.errors import violates
from forecourt.db.models import LedgerEntry, Payment, Wallet
from forecourt.domain.auctions import DEFAULT_DEPOSIT_PERCENT
from forecourt.domain.errors import DomainError
from forecourt.domain.money import ZERO
from forecourt.domain.text import clean_text
from forecourt.domain.wallet import EntryType, WalletView, check_adjustment, effect, parse_payment_intent
from forecourt.integrations.stripe import (
    PaymentIntent,
    Stripe,
    WebhookEvent,
    from_minor_units,
)
from forecourt.services import Work, audit
from forecourt.subscriptions.channels import user_channel

log = logging.getLogger(__name__)

# What the owner of a wallet has promised on live auctions they lead: their proxy maximum or the
# price. Read after the wallet's row lock, so concurrent bids by one bidder see each other.
COMMITTED_SQL = text(
    """
    SELECT coalesce(sum(greatest(current_price, coalesce(leader_max, 0))), 0)
    FROM auctions WHERE status = 'live' AND leader_id = :user_id AND id <> :except_auction
    """
)
NO_AUCTION = uuid.UUID(int=0)


@dataclass(frozen=True)
class Posting:
    user_id: uuid.UUID
    type: EntryType
    amount: Decimal
    reference_type: str | None = None
    reference_id: uuid.UUID | None = None
    external_ref: str | None = None
    description: str | None = None
    created_by: uuid.UUID | None = None


async def post(session: AsyncSession, now: datetime, *postings: Posting) -> None:
    """Write ledger rows (the trigger moves the balances). A posting that would take a balance
    below zero or hold more than the balance fails the whole unit of work."""
    rows = []
    for p in postings:
        moved = effect(p.type, p.amount)
        rows.append({
            "id": uuid.uuid4(), "user_id": p.user_id, "type": p.type.value, "amount": p.amount,
            "balance_delta": moved.balance, "held_delta": moved.held, "status": "completed",
            "reference_type": p.reference_type, "reference_id": p.reference_id,
            "external_ref": p.external_ref, "description": p.description,
            "created_by": p.created_by, "created_at": now,
        })
    if not rows:
        return
    try:
        async with session.begin_nested():
            await session.execute(insert(LedgerEntry), rows)
    except IntegrityError as err:
        if violates(err, "ck_wallets_balance_not_negative") or violates(err, "ck_wallets_held_within_balance"):
            raise DomainError("INSUFFICIENT_FUNDS", "The wallet does not hold enough for this") from None
        raise


async def lock(session: AsyncSession, user_ids: list[uuid.UUID]) -> None:
    """Lock wallets (creating missing ones) in user-id order, the order every writer uses."""
    ids = sorted(set(user_ids))
    await session.execute(
        text("INSERT INTO wallets (user_id) SELECT unnest(CAST(:ids AS uuid[])) ORDER BY 1 "
             "ON CONFLICT (user_id) DO NOTHING"), {"ids": ids})
    await session.execute(
        select(Wallet.user_id).where(Wallet.user_id.in_(ids)).order_by(Wallet.user_id).with_for_update()
    )


async def view(session: AsyncSession, user_id: uuid.UUID, *, lock_first: bool = False,
               except_auction: uuid.UUID = NO_AUCTION) -> WalletView:
    """The wallet as the rules see it; `lock_first` takes its row lock before reading."""
    if lock_first:
        await lock(session, [user_id])
    row = (await session.execute(
        select(Wallet.balance, Wallet.held).where(Wallet.user_id == user_id)
    )).first()
    committed = await session.scalar(COMMITTED_SQL, {"user_id": user_id, "except_auction": except_auction})
    balance, held = row if row else (ZERO, ZERO)
    return WalletView(balance=balance, held=held, committed=committed or ZERO)


async def adjust(work: Work, user_id: uuid.UUID, amount: Decimal, reason: str) -> WalletView:
    """An admin's manual adjustment (seed 004: disputes), audited."""
    assert work.actor is not None
    reason = clean_text(reason, "reason", max_length=500, required=True, multiline=True)
    if not await user_exists(work.session, user_id):
        raise DomainError("NOT_FOUND", "No such user", ("userId",))
    before = await view(work.session, user_id, lock_first=True)
    check_adjustment(before, amount, DEFAULT_DEPOSIT_PERCENT)
    await post(work.session, work.now, Posting(
        user_id, EntryType.MANUAL_ADJUSTMENT, amount, reference_type="admin_adjustment",
        description=reason, created_by=work.actor.user_id,
    ))
    audit.record(work, "wallet.adjust", target_type="user", target_id=user_id,
                 old={"balance": str(before.balance)}, new={"balance": str(before.balance + amount)},
                 reason=reason)
    after = await view(work.session, user_id)
    work.events.add(user_channel(user_id), {"type": "WALLET_CHANGED", "balance": str(after.balance)})
    return after


# ---------------------------------------------------------------- provider payments


async def fund(work: Work, amount: Decimal, stripe: Stripe) -> PaymentIntent:
    """Start a wallet top-up: a Stripe PaymentIntent the app confirms with Stripe.js; the
    wallet is credited when Stripe's webhook says the payment succeeded."""
    assert work.actor is not None
    if amount <= 0 or amount > MAX_FUNDING:
        raise DomainError("INVALID_AMOUNT", f"Fund between 0.01 and {MAX_FUNDING}", ("amount",))
    payment_id = uuid.uuid4()
    intent = await stripe.create_payment_intent(
        amount, metadata={"user_id": str(work.actor.user_id), "payment_id": str(payment_id)},
        idempotency_key=f"fund-wallet-{payment_id}",
    )
    await work.session.execute(
        insert(Payment).values(id=payment_id, user_id=work.actor.user_id, provider="stripe",
                               provider_ref=intent.id, amount=amount, currency=stripe.currency,
                               status="pending")
        .on_conflict_do_nothing(index_elements=["provider", "provider_ref"])
    )
    return intent


async def stripe_event(work: Work, event: WebhookEvent, wallet_currency: str) -> None:
    """Apply a verified Stripe event once, whatever the order and number of deliveries.

    A malformed intent raises InvalidEvent (the delivery is refused and nothing is written); an
    intent that is not a top-up of ours is recorded as handled, logged by id only, and ignored."""
    if not await first_delivery(work.session, "stripe", event.id, event.type):
        return
    status = STRIPE_INTENT_STATUS.get(event.type)
    if status is None:
        return  # recorded; nothing to do for this type
    intent = parse_payment_intent(event.data, status)
    amount = from_minor_units(intent.amount, intent.currency)
    if intent.user_id is None or not await user_exists(work.session, intent.user_id):
        reason = "names no user of ours"
    elif intent.currency != wallet_currency.lower():
        # Acknowledged, not refused: a redelivery carries the same currency, and Stripe would
        # retry a refusal for days. The log is the cue to refund it by hand.
        reason = f"is in {intent.currency.upper()}, wallets hold {wallet_currency.upper()}"
    elif amount > MAX_FUNDING:
        reason = "is larger than any top-up this server asks for"
    else:
        await payment_settled(work, "stripe", intent.id, status, user_id=intent.user_id,
                              amount=amount, currency=intent.currency)
        return
    log.warning("stripe event %s: payment intent %s %s; not credited", event.id, intent.id, reason)


async def user_exists(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return bool(await session.scalar(text("SELECT 1 FROM users WHERE id = :u"), {"u": user_id}))


async def first_delivery(session: AsyncSession, provider: str, event_id: str, event_type: str) -> bool:
    """Remember a provider event; False if it was handled before (redelivery)."""
    inserted = await session.execute(
        text("INSERT INTO webhook_events (provider, event_id, type) VALUES (:p, :e, :t) "
             "ON CONFLICT DO NOTHING RETURNING 1"),
        {"p": provider, "e": event_id, "t": event_type},
    )
    return inserted.first() is not None


MAX_FUNDING = Decimal("100000000.00")
STRIPE_INTENT_STATUS = {
    "payment_intent.processing": "processing",
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.canceled": "canceled",
}
PAYMENT_STATUS_RANK = {"pending": 0, "processing": 1, "failed": 2, "canceled": 2, "succeeded": 3}


async def payment_settled(work: Work, provider: str, provider_ref: str, status: str, *,
                          user_id: uuid.UUID, amount: Decimal, currency: str) -> bool:
    """Apply a provider's payment status. Events may arrive in any order and more than once: a
    status never moves backwards, and a success is credited exactly once (a unique index on the
    ledger's external reference backs this up). Returns True when the wallet was credited."""
    await work.session.execute(
        text("INSERT INTO payments (id, user_id, provider, provider_ref, amount, currency, status) "
             "VALUES (:id, :u, :p, :r, :a, :c, 'pending') ON CONFLICT (provider, provider_ref) DO NOTHING"),
        {"id": uuid.uuid4(), "u": user_id, "p": provider, "r": provider_ref, "a": amount, "c": currency},
    )
    payment = (await work.session.execute(
        select(Payment).where(Payment.provider == provider, Payment.provider_ref == provider_ref)
        .with_for_update()
    )).scalar_one()
    if payment.status == "succeeded" or PAYMENT_STATUS_RANK[status] <= PAYMENT_STATUS_RANK[payment.status]:
        return False  # a late or repeated event never moves a payment backwards
    payment.status = status
    if status != "succeeded":
        return False
    if amount != payment.amount:
        log.warning("payment %s: %s received, %s requested", provider_ref, amount, payment.amount)
    await post(work.session, work.now, Posting(
        payment.user_id, EntryType.DEPOSIT, amount, reference_type="payment",
        reference_id=payment.id, external_ref=f"{provider}:{provider_ref}",
        description=f"Wallet funding ({provider})",
    ))
    work.events.add(user_channel(payment.user_id), {"type": "WALLET_CHANGED"})
    return True
