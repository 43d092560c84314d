"""Errors: the `UserError` payload type, and the one place GraphQL errors get their code.

Every error leaves with `extensions.code`. Expected failures keep their message; anything
unexpected is logged with its traceback and masked as INTERNAL unless debug is on.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import strawberry
from graphql import GraphQLError
from redis import exceptions as redis_errors
from sqlalchemy.exc import DBAPIError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from forecourt.auth.errors import AuthError
from forecourt.domain.errors import DomainError
from forecourt.subscriptions.fanout import StreamInterrupted

log = logging.getLogger("forecourt.errors")

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
LIMIT_EXCEEDED = "QUERY_LIMIT_EXCEEDED"
QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL"
RATE_LIMITED = "RATE_LIMITED"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
EVENTS_UNAVAILABLE = "EVENTS_UNAVAILABLE"
# Request errors (the operation never ran) and the HTTP status each one answers with.
REQUEST_ERROR_STATUS = {
    PARSE_FAILED: 400, VALIDATION_FAILED: 422, LIMIT_EXCEEDED: 422, QUERY_TOO_LARGE: 413,
    RATE_LIMITED: 429,
}


@strawberry.type(description="An expected business failure of a mutation.")
class UserError:
    field: list[str] | None = strawberry.field(description='Path into the input, e.g. ["input", "amount"].')
    code: str
    message: str


def user_errors(err: DomainError, prefix: tuple[str, ...] = ("input",)) -> list[UserError]:
    return [
        UserError(field=[*prefix, *e.field] if e.field else None, code=e.code, message=e.message)
        for e in err.errors
    ]


def format_errors(errors: list[GraphQLError], execution_context: Any, *, debug: bool) -> None:
    """Give every error its code, log the unexpected ones, and mask them outside debug.

    Strawberry calls this (through Schema.process_errors) on every path — HTTP, WebSocket,
    request errors and field errors — so it works in place. Where the error arose follows
    from how far the request got: no document means parsing failed; no result yet means
    validation failed (limits included); otherwise the operation was executing.
    """
    for error in errors:
        extensions = error.extensions if error.extensions is not None else {}
        error.extensions = extensions
        if "code" in extensions:
            continue
        original = error.original_error
        if isinstance(original, (AuthError, StreamInterrupted)):
            extensions["code"] = original.code
        elif isinstance(original, DomainError):
            extensions.update(code=BAD_USER_INPUT, reason=original.code)
            if original.field:
                extensions["field"] = list(original.field)
        elif (unavailable := unavailable_code(original)) is not None:
            extensions["code"] = unavailable
            log.warning("%s in %s: %r", unavailable, error.path, original)
            error.message = UNAVAILABLE_MESSAGES[unavailable]
            error.original_error = None
        elif execution_context is None or execution_context.graphql_document is None:
            extensions["code"] = PARSE_FAILED
        elif execution_context.result is None and not error.path and not _unexpected(original):
            extensions["code"] = VALIDATION_FAILED
        elif not error.path and not _unexpected(original):
            extensions["code"] = BAD_USER_INPUT  # variable values that do not fit their types
        else:
            extensions["code"] = INTERNAL
            if original is not None and not isinstance(original, GraphQLError):
                log.error("unexpected error in %s", error.path, exc_info=original)
            if not debug:
                error.message = "Internal server error"
                error.original_error = None


UNAVAILABLE_MESSAGES = {
    SERVICE_UNAVAILABLE: "the service is briefly unavailable; try again shortly",
    EVENTS_UNAVAILABLE: "live events are unavailable; resubscribe to resume",
}


def unavailable_code(error: BaseException | None) -> str | None:
    """SERVICE_UNAVAILABLE when the database cannot be reached, EVENTS_UNAVAILABLE for the
    event bus (Redis), found anywhere in the exception's chain; None for anything else."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, redis_errors.ConnectionError | redis_errors.TimeoutError):
            return EVENTS_UNAVAILABLE
        if isinstance(error, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError
                      | asyncpg.CannotConnectNowError | TimeoutError) or (
                isinstance(error, DBAPIError) and error.connection_invalidated):
            return SERVICE_UNAVAILABLE
        error = error.__cause__ or getattr(error, "orig", None) or error.__context__
        seen += 1
    return None


def _unexpected(original: BaseException | None) -> bool:
    """An exception raised by our code rather than by a malformed request (the scalars'
    ValueError and TypeError for values that do not fit their types are the request's)."""
    return original is not None and not isinstance(original, REQUEST_EXCEPTIONS)


REQUEST_EXCEPTIONS = (GraphQLError, ValueError, TypeError, InvalidOperationTypeError,
                      CannotGetOperationTypeError, MissingQueryError)
