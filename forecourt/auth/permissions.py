"""Strawberry permission classes that enforce the matrix and per-field visibility."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from forecourt.auth.errors import Forbidden, Unauthenticated
from forecourt.auth.matrix import GUEST, PERMISSIONS, SESSION_ONLY
from forecourt.auth.principal import READ, WRITE, Principal


def check_operation(operation: str, principal: Principal | None) -> None:
    """Raise unless `principal` may run `operation` ("Type.field")."""
    allowed = PERMISSIONS[operation]
    if principal is None:
        if GUEST not in allowed:
            raise Unauthenticated("sign in to do this")
        return
    if principal.role not in allowed:
        raise Forbidden(f"your role ({principal.role.value}) may not use {operation.split('.')[1]}")
    if principal.api_token_id is not None:
        if operation in SESSION_ONLY:
            raise Forbidden("an API token cannot do this; sign in with a password")
        needed = WRITE if operation.startswith("Mutation.") else READ
        if needed not in principal.scopes:
            raise Forbidden(f"this API token lacks the '{needed}' scope")


class Allowed(BasePermission):
    """Root-field guard: looks the operation up in the permission matrix."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        check_operation(f"{info.path.typename}.{info.field_name}", info.context.principal)
        return True


class _UserFieldPermission(BasePermission):
    """A field of a User that only the user themself and some others may read."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if source.is_own_account:
            return True
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated("sign in to see this")
        self.check(principal, source.user_id)
        return True

    def check(self, principal: Principal, user_id: Any) -> None:
        raise NotImplementedError


class SelfOrAdmin(_UserFieldPermission):
    """For fields of a User only that user and admins may read (e.g. email)."""

    def check(self, principal: Principal, user_id: Any) -> None:
        if not principal.is_self_or_admin(user_id):
            raise Forbidden("only the user and admins may see this")


class SelfOrStaff(_UserFieldPermission):
    """For fields of a User beyond the public profile (role, KYC status, since when): the user,
    and staff who act on accounts."""

    def check(self, principal: Principal, user_id: Any) -> None:
        if not principal.is_self_or_staff(user_id):
            raise Forbidden("only the user and staff may see this; others see the display name")
