"""Access tokens (JWT), and the opaque secrets behind refresh tokens and API tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

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

    def decode(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired; refresh it") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid access token") from None
        if claims.get("typ") != "access":
            raise Unauthenticated("invalid access token")
        try:
            user_id = uuid.UUID(claims["sub"])
        except (ValueError, TypeError):
            raise Unauthenticated("invalid access token") from None
        return AccessClaims(user_id, datetime.fromtimestamp(claims["exp"]).astimezone())


def new_secret(prefix: str) -> str:
    """A high-entropy opaque token. SHA-256 is enough at rest: it cannot be brute-forced."""
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
