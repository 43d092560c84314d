"""Resolve the caller from a bearer token: a JWT access token or a personal API token."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.auth.errors import Unauthenticated
from forecourt.auth.principal import Principal
from forecourt.auth.tokens import API_TOKEN_PREFIX, AccessTokens, digest
from forecourt.db.models import ApiToken, User
from forecourt.domain.identity import KycStatus, Role

# last_used_at is informative; writing it on every request would turn reads into writes.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization or not authorization.strip():
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use the header 'Authorization: Bearer <token>'")
    return token.strip()


class PrincipalCache:
    """Recently resolved callers, so a busy client (a bidder, a script) does not cost a
    database round trip per request. A change to a user (role, KYC, organization, activity,
    a revoked API token) is announced by the database at commit and forgets the user's
    entries in every process (forecourt/auth/changes.py); while those announcements cannot be
    heard, nothing is cached. Entries also expire after `ttl` seconds; ttl 0 turns the cache
    off."""

    MAX_ENTRIES = 50_000

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.listening = False  # set while changes are heard (forecourt/auth/changes.py)
        # Bumped by every forget: a caller read before a change is not cached after it.
        self.generation = 0
        self._entries: dict[object, tuple[float, Principal]] = {}
        self._keys: dict[object, set[object]] = {}  # user id -> its entries' keys

    def get(self, key: object) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: object, principal: Principal, generation: int) -> Principal:
        """Keep `principal`, read when the cache was at `generation`, unless a change was
        announced since."""
        if self.ttl > 0 and self.listening and generation == self.generation:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
                self._keys.clear()
            self._entries[key] = (time.monotonic() + self.ttl, principal)
            self._keys.setdefault(principal.user_id, set()).add(key)
        return principal

    def forget(self, user_id: object) -> None:
        self.generation += 1
        for key in self._keys.pop(user_id, ()):
            self._entries.pop(key, None)

    def stop_listening(self) -> None:
        """Announcements may be missed from now on: forget everything, cache nothing."""
        self.listening = False
        self.generation += 1
        self._entries.clear()
        self._keys.clear()


async def authenticate(
    session: Callable[[], AsyncSession], access_tokens: AccessTokens, token: str | None,
    now: datetime, cache: PrincipalCache | None = None,
) -> Principal | None:
    """`session()` is called only when the caller is not cached: a cached request opens none."""
    if token is None:
        return None
    if len(token) > 4096:
        raise Unauthenticated("invalid token")
    cache = cache or PrincipalCache(0)
    generation = cache.generation
    if token.startswith(API_TOKEN_PREFIX):
        key = digest(token)
        return cache.get(key) or cache.put(key, await _from_api_token(session(), token, now), generation)
    claims = access_tokens.decode(token, now)  # expiry checked every time
    principal = cache.get(claims.user_id)
    # A token newer than the cached caller was issued after its epoch moved: read it afresh.
    if principal is None or claims.token_epoch > principal.token_epoch:
        user = (await session().execute(select(*USER_COLUMNS).where(User.id == claims.user_id))).first()
        if user is None or not user.is_active:
            raise Unauthenticated("this account is not active")
        principal = cache.put(claims.user_id, _principal(user), generation)
    if claims.token_epoch != principal.token_epoch:
        raise Unauthenticated("this session has ended (password changed or signed out everywhere); sign in again")
    return principal


async def _from_api_token(session: AsyncSession, token: str, now: datetime) -> Principal:
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest(token))
        )
    ).first()
    if row is None or row.ApiToken.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API token")
    api_token, user = row.ApiToken, row.User
    if not user.is_active:
        raise Unauthenticated("this account is not active")
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(
            update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now)
        )
        await session.commit()
    return _principal(user, api_token_id=api_token.id, scopes=frozenset(api_token.scopes))


USER_COLUMNS = (User.id, User.role, User.kyc_status, User.organization_id, User.org_role, User.is_active,
                User.token_epoch)


def _principal(user, **extra) -> Principal:
    return Principal(
        user_id=user.id,
        role=Role(user.role),
        kyc_status=KycStatus(user.kyc_status),
        organization_id=user.organization_id,
        org_role=user.org_role,
        token_epoch=user.token_epoch,
        **extra,
    )
