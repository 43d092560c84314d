"""The mutation boundary: one transaction per mutation, DomainError -> userErrors, events
published only after commit. Every mutation resolver goes through `run_mutation`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from forecourt.domain.errors import DomainError
from forecourt.schema.context import Context
from forecourt.schema.errors import user_errors
from forecourt.services import Work

P = TypeVar("P")
T = TypeVar("T")


def optional(value: T) -> T | None:
    """An optional input field the client left out (UNSET) is None to the services."""
    return None if value is strawberry.UNSET else value


async def run_mutation(
    ctx: Context,
    payload: Callable[..., P],
    operation: Callable[[Work], Awaitable[dict[str, Any]]],
    *,
    input_path: tuple[str, ...] = ("input",),
) -> P:
    await ctx.end_reads()
    session = ctx.session
    try:
        fields = await operation(ctx.work())
    except DomainError as err:
        if err.persist:
            await session.commit()
            _forget_changed_principals(ctx)
            await ctx.outbox.flush(ctx.state.broadcast)
        else:
            await session.rollback()
            ctx.outbox.discard()
        await ctx.end_reads()
        return payload(user_errors=user_errors(err, input_path))
    except BaseException:
        await session.rollback()
        ctx.outbox.discard()
        raise
    await session.commit()
    _forget_changed_principals(ctx)
    await ctx.outbox.flush(ctx.state.broadcast)
    await ctx.end_reads()
    return payload(user_errors=[], **fields)


def _forget_changed_principals(ctx: Context) -> None:
    """Whoever this mutation changed is judged on the change from their next request in this
    process, even before the database's announcement of it arrives (auth/changes.py)."""
    for user_id in ctx.outbox.changed_principals:
        ctx.state.principal_changes.changed(user_id)
    ctx.outbox.changed_principals.clear()
