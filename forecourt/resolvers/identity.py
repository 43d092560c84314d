"""Identity resolvers: input -> one service call -> payload."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson
from sqlalchemy import select

from forecourt.db.models import KycApplication
from forecourt.db.pagination import count, keyset_page, page_size
from forecourt.domain.identity import KycStatus
from forecourt.resolvers.base import optional, run_mutation
from forecourt.schema import identity as t
from forecourt.schema.context import Context
from forecourt.schema.relay import Connection, connection, from_global_id
from forecourt.services import identity as service
from forecourt.subscriptions.channels import user_channel


def _session_fields(session: service.Session) -> dict:
    return {
        "access_token": session.access_token,
        "refresh_token": session.refresh_token,
        "user": t.UserType.from_model(session.user, is_own_account=True),
    }


async def me(ctx: Context) -> t.UserType | None:
    if ctx.principal is None:
        return None
    return await t.load_user(ctx, ctx.principal.user_id)


async def register(ctx: Context, data: t.RegisterInput) -> t.AuthPayload:
    async def op(work):
        return _session_fields(
            await service.register(
                work,
                ctx.state.credentials,
                email=data.email,
                password=data.password,
                display_name=optional(data.display_name),
                phone=optional(data.phone),
            )
        )

    return await run_mutation(ctx, t.AuthPayload, op)


async def login(ctx: Context, data: t.LoginInput) -> t.AuthPayload:
    async def op(work):
        return _session_fields(
            await service.login(
                work, ctx.state.credentials, email=data.email, password=data.password,
                throttle=ctx.state.rate_limiter.logins,
            )
        )

    return await run_mutation(ctx, t.AuthPayload, op)


async def refresh_token(ctx: Context, token: str) -> t.AuthPayload:
    async def op(work):
        return _session_fields(await service.refresh(work, ctx.state.credentials, token=token))

    return await run_mutation(ctx, t.AuthPayload, op, input_path=())


async def change_password(ctx: Context, data: t.ChangePasswordInput) -> t.ChangePasswordPayload:
    async def op(work):
        return _session_fields(
            await service.change_password(
                work, ctx.state.credentials,
                current_password=data.current_password, new_password=data.new_password,
                throttle=ctx.state.rate_limiter.logins,
            )
        )

    return await run_mutation(ctx, t.ChangePasswordPayload, op)


async def logout(ctx: Context, data: t.LogoutInput) -> t.LogoutPayload:
    async def op(work):
        await service.logout(work, refresh_token=data.refresh_token)
        return {}

    return await run_mutation(ctx, t.LogoutPayload, op)


async def logout_everywhere(ctx: Context) -> t.LogoutEverywherePayload:
    async def op(work):
        await service.logout_everywhere(work)
        return {}

    return await run_mutation(ctx, t.LogoutEverywherePayload, op, input_path=())


async def create_api_token(ctx: Context, data: t.CreateApiTokenInput) -> t.ApiTokenPayload:
    async def op(work):
        secret, row = await service.create_api_token(
            work, name=data.name, scopes=optional(data.scopes)
        )
        await work.session.flush()
        return {"token": secret, "api_token": t.ApiTokenType.from_model(row)}

    return await run_mutation(ctx, t.ApiTokenPayload, op)


async def revoke_api_token(ctx: Context, token_id: str) -> t.RevokeApiTokenPayload:
    async def op(work):
        _, raw = from_global_id(token_id, "ApiToken")
        await service.revoke_api_token(work, raw)
        return {"revoked": True}

    return await run_mutation(ctx, t.RevokeApiTokenPayload, op, input_path=())


async def submit_kyc(ctx: Context, data: t.SubmitKycInput) -> t.UserPayload:
    async def op(work):
        user = await service.submit_kyc(
            work,
            full_name=data.full_name,
            id_number=data.id_number,
            address=data.address,
            documents=data.documents,
        )
        return {"user": t.UserType.from_model(user)}

    return await run_mutation(ctx, t.UserPayload, op)


async def apply_for_dealer(ctx: Context, data: t.ApplyForDealerInput) -> t.UserPayload:
    async def op(work):
        user = await service.apply_for_dealer(
            work,
            business_name=data.business_name,
            registration_number=data.registration_number,
            address=data.address,
            phone=data.phone,
            documents=data.documents,
        )
        return {"user": t.UserType.from_model(user)}

    return await run_mutation(ctx, t.UserPayload, op)


async def review_kyc_application(ctx: Context, data: t.ReviewKycInput) -> t.UserPayload:
    async def op(work):
        _, user_id = from_global_id(data.user_id, "User", ("userId",))
        user = await service.review_application(
            work, user_id=user_id, approve=data.approve, reason=optional(data.reason)
        )
        return {"user": t.UserType.from_model(user)}

    return await run_mutation(ctx, t.UserPayload, op)


async def kyc_applications(
    ctx: Context, status: KycStatus | None, first: int | None, after: str | None
) -> Connection[t.KycApplicationType]:
    size = page_size(first, ctx.settings.default_page_size, ctx.settings.max_page_size)
    stmt = select(KycApplication)
    if status is not None:
        stmt = stmt.where(KycApplication.status == status.value)
    page = await keyset_page(
        ctx.reader, stmt, [KycApplication.created_at, KycApplication.id], first=size, after=after
    )
    return connection(page, t.KycApplicationType.from_model, lambda: count(ctx.reader, stmt))


async def account_events(ctx: Context) -> AsyncGenerator[t.AccountEvent, None]:
    assert ctx.principal is not None
    ctx.ends_with_caller_change = False  # its own account's events: the changes themselves
    async with ctx.state.broadcast.subscribe(user_channel(ctx.principal.user_id)) as events:
        async for message in events:
            await ctx.end_reads()
            yield t.AccountEvent.from_message(orjson.loads(message.message))
