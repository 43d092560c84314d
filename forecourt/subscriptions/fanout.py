"""Fan-out of published events to this process's subscribers, with bounded mailboxes.

broadcaster keeps an unbounded queue per subscriber: one slow client grows the process's
memory without limit. Here each subscriber has a mailbox of fixed size; a subscriber that falls
that far behind is dropped with `StreamInterrupted("SLOW_CONSUMER")` and can resume from the
database with `afterSequence`. The backend reports lost and restored connections: a restored
connection tells every subscriber to re-read what it may have missed (RESYNC); a connection
that stays lost ends the subscriptions (`EVENTS_UNAVAILABLE`) instead of leaving them hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from broadcaster import Broadcast, Event

CONTROL_CHANNEL = "__forecourt_control__"
CONNECTION_LOST = "lost"
CONNECTION_RESTORED = "restored"
RESYNC = Event(CONTROL_CHANNEL, "resync")


T = TypeVar("T")
_UNSET: Any = object()


class Published(Event):
    """A published event as this process received it, the same object in every subscriber's
    mailbox: its JSON is decoded once (`payload`), and what subscribers build from it can be
    built once and shared (`share`; see multiplex.py)."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(channel, message)
        self._payload: Any = _UNSET
        self._shared: dict[Callable, Any] = {}

    @property
    def payload(self) -> Any:
        if self._payload is _UNSET:
            self._payload = orjson.loads(self.message)
        return self._payload

    def share(self, make: Callable[[Published], T]) -> T:
        """`make(self)`, called once for all the subscribers that ask for it."""
        value = self._shared.get(make, _UNSET)
        if value is _UNSET:
            value = self._shared[make] = make(self)
        return value


class StreamInterrupted(Exception):
    """A subscription the server had to end; the client resumes it (with afterSequence)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Mailbox:
    """One subscriber's events, in order. While a fast-path `lane` is attached (live.py), the
    fan-out hands live events to the lane, which sends them itself; anything delivered to the
    mailbox (an event the lane gives back, RESYNC) or a failure detaches the lane first, so
    the subscriber's own loop takes over from where the lane stopped."""

    __slots__ = ("_items", "_limit", "_ready", "failure", "lane")

    def __init__(self, limit: int) -> None:
        self._items: deque[Event] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self.failure: StreamInterrupted | None = None
        self.lane: Any = None

    @property
    def idle(self) -> bool:
        """Nothing waiting and not failed."""
        return not self._items and self.failure is None

    def deliver(self, event: Event) -> None:
        self.lane = None
        if self.failure is not None:
            return
        if len(self._items) >= self._limit:
            self._items.clear()
            self.fail(StreamInterrupted(
                "SLOW_CONSUMER",
                f"More than {self._limit} events were waiting for this subscriber; "
                "resubscribe with afterSequence to catch up",
            ))
            return
        self._items.append(event)
        self._ready.set()

    def fail(self, failure: StreamInterrupted) -> None:
        self.lane = None
        if self.failure is None:
            self.failure = failure
        self._ready.set()

    async def get(self) -> Event:
        while not self._items:
            if self.failure is not None:
                raise self.failure
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __aiter__(self) -> Mailbox:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class FanOut(Broadcast):
    def __init__(self, url: str | None = None, *, backend=None, mailbox_size: int = 1000,
                 outage_grace_seconds: float = 15.0) -> None:
        super().__init__(url, backend=backend)
        self._mailboxes: dict[str, set[Mailbox]] = {}
        self.mailbox_size = mailbox_size
        self.outage_grace_seconds = outage_grace_seconds
        self._outage: asyncio.TimerHandle | None = None

    async def _listener(self) -> None:
        while True:
            event = await self._backend.next_published()
            if event.channel == CONTROL_CHANNEL:
                self._control(event.message)
                continue
            mailboxes = self._mailboxes.get(event.channel)
            if mailboxes:
                published = Published(event.channel, event.message)
                for mailbox in list(mailboxes):
                    lane = mailbox.lane
                    if lane is None or not lane.offer(published):
                        mailbox.deliver(published)  # the subscriber's own loop takes it

    def _control(self, message: str) -> None:
        if message == CONNECTION_LOST and self._outage is None:
            self._outage = asyncio.get_running_loop().call_later(self.outage_grace_seconds, self._give_up)
        elif message == CONNECTION_RESTORED:
            if self._outage is not None:
                self._outage.cancel()
                self._outage = None
            for mailboxes in self._mailboxes.values():
                for mailbox in mailboxes:
                    mailbox.deliver(RESYNC)

    def _give_up(self) -> None:
        self._outage = None
        for mailboxes in self._mailboxes.values():
            for mailbox in mailboxes:
                mailbox.fail(StreamInterrupted(
                    "EVENTS_UNAVAILABLE", "Live events are unavailable; resubscribe to resume"))

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Mailbox]:  # type: ignore[override]
        mailbox = Mailbox(self.mailbox_size)
        subscribers = self._mailboxes.get(channel)
        try:
            if not subscribers:
                self._mailboxes[channel] = {mailbox}
                await self._backend.subscribe(channel)
            else:
                subscribers.add(mailbox)
            yield mailbox
        finally:
            remaining = self._mailboxes.get(channel)
            if remaining is not None:
                remaining.discard(mailbox)
                if not remaining:
                    del self._mailboxes[channel]
                    await self._backend.unsubscribe(channel)
