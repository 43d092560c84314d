"""The wallet: ledger postings, the buying-power view, admin adjustments and provider credits.

Every balance change is one `transactions` row; the database trigger applies it to the wallet
in the same statement, so a balance can never drift from its ledger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.db.errors import violates
from forecourt.db.models import LedgerEntry, Wallet
from forecourt.domain.auctions import DEFAULT_DEPOSIT_PERCENT
from forecourt.domain.errors import DomainError
from forecourt.domain.money import ZERO
from forecourt.domain.text import clean_text
from forecourt.domain.wallet import EntryType, WalletView, check_adjustment, effect
from forecourt.services import Work, audit
from forecourt.subscriptions.channels import user_channel

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
    if not await work.session.scalar(text("SELECT 1 FROM users WHERE id = :u"), {"u": user_id}):
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
