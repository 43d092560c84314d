"""Wallet and ledger rules (seed 004): every change of a balance or a hold is a ledger row;
`available = balance - held`; the balance never goes negative; money committed to winning bids
cannot be withdrawn."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from forecourt.domain.errors import DomainError
from forecourt.domain.money import ZERO, money
from forecourt.domain.webhooks import InvalidEvent, object_id, positive_integer


class EntryType(enum.StrEnum):
    DEPOSIT = "deposit"  # wallet funding (Stripe)
    WITHDRAWAL = "withdrawal"
    MANUAL_ADJUSTMENT = "manual_adjustment"  # admin, audited; either sign
    BID_DEPOSIT_HOLD = "bid_deposit_hold"  # a won auction's deposit, held until settlement
    BID_DEPOSIT_RELEASE = "bid_deposit_release"
    AUCTION_PAYMENT = "auction_payment"  # the buyer pays the hammer price
    AUCTION_PROCEEDS = "auction_proceeds"  # the seller receives it
    DEPOSIT_FORFEIT = "deposit_forfeit"  # a winner who did not pay loses the held deposit
    REFUND = "refund"


@dataclass(frozen=True)
class Effect:
    """How one ledger row moves the balance and the held amount."""

    balance: Decimal
    held: Decimal


def effect(entry: EntryType, amount: Decimal) -> Effect:
    """`amount` is the row's signed amount as the owner sees it (money in is positive)."""
    match entry:
        case EntryType.BID_DEPOSIT_HOLD:
            return Effect(ZERO, amount)
        case EntryType.BID_DEPOSIT_RELEASE:
            return Effect(ZERO, -amount)
        case EntryType.DEPOSIT_FORFEIT:
            return Effect(-amount, -amount)
        case EntryType.AUCTION_PAYMENT | EntryType.WITHDRAWAL:
            return Effect(-amount, ZERO)
        case _:
            return Effect(amount, ZERO)


@dataclass(frozen=True)
class WalletView:
    balance: Decimal
    held: Decimal
    committed: Decimal  # proxy maxima / prices of the auctions the owner currently leads

    @property
    def available(self) -> Decimal:
        return self.balance - self.held

    def buying_power(self, deposit_percent: Decimal) -> Decimal:
        """The largest further winning bid the 20% deposit rule still allows."""
        return max(ZERO, money(self.available * 100 / deposit_percent - self.committed))


def check_adjustment(wallet: WalletView, amount: Decimal, deposit_percent: Decimal) -> None:
    """An admin adjustment: non-zero, never below zero, never into committed money."""
    if amount == 0:
        raise DomainError("INVALID_AMOUNT", "An adjustment cannot be zero", ("amount",))
    if amount > 0:
        return
    if wallet.balance + amount < 0 or wallet.available + amount < 0:
        raise DomainError(
            "INSUFFICIENT_FUNDS",
            f"The wallet has {wallet.available} available; it cannot go below zero",
            ("amount",),
        )
    required = money(wallet.committed * deposit_percent / 100)
    if wallet.available + amount < required:
        raise DomainError(
            "FUNDS_COMMITTED",
            f"{required} backs the owner's winning bids and cannot be taken out while they stand",
            ("amount",),
        )


# ---------------------------------------------------------------- provider payments


@dataclass(frozen=True)
class IntentUpdate:
    """A `payment_intent.*` event's intent, as far as wallet funding is concerned."""

    id: str
    status: str
    amount: int  # minor units: what was received for a success, what was asked otherwise
    currency: str  # lower case, as Stripe writes it
    user_id: uuid.UUID | None  # metadata.user_id, set by our fundWallet; None: not a top-up of ours


def parse_payment_intent(obj: Mapping[str, Any], status: str) -> IntentUpdate:
    """Read a verified intent; InvalidEvent when it lacks what crediting a wallet needs."""
    intent_id = object_id(obj.get("id"))
    if intent_id is None or obj.get("object", "payment_intent") != "payment_intent":
        raise InvalidEvent("not a payment intent")
    currency = obj.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise InvalidEvent(f"payment intent {intent_id} has no valid currency: {currency!r}")
    amount_field = "amount_received" if status == "succeeded" else "amount"
    amount = positive_integer(obj.get(amount_field), amount_field)
    labels = obj.get("metadata")
    if not isinstance(labels, dict):
        raise InvalidEvent(f"payment intent {intent_id} has no metadata")  # Stripe always sends it
    try:
        user_id = uuid.UUID(labels.get("user_id"))
    except (TypeError, ValueError, AttributeError):
        user_id = None
    return IntentUpdate(intent_id, status, amount, currency.lower(), user_id)
