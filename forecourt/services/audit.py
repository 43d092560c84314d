"""Writes to the immutable admin audit log."""

from __future__ import annotations

import uuid

from forecourt.db.models import AdminAuditLog
from forecourt.services import Work


def record(
    work: Work,
    action: str,
    *,
    target_type: str,
    target_id: uuid.UUID,
    old: dict | None = None,
    new: dict | None = None,
    reason: str | None = None,
) -> None:
    assert work.actor is not None, "audited actions need an actor"
    work.session.add(
        AdminAuditLog(
            admin_id=work.actor.user_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            old_value=old,
            new_value=new,
            reason=reason,
            ip_address=work.ip,
        )
    )
