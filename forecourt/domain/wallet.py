"""Wallet and ledger rules (seed 004): every change of a balance or a hold is a ledger row;
`available = balance - held`; the balance never goes negative; money committed to winning bids
cannot be withdrawn."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from forecourt.domain.errors import DomainError
from forecourt.domain.money import ZERO, money


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
