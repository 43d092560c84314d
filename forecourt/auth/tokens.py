"""Access tokens (JWT), and the opaque secrets behind refresh tokens and API tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from forecourt.auth.errors import Unauthenticated

ALGORITHM = "HS256"
API_TOKEN_PREFIX = "fc_pat_"
REFRESH_TOKEN_PREFIX = "fc_rt_"
ISSUER = "forecourt"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    expires_at: datetime


class AccessTokens:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl = timedelta(seconds=ttl_seconds)

    def issue(self, user_id: uuid.UUID, now: datetime) -> str:
        claims = {
            "sub": str(user_id),
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "iss": ISSUER,
            "typ": "access",
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str, now: datetime) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # Expiry is checked below against the application's clock, not the library's.
                options={"require": ["exp", "sub", "iat"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid access token") from None
        if claims.get("typ") != "access" or not isinstance(claims["exp"], int):
            raise Unauthenticated("invalid access token")
        if claims["exp"] <= now.timestamp():
            raise Unauthenticated("access token expired; refresh it")
        try:
            user_id = uuid.UUID(claims["sub"])
        except (ValueError, TypeError):
            raise Unauthenticated("invalid access token") from None
        return AccessClaims(user_id, datetime.fromtimestamp(claims["exp"], UTC))


def new_secret(prefix: str) -> str:
    """A high-entropy opaque token. SHA-256 is enough at rest: it cannot be brute-forced."""
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
