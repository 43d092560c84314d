"""Events queued during a unit of work and published only after it commits."""

from __future__ import annotations

import logging

import orjson
from broadcaster import Broadcast

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self) -> None:
        self._pending: list[tuple[str, dict]] = []
        # Users whose identity (role, KYC, organization, activity) the work changed: the
        # committing process forgets them at once; the database tells the others.
        self.changed_principals: set[object] = set()

    def add(self, channel: str, event: dict) -> None:
        self._pending.append((channel, event))

    def principal_changed(self, user_id: object) -> None:
        self.changed_principals.add(user_id)

    def discard(self) -> None:
        self._pending.clear()
        self.changed_principals.clear()

    async def flush(self, broadcast: Broadcast) -> None:
        """Publish what the committed transaction produced. A broadcast failure is logged, not
        raised: the write has happened and clients recover missed events from the database."""
        pending, self._pending = self._pending, []
        for channel, event in pending:
            try:
                await broadcast.publish(channel=channel, message=orjson.dumps(event).decode())
            except Exception:
                log.exception("could not publish an event on %s", channel)
