"""The one error type of the domain: a stable machine code, a human message, the input field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class DomainError(Exception):
    """An expected business failure, reported to clients as a `userErrors` entry.

    `field` is the path inside the mutation's input (e.g. ("email",)); a lone name ("email") is
    taken as a one-step path, since a string is also a sequence (of letters). `persist` is set when
    the failure itself must be recorded (the work done before raising is committed, not rolled
    back) — e.g. a reused refresh token revokes its whole family and still fails.
    """

    def __init__(
        self,
        code: str,
        message: str,
        field: Sequence[str] | str | None = None,
        *,
        persist: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = ((field,) if isinstance(field, str) else tuple(field)) if field else None
        self.persist = persist
        self.errors: tuple[DomainError, ...] = (self,)

    def __repr__(self) -> str:
        return f"DomainError({self.code!r}, {self.message!r}, field={self.field!r})"


class ValidationFailed(DomainError):
    """Several independent input problems reported together, so a client fixes them in one go."""

    def __init__(self, errors: Iterable[DomainError]) -> None:
        errors = tuple(errors)
        if not errors:
            raise ValueError("ValidationFailed needs at least one error")
        first = errors[0]
        super().__init__(first.code, first.message, first.field)
        self.errors = errors


class Validator:
    """Collects field errors; `check()` raises them all at once."""

    def __init__(self) -> None:
        self.errors: list[DomainError] = []

    def add(self, code: str, message: str, *field: str) -> None:
        self.errors.append(DomainError(code, message, field or None))

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """Call a validating function; record its DomainError instead of raising."""
        try:
            return fn(*args, **kwargs)
        except DomainError as err:
            self.errors.extend(err.errors)
            return None

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
