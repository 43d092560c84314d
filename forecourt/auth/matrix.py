"""The permission matrix: which actors may run each operation (seed 004 §5).

This table is the single source of truth; every root field carries the `Allowed` permission,
which looks itself up here, and tests walk every actor against every entry. An operation that
is missing here cannot be served (the schema refuses to build).
"""

from __future__ import annotations

from typing import Final

from forecourt.domain.identity import STAFF_ROLES, Role

GUEST: Final = "guest"
Actor = Role | str

SIGNED_IN: frozenset[Actor] = frozenset(Role)
ANYONE: frozenset[Actor] = SIGNED_IN | {GUEST}
# Seed 004: bidding is for users, dealers (and verified sellers); not for concierge/manager.
BIDDERS: frozenset[Actor] = frozenset({Role.USER, Role.VERIFIED_SELLER, Role.DEALER})
ADMINS: frozenset[Actor] = frozenset({Role.ADMIN})
SELLERS: frozenset[Actor] = frozenset({Role.DEALER, Role.VERIFIED_SELLER})
STAFF: frozenset[Actor] = STAFF_ROLES

PERMISSIONS: dict[str, frozenset[Actor]] = {
    # identity
    "Query.node": ANYONE,  # each node type applies its own visibility on top
    "Query.me": ANYONE,  # null for guests
    "Query.kycApplications": ADMINS,
    "Mutation.register": ANYONE,
    "Mutation.login": ANYONE,
    "Mutation.refreshToken": ANYONE,
    "Mutation.changePassword": SIGNED_IN,
    "Mutation.logout": SIGNED_IN,
    "Mutation.logoutEverywhere": SIGNED_IN,
    "Mutation.createApiToken": SIGNED_IN,
    "Mutation.revokeApiToken": SIGNED_IN,
    "Mutation.createOrganization": SIGNED_IN,
    # membership: the services check organization roles (admins invite and remove)
    "Query.organizationInvitations": SIGNED_IN,
    "Mutation.inviteToOrganization": SIGNED_IN,
    "Mutation.acceptOrganizationInvitation": SIGNED_IN,
    "Mutation.declineOrganizationInvitation": SIGNED_IN,
    "Mutation.removeOrganizationMember": SIGNED_IN,
    "Mutation.leaveOrganization": SIGNED_IN,
    # plans: organization admins for their own (checked per organization in the service)
    "Mutation.startPlanCheckout": SIGNED_IN,
    "Mutation.openBillingPortal": SIGNED_IN,
    "Mutation.setMinuteQuota": ADMINS,
    "Mutation.submitKyc": BIDDERS,
    "Mutation.applyForDealer": frozenset({Role.USER, Role.VERIFIED_SELLER}),
    "Mutation.reviewKycApplication": ADMINS,
    "Subscription.accountEvents": SIGNED_IN,
    # catalog & inventory: anyone may browse (seed 004); listing is for the trade
    "Query.vehicles": ANYONE,
    "Query.vehicle": ANYONE,
    "Query.vehicleByVin": ANYONE,
    "Query.valuation": ANYONE,  # seed 004: the valuation tool is the guests' lead magnet
    "Mutation.createVehicle": frozenset({Role.DEALER, Role.MANAGER, Role.ADMIN}),
    "Mutation.importVehicles": frozenset({Role.DEALER, Role.MANAGER, Role.ADMIN}),  # bulk: not sellers
    # auctions & wallet: anyone may watch; sellers auction their own vehicles, staff any
    "Query.auctions": ANYONE,
    "Query.auction": ANYONE,
    "Subscription.auctionEvents": ANYONE,
    "Mutation.createAuction": SELLERS | STAFF,
    "Mutation.cancelAuction": SELLERS | STAFF,
    "Mutation.placeBid": BIDDERS | ADMINS,  # seed 004 route matrix: not concierge or manager
    "Mutation.settleAuction": BIDDERS | ADMINS,
    "Mutation.declineOffer": BIDDERS | ADMINS,
    "Mutation.adjustWallet": ADMINS,
    "Mutation.fundWallet": SIGNED_IN,
    # sales training: for members of an organization; services check organization roles
    # (managers) and tenancy, since those are per organization rather than platform roles
    "Query.scenarios": SIGNED_IN,
    "Query.trainingSession": SIGNED_IN,
    "Query.trainingSessions": SIGNED_IN,
    "Query.trainingProgress": SIGNED_IN,
    "Query.leaderboard": SIGNED_IN,
    "Mutation.createScenario": SIGNED_IN,
    "Mutation.createBuyerPersona": SIGNED_IN,
    "Mutation.createTrainingProduct": SIGNED_IN,
    "Mutation.startTrainingSession": SIGNED_IN,
    "Mutation.appendTranscript": SIGNED_IN,
    "Mutation.completeTrainingSession": SIGNED_IN,
    "Mutation.cancelTrainingSession": SIGNED_IN,
    "Mutation.overrideTrainingScore": SIGNED_IN,
    "Mutation.createVoiceSession": SIGNED_IN,
    "Mutation.setMemberMinuteLimit": SIGNED_IN,
    "Query.memberMinuteLimits": SIGNED_IN,
    "Subscription.trainingSessionEvents": SIGNED_IN,
}

# Operations an API token may never perform, whatever its scopes: tokens cannot mint tokens,
# nor take over the account or its sessions.
SESSION_ONLY: frozenset[str] = frozenset({
    "Mutation.createApiToken", "Mutation.changePassword", "Mutation.logout", "Mutation.logoutEverywhere",
})
