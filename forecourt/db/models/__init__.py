"""All models, imported so the metadata is complete (alembic, tests)."""

from forecourt.db.models.auctions import Auction, AuctionEvent, Bid
from forecourt.db.models.audit import AdminAuditLog
from forecourt.db.models.catalog import CatalogEntry, Vehicle
from forecourt.db.models.identity import ApiToken, KycApplication, RefreshToken, User
from forecourt.db.models.organizations import (
    BillingSubscription,
    MinuteQuota,
    Organization,
    OrganizationInvitation,
)
from forecourt.db.models.training import (
    BuyerPersona,
    MemberMinuteLimit,
    Scenario,
    TrainingEvent,
    TrainingFeedback,
    TrainingProduct,
    TrainingSession,
    TranscriptTurn,
    UsageRecord,
)
from forecourt.db.models.valuation import VehicleValuation
from forecourt.db.models.wallet import LedgerEntry, Payment, Wallet, WebhookEvent

__all__ = [
    "AdminAuditLog",
    "ApiToken",
    "Auction",
    "AuctionEvent",
    "Bid",
    "BillingSubscription",
    "BuyerPersona",
    "CatalogEntry",
    "KycApplication",
    "LedgerEntry",
    "MemberMinuteLimit",
    "MinuteQuota",
    "Organization",
    "OrganizationInvitation",
    "Payment",
    "RefreshToken",
    "Scenario",
    "TrainingEvent",
    "TrainingFeedback",
    "TrainingProduct",
    "TrainingSession",
    "TranscriptTurn",
    "UsageRecord",
    "User",
    "Vehicle",
    "VehicleValuation",
    "Wallet",
    "WebhookEvent",
]
