"""Changes to who a user is reach every process at once.

The database announces each change to a user's role, KYC status, organization, organization
role or activity, and each revoked API token, on one channel when it commits (migration
0016), whoever made it. Each process listens: it forgets the user's cached identity, so the
user's next request is judged on the change, and it has each of the user's open WebSockets
authenticate again: a socket whose token no longer admits anyone is closed, and one whose
caller changed ends its running operations (PERMISSIONS_CHANGED; subscribe again to go on
from `afterSequence`), so no subscription keeps showing what its caller may no longer see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Protocol

from forecourt.auth.authenticate import PrincipalCache
from forecourt.db.notifications import listen

log = logging.getLogger(__name__)

CHANNEL = "forecourt_principals"


class WatchedConnection(Protocol):
    def principal_changed(self) -> None:
        """Authenticate again, soon (not in the caller's turn)."""


class PrincipalChanges:
    def __init__(self, database_url: str, cache: PrincipalCache) -> None:
        self.database_url = database_url
        self.cache = cache
        self._connections: dict[uuid.UUID, set[WatchedConnection]] = {}

    def watch(self, user_id: uuid.UUID, connection: WatchedConnection) -> None:
        self._connections.setdefault(user_id, set()).add(connection)

    def unwatch(self, user_id: uuid.UUID, connection: WatchedConnection) -> None:
        connections = self._connections.get(user_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._connections[user_id]

    def changed(self, user_id: uuid.UUID) -> None:
        self.cache.forget(user_id)
        for connection in list(self._connections.get(user_id, ())):
            connection.principal_changed()

    def _announced(self, payload: str) -> None:
        try:
            user_id = uuid.UUID(payload)
        except ValueError:
            log.warning("ignored a malformed announcement on %s: %r", CHANNEL, payload)
            return
        self.changed(user_id)

    def _listening(self) -> None:
        self.cache.listening = True
        # Anything may have changed while nobody listened: every open socket checks.
        for user_id in list(self._connections):
            self.changed(user_id)

    async def run(self) -> None:
        """Listen until cancelled (the app's lifespan)."""
        await listen(self.database_url, CHANNEL, self._announced, self._listening,
                     self.cache.stop_listening)

    @contextlib.asynccontextmanager
    async def running(self):
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
