"""Who is calling: resolved once per request from a bearer token (JWT or API token)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from forecourt.domain.identity import STAFF_ROLES, KycStatus, Role

READ = "read"
WRITE = "write"
ALL_SCOPES = frozenset({READ, WRITE})


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: Role
    kyc_status: KycStatus
    organization_id: uuid.UUID | None = None
    org_role: str | None = None
    # Set when the caller authenticated with a personal API token rather than a session.
    api_token_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default=ALL_SCOPES)
    # The user's token epoch when resolved: an access token must carry the same one.
    token_epoch: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def is_self_or_admin(self, user_id: uuid.UUID) -> bool:
        return self.user_id == user_id or self.is_admin

    def is_self_or_staff(self, user_id: uuid.UUID) -> bool:
        return self.user_id == user_id or self.role in STAFF_ROLES
