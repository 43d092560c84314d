"""Errors: the `UserError` payload type, and the one place GraphQL errors get their code.

Every error leaves with `extensions.code`. Expected failures keep their message; anything
unexpected is logged with its traceback and masked as INTERNAL unless debug is on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from forecourt.auth.errors import AuthError
from forecourt.domain.errors import DomainError

log = logging.getLogger("forecourt.errors")

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
LIMIT_EXCEEDED = "QUERY_LIMIT_EXCEEDED"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL"
# Request errors (the operation never ran) and the HTTP status each one answers with.
REQUEST_ERROR_STATUS = {PARSE_FAILED: 400, VALIDATION_FAILED: 422, LIMIT_EXCEEDED: 422}


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


class ErrorFormatting(SchemaExtension):
    def __init__(self, *, debug: bool = False) -> None:
        self.debug = debug
        self.phase = "parse"

    def on_parse(self) -> Iterator[None]:
        self.phase = "parse"
        yield

    def on_validate(self) -> Iterator[None]:
        self.phase = "validate"
        yield

    def on_execute(self) -> Iterator[None]:
        self.phase = "execute"
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self.format(e) for e in result.errors]

    def format(self, error: GraphQLError) -> GraphQLError:
        extensions = dict(error.extensions or {})
        original = error.original_error
        message = error.message
        if isinstance(original, AuthError):
            extensions["code"] = original.code
        elif isinstance(original, DomainError):
            extensions.update(code=BAD_USER_INPUT, reason=original.code)
            if original.field:
                extensions["field"] = list(original.field)
        elif "code" in extensions:
            pass
        elif self.phase == "parse":
            extensions["code"] = PARSE_FAILED
        elif self.phase == "validate":
            extensions["code"] = VALIDATION_FAILED
        elif not error.path:
            extensions["code"] = BAD_USER_INPUT  # variable values that do not fit their types
        else:
            extensions["code"] = INTERNAL
            if not self.debug:
                message = "Internal server error"
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=original if self.debug or extensions["code"] != INTERNAL else None,
            extensions=extensions,
        )


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        original = error.original_error
        if (
            error.path
            and original is not None
            and not isinstance(original, (AuthError, DomainError, GraphQLError))
        ):
            log.error("unexpected error in %s", error.path, exc_info=original)
