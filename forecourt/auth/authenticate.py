"""Resolve the caller from a bearer token: a JWT access token or a personal API token."""

from __future__ import annotations

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


async def authenticate(
    session: AsyncSession, access_tokens: AccessTokens, token: str | None, now: datetime
) -> Principal | None:
    if token is None:
        return None
    if len(token) > 4096:
        raise Unauthenticated("invalid token")
    if token.startswith(API_TOKEN_PREFIX):
        return await _from_api_token(session, token, now)
    claims = access_tokens.decode(token, now)
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("this account is not active")
    return _principal(user)


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


def _principal(user: User, **extra) -> Principal:
    return Principal(
        user_id=user.id,
        role=Role(user.role),
        kyc_status=KycStatus(user.kyc_status),
        organization_id=user.organization_id,
        org_role=user.org_role,
        **extra,
    )
