"""Use cases: load (locking where it matters) -> domain rules -> persist -> queue events.

Services never commit: the caller (a mutation, the CLI, a job) owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from forecourt.auth.principal import Principal
from forecourt.subscriptions.outbox import Outbox


@dataclass
class Work:
    """One unit of work: its session, the events it will publish, the time it runs at, and
    who asked for it (None for guests and system jobs)."""

    session: AsyncSession
    events: Outbox
    now: datetime
    actor: Principal | None = None
    ip: str | None = None
