"""Organizations (dealerships, training companies) and their plan tiers (seeds 002, 003)."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from forecourt.domain.errors import DomainError
from forecourt.domain.text import clean_text

ORGANIZATION_NAME_MAX = 120


class PlanTier(enum.StrEnum):
    FREE = "free"
    BASIC = "basic"
    PRO = "pro"


class OrgRole(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


# Monthly training minutes included in each plan.
PLAN_MINUTES: dict[PlanTier, int] = {
    PlanTier.FREE: 60,
    PlanTier.BASIC: 600,
    PlanTier.PRO: 3000,
}


def validate_organization_name(name: str | None) -> str:
    cleaned = clean_text(name, "name", max_length=ORGANIZATION_NAME_MAX, required=True, name=True)
    assert cleaned is not None
    return cleaned


def check_can_create_organization(current_organization_id: object | None) -> None:
    if current_organization_id is not None:
        raise DomainError(
            "ALREADY_IN_ORGANIZATION", "you already belong to an organization"
        )


# ---------------------------------------------------------------- membership

INVITATION_TTL = timedelta(days=7)


class InvitationStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"


def check_invitation_open(status: InvitationStatus, expires_at: datetime, now: datetime) -> None:
    if status is not InvitationStatus.PENDING:
        raise DomainError("INVITATION_CLOSED", f"This invitation was already {status.value}", ("invitationId",))
    if now >= expires_at:
        raise DomainError("INVITATION_EXPIRED", "This invitation has expired; ask for a new one", ("invitationId",))


def check_can_join(current_organization_id: object | None) -> None:
    if current_organization_id is not None:
        raise DomainError("ALREADY_IN_ORGANIZATION", "Leave your current organization first")


def check_keeps_an_admin(leaving_role: str | None, admins: int, members: int) -> None:
    """An organization with people in it always has an admin to manage it."""
    if leaving_role == OrgRole.ADMIN.value and admins <= 1 and members > 1:
        raise DomainError("LAST_ADMIN", "Make another member an admin first: an organization needs one")
