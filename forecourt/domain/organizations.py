"""Organizations (dealerships, training companies) and their plan tiers (seeds 002, 003)."""

from __future__ import annotations

import enum

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
