"""Rate limits per operation, on HTTP and WebSocket alike.

Every operation counts against its caller's budget (per user once signed in, per address for
guests): a WebSocket running operations one after another is counted as HTTP requests are.
Sign-in operations (login, register, refreshToken) also count against their address's own,
smaller budget whoever sends them, and a document may hold at most one of them: fifteen
aliased `login` fields are fifteen password guesses, not one request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from forecourt.auth.rate_limit import RateLimited, RateLimiter
from forecourt.schema.errors import LIMIT_EXCEEDED, RATE_LIMITED

CREDENTIAL_FIELDS = frozenset({"login", "register", "refreshToken"})


class OperationRateLimits(SchemaExtension):
    def __init__(self) -> None:
        self.limited: RateLimited | None = None

    @property
    def limiter(self) -> RateLimiter:
        return self.execution_context.context.state.rate_limiter

    async def on_operation(self) -> AsyncIterator[None]:
        ctx = self.execution_context.context
        principal = ctx.principal
        try:
            await self.limiter.check(user_id=principal.user_id if principal else None, ip=ctx.client_ip)
        except RateLimited as err:
            self.limited = err
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        """Runs after RequestLimits' on_validate, which has validated the document by then."""
        execution = self.execution_context
        document = execution.graphql_document
        if self.limited is not None:
            execution.pre_execution_errors = [self._refusal(self.limited)]
        elif not execution.pre_execution_errors and document is not None:
            await self._check_credentials(document)
        yield

    async def _check_credentials(self, document: DocumentNode) -> None:
        execution = self.execution_context
        signing_in = credential_fields(document, execution.operation_name)
        if signing_in > 1:
            execution.pre_execution_errors = [GraphQLError(
                "at most one of login, register and refreshToken may be sent per request",
                extensions={"code": LIMIT_EXCEEDED})]
        elif signing_in:
            try:
                await self.limiter.check_credentials(ip=execution.context.client_ip)
            except RateLimited as err:
                execution.pre_execution_errors = [self._refusal(err)]

    def _refusal(self, err: RateLimited) -> GraphQLError:
        ctx = self.execution_context.context
        if ctx.request.scope["type"] == "http":  # a 429 with Retry-After (schema/http.py)
            ctx.response.headers["Retry-After"] = str(err.retry_after)
        return GraphQLError(f"too many requests; retry in {err.retry_after}s",
                            extensions={"code": RATE_LIMITED, "retryAfter": err.retry_after})


def credential_fields(document: DocumentNode, operation_name: str | None) -> int:
    """How many sign-in fields the operation that runs selects at its root."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
                operation_name is None or (definition.name and definition.name.value == operation_name)):
            return _count(definition.selection_set, fragments, set())
    return 0


def _count(selections: SelectionSetNode, fragments: dict[str, Any], seen: set[str]) -> int:
    total = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            total += selection.name.value in CREDENTIAL_FIELDS
        elif isinstance(selection, InlineFragmentNode):
            total += _count(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in seen and name in fragments:
                seen.add(name)
                total += _count(fragments[name].selection_set, fragments, seen)
    return total
