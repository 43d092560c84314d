"""Access tokens (JWT), and the opaque secrets behind refresh tokens and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from forecourt.auth.errors import Unauthenticated

ALGORITHM = "HS256"
API_TOKEN_PREFIX = "fc_pat_"
REFRESH_TOKEN_PREFIX = "fc_rt_"
INVITATION_TOKEN_PREFIX = "fc_inv_"
ISSUER = "forecourt"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    expires_at: datetime
    token_epoch: int = 0  # the user's token epoch when issued; tokens of an older epoch are revoked


class AccessTokens:
    # Tokens whose signature this process has verified: a busy client (a bidder) sends the
    # same token with every request, and verifying it is most of the cost of authentication.
    VERIFIED_MAX = 50_000

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl = timedelta(seconds=ttl_seconds)
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, user_id: uuid.UUID, now: datetime, token_epoch: int = 0) -> str:
        claims = {
            "sub": str(user_id),
            "epoch": token_epoch,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "iss": ISSUER,
            "typ": "access",
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str, now: datetime) -> AccessClaims:
        """The token's claims. The signature is verified once per token and process (a token
        cannot change); expiry is checked against `now` on every call."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if len(self._verified) >= self.VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = claims
        if claims.expires_at <= now:
            raise Unauthenticated("access token expired; refresh it")
        return claims

    def _verify(self, token: str) -> AccessClaims:
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
        token_epoch = claims.get("epoch", 0)
        if claims.get("typ") != "access" or not isinstance(claims["exp"], int) or type(token_epoch) is not int:
            raise Unauthenticated("invalid access token")
        try:
            user_id = uuid.UUID(claims["sub"])
        except (ValueError, TypeError):
            raise Unauthenticated("invalid access token") from None
        return AccessClaims(user_id, datetime.fromtimestamp(claims["exp"], UTC), token_epoch)


def new_secret(prefix: str) -> str:
    """A high-entropy opaque token. SHA-256 is enough at rest: it cannot be brute-forced."""
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str | None, token_hash: str | None) -> bool:
    """Whether `token` is the secret behind `token_hash` (in constant time; never for a null hash)."""
    return bool(token) and token_hash is not None and hmac.compare_digest(digest(token), token_hash)
