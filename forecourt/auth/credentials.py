"""The credential machinery a process needs: password hashing and token issuing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from forecourt.auth.authenticate import PrincipalCache
from forecourt.auth.passwords import Passwords
from forecourt.auth.tokens import AccessTokens
from forecourt.config import Settings


@dataclass(frozen=True)
class Credentials:
    passwords: Passwords
    access_tokens: AccessTokens
    refresh_ttl: timedelta
    principals: PrincipalCache

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        return cls(
            Passwords(settings),
            AccessTokens(settings.signing_secret(), settings.access_token_ttl_seconds),
            timedelta(seconds=settings.refresh_token_ttl_seconds),
            PrincipalCache(settings.principal_cache_seconds),
        )
