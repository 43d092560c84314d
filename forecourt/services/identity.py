"""Identity use cases: registration, sign-in, token rotation, API tokens, KYC and dealer review."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from forecourt.auth.credentials import Credentials
from forecourt.auth.principal import ALL_SCOPES
from forecourt.auth.rate_limit import LoginThrottle
from forecourt.auth.tokens import (
    API_TOKEN_PREFIX,
    REFRESH_TOKEN_PREFIX,
    digest,
    new_secret,
)
from forecourt.db.errors import violates
from forecourt.db.models import ApiToken, KycApplication, RefreshToken, User
from forecourt.domain import identity as rules
from forecourt.domain.errors import DomainError
from forecourt.domain.identity import KycKind, KycStatus, Role
from forecourt.domain.text import clean_text
from forecourt.services import Work, audit
from forecourt.subscriptions.channels import user_channel

MAX_ACTIVE_API_TOKENS = 50
INVALID_CREDENTIALS = DomainError("INVALID_CREDENTIALS", "email or password is incorrect")


@dataclass(frozen=True)
class Session:
    user: User
    access_token: str
    refresh_token: str


async def _start_session(
    work: Work, credentials: Credentials, user: User, family_id: uuid.UUID | None = None
) -> Session:
    refresh = new_secret(REFRESH_TOKEN_PREFIX)
    work.session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or uuid.uuid4(),
            token_hash=digest(refresh),
            expires_at=work.now + credentials.refresh_ttl,
        )
    )
    return Session(user, credentials.access_tokens.issue(user.id, work.now, user.token_epoch), refresh)


async def create_user(
    work: Work,
    credentials: Credentials,
    *,
    email: str | None,
    password: str | None,
    display_name: str | None = None,
    phone: str | None = None,
    role: Role = Role.USER,
) -> User:
    reg = rules.validate_registration(email, password, display_name, phone)
    # Operators creating a dealer or verified seller vouch for them: KYC is recorded approved.
    kyc = KycStatus.APPROVED if role in rules.KYC_GATED_ROLES else KycStatus.NONE
    rules.check_role_kyc(role, kyc)
    taken = await work.session.scalar(select(User.id).where(User.email == reg.email))
    if taken is not None:
        raise DomainError("EMAIL_TAKEN", "an account with this email already exists", ("email",))
    user = User(
        id=uuid.uuid4(),
        email=reg.email,
        password_hash=await credentials.passwords.hash(reg.password),
        display_name=reg.display_name,
        phone=reg.phone,
        role=role.value,
        kyc_status=kyc.value,
    )
    work.session.add(user)
    try:
        await work.session.flush()
    except IntegrityError as err:  # a concurrent registration won the race
        if violates(err, "uq_users_email"):
            raise DomainError(
                "EMAIL_TAKEN", "an account with this email already exists", ("email",)
            ) from None
        raise
    return user


async def register(
    work: Work,
    credentials: Credentials,
    *,
    email: str | None,
    password: str | None,
    display_name: str | None,
    phone: str | None,
) -> Session:
    user = await create_user(
        work, credentials, email=email, password=password, display_name=display_name, phone=phone
    )
    return await _start_session(work, credentials, user)


async def _verify_password(credentials: Credentials, user: User | None, password: str | None) -> bool:
    """Whether `password` is the user's (False without a user, at the same cost). Passwords are
    hashed in their NFKC form; one set before that is also tried as typed, and re-hashed in the
    NFKC form once it matches (as is a hash with outdated parameters)."""
    if not password or len(password) > rules.PASSWORD_MAX_LENGTH:
        return False
    normalized = rules.normalize_password(password)
    matched = None
    for candidate in dict.fromkeys((normalized, password)):
        if await credentials.passwords.verify(user.password_hash if user else None, candidate):
            matched = candidate
            break
    if user is None or matched is None:
        return False
    if matched != normalized or credentials.passwords.needs_rehash(user.password_hash):
        user.password_hash = await credentials.passwords.hash(normalized)
    return True


async def _check_password_throttled(
    work: Work, credentials: Credentials, throttle: LoginThrottle | None, account: str,
    user: User | None, password: str | None,
) -> bool:
    """`_verify_password`, refused outright (TOO_MANY_ATTEMPTS) after too many recent failures
    for the account or from the caller's address; a wrong password counts as one more."""
    now = work.now.timestamp()
    if throttle is not None:
        wait = await throttle.retry_after(account=account, ip=work.ip, now=now)
        if wait is not None:
            raise DomainError(
                "TOO_MANY_ATTEMPTS", f"too many failed attempts; try again in {wait} seconds")
    ok = await _verify_password(credentials, user, password)
    if not ok and throttle is not None:
        await throttle.failed(account=account, ip=work.ip, now=now)
    return ok


async def login(
    work: Work, credentials: Credentials, *, email: str, password: str,
    throttle: LoginThrottle | None = None,
) -> Session:
    try:
        normalized = rules.normalize_email(email)
    except DomainError:
        normalized = None
    user = None
    if normalized is not None:
        user = await work.session.scalar(
            select(User).where(User.email == normalized).with_for_update()
        )
    account = normalized or (email or "").strip().lower()[: rules.EMAIL_MAX_LENGTH]
    if not await _check_password_throttled(work, credentials, throttle, account, user, password):
        raise INVALID_CREDENTIALS
    assert user is not None
    if not user.is_active:
        raise DomainError("ACCOUNT_DISABLED", "this account is disabled")
    user.last_login_at = work.now
    return await _start_session(work, credentials, user)


async def refresh(work: Work, credentials: Credentials, *, token: str) -> Session:
    """Rotate a refresh token. Presenting one that was already used means it leaked: the whole
    family (every token descended from that sign-in) is revoked."""
    if not token or len(token) > 200 or not token.startswith(REFRESH_TOKEN_PREFIX):
        raise DomainError("INVALID_REFRESH_TOKEN", "refresh token is not valid", ("token",))
    row = await work.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(token)).with_for_update()
    )
    if row is None:
        raise DomainError("INVALID_REFRESH_TOKEN", "refresh token is not valid", ("token",))
    if row.used_at is not None or row.revoked_at is not None:
        await work.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=work.now)
        )
        raise DomainError(
            "REFRESH_TOKEN_REUSED",
            "this refresh token was already used; every session from that sign-in is revoked",
            ("token",),
            persist=True,
        )
    if row.expires_at <= work.now:
        raise DomainError("REFRESH_TOKEN_EXPIRED", "refresh token expired; sign in again", ("token",))
    user = await work.session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise DomainError("ACCOUNT_DISABLED", "this account is disabled")
    row.used_at = work.now
    return await _start_session(work, credentials, user, row.family_id)


async def change_password(
    work: Work, credentials: Credentials, *, current_password: str, new_password: str,
    throttle: LoginThrottle | None = None,
) -> Session:
    """Set a new password, proving the current one, and end every other way into the account:
    all refresh tokens, all access tokens issued before, and all personal API tokens too — one
    changes a password after a leak, and a script's token may be what leaked (the owner mints
    new ones). Returns a fresh session for the caller. A process that cached the caller honours
    this within PRINCIPAL_CACHE_SECONDS."""
    user = await _lock_actor(work)
    # Throttled as sign-ins are: a stolen session must not become a way to guess the password.
    if not await _check_password_throttled(work, credentials, throttle, user.email, user, current_password):
        raise DomainError("INVALID_CREDENTIALS", "the current password is incorrect", ("currentPassword",))
    user.password_hash = await credentials.passwords.hash(rules.check_password(new_password, "newPassword"))
    await _end_all_sessions(work, user)
    await work.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=work.now)
    )
    return await _start_session(work, credentials, user)


async def logout(work: Work, *, refresh_token: str) -> None:
    """End the caller's session: its refresh token and every token rotated from the same
    sign-in. The access token in hand stays valid until it expires (access tokens are not
    tracked one by one); `logout_everywhere` ends those too."""
    assert work.actor is not None
    row = None
    if refresh_token and len(refresh_token) <= 200:
        row = await work.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token)))
    if row is None or row.user_id != work.actor.user_id:
        raise DomainError("INVALID_REFRESH_TOKEN", "refresh token is not valid", ("refreshToken",))
    await work.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=work.now)
    )


async def logout_everywhere(work: Work) -> None:
    """End all of the caller's sessions: every refresh token and every access token issued so
    far. Personal API tokens stay (revoke them one by one, or change the password)."""
    await _end_all_sessions(work, await _lock_actor(work))


async def _end_all_sessions(work: Work, user: User) -> None:
    """Revoke the user's refresh tokens; moving the token epoch on revokes their access tokens."""
    user.token_epoch += 1
    work.events.principal_changed(user.id)
    await work.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=work.now)
    )


async def create_api_token(
    work: Work, *, name: str | None, scopes: list[str] | None
) -> tuple[str, ApiToken]:
    assert work.actor is not None
    name = clean_text(name, "name", max_length=100, required=True, name=True)
    wanted = frozenset(scopes) if scopes is not None else ALL_SCOPES
    unknown = sorted(wanted - ALL_SCOPES)
    if unknown or not wanted:
        raise DomainError(
            "INVALID_SCOPE",
            f"scopes must be a non-empty subset of {sorted(ALL_SCOPES)}"
            + (f"; unknown: {', '.join(s[:20] for s in unknown[:5])}" if unknown else ""),
            ("scopes",),
        )
    # Lock the owner so concurrent requests cannot exceed the token cap together.
    await work.session.execute(
        select(User.id).where(User.id == work.actor.user_id).with_for_update()
    )
    active = await work.session.scalar(
        select(func.count())
        .select_from(ApiToken)
        .where(ApiToken.user_id == work.actor.user_id, ApiToken.revoked_at.is_(None))
    )
    if active >= MAX_ACTIVE_API_TOKENS:
        raise DomainError(
            "TOO_MANY_TOKENS", f"at most {MAX_ACTIVE_API_TOKENS} active API tokens; revoke one"
        )
    secret = new_secret(API_TOKEN_PREFIX)
    row = ApiToken(
        id=uuid.uuid4(),
        user_id=work.actor.user_id,
        name=name,
        prefix=secret[: len(API_TOKEN_PREFIX) + 4],
        token_hash=digest(secret),
        scopes=sorted(wanted),
    )
    work.session.add(row)
    return secret, row


async def revoke_api_token(work: Work, token_id: uuid.UUID) -> ApiToken:
    assert work.actor is not None
    row = await work.session.scalar(
        select(ApiToken).where(ApiToken.id == token_id).with_for_update()
    )
    if row is None or not work.actor.is_self_or_admin(row.user_id):
        raise DomainError("NOT_FOUND", "no such API token", ("id",))
    if row.revoked_at is None:
        row.revoked_at = work.now
        work.events.principal_changed(row.user_id)
    return row


async def _lock_actor(work: Work) -> User:
    assert work.actor is not None
    user = await work.session.scalar(
        select(User).where(User.id == work.actor.user_id).with_for_update()
    )
    assert user is not None
    return user


async def _open_application(work: Work, kind: KycKind, data: dict) -> User:
    user = await _lock_actor(work)
    pending = await work.session.scalar(
        select(KycApplication.id).where(
            KycApplication.user_id == user.id, KycApplication.status == KycStatus.PENDING.value
        )
    )
    rules.check_can_apply(kind, Role(user.role), KycStatus(user.kyc_status), pending is not None)
    work.session.add(KycApplication(user_id=user.id, kind=kind.value, data=data))
    user.kyc_status = rules.kyc_status_while_pending(KycStatus(user.kyc_status)).value
    work.events.principal_changed(user.id)
    await work.session.flush()
    return user


async def submit_kyc(
    work: Work,
    *,
    full_name: str | None,
    id_number: str | None,
    address: str | None,
    documents: list[str] | None,
) -> User:
    data = rules.validate_bidder_kyc(full_name, id_number, address, documents)
    return await _open_application(work, KycKind.BIDDER, data)


async def apply_for_dealer(
    work: Work,
    *,
    business_name: str | None,
    registration_number: str | None,
    address: str | None,
    phone: str | None,
    documents: list[str] | None,
) -> User:
    data = rules.validate_dealer_application(
        business_name, registration_number, address, phone, documents
    )
    return await _open_application(work, KycKind.DEALER, data)


async def review_application(
    work: Work, *, user_id: uuid.UUID, approve: bool, reason: str | None
) -> User:
    reason = clean_text(reason, "reason", max_length=1000, multiline=True)
    user = await work.session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise DomainError("NOT_FOUND", "no such user", ("userId",))
    application = await work.session.scalar(
        select(KycApplication)
        .where(KycApplication.user_id == user_id, KycApplication.status == "pending")
        .with_for_update()
    )
    if application is None:
        raise DomainError("NO_PENDING_APPLICATION", "this user has no application under review")
    kind = KycKind(application.kind)
    outcome = rules.review_application(
        kind, Role(user.role), KycStatus(user.kyc_status), approve, reason
    )
    before = {"role": user.role, "kycStatus": user.kyc_status}
    application.status = outcome.application_status.value
    application.reason = reason
    application.reviewed_by = work.actor.user_id if work.actor else None
    application.reviewed_at = work.now
    user.kyc_status = outcome.kyc_status.value
    user.role = outcome.role.value
    work.events.principal_changed(user.id)
    after = {"role": user.role, "kycStatus": user.kyc_status}
    audit.record(
        work,
        f"{kind.value}_application_{'approved' if approve else 'rejected'}",
        target_type="user",
        target_id=user.id,
        old=before,
        new={**after, "applicationId": str(application.id)},
        reason=reason,
    )
    await work.session.flush()
    work.events.add(
        user_channel(user.id),
        {
            "type": "KYC_REVIEWED",
            "occurredAt": work.now.isoformat(),
            "userId": str(user.id),
            "application": kind.value,
            "approved": approve,
            "reason": reason,
        },
    )
    return user
