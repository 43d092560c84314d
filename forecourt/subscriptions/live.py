"""Live events of one aggregate: replay from the event log, then live events, each exactly
once and in sequence order; and the fast path that delivers live events of caught-up
subscribers straight to their sockets.

`follow` is the loop every `…Events(afterSequence)` subscription runs: it has subscribed (the
mailbox) before it reads the current sequence, replays what the client missed from the log,
then takes live events from its mailbox, filling gaps (a lost message, RESYNC after a Redis
outage) from the log.

The fast path. A subscription whose live events are shared (multiplex.py) gets a `Lane`.
Once the subscriber has been sent one event the ordinary way (that tells the lane its socket,
its operation id and extensions, and the executor of its selection), and whenever it is
caught up (its mailbox is empty) and its selection renders synchronously, `follow` attaches
the lane to the mailbox and waits. The fan-out (fanout.py) then hands each live event to the
lane, in the listener itself: the selection's result for the subscriber's audience class
(executed once per process, shared), encoded once per distinct message, written to the socket
with one synchronous send — no task wake-up, no strawberry or graphql-core pipeline per
subscriber. The lane gives the event back to the mailbox instead — which detaches it, so
`follow` goes on from the lane's last sequence, exactly as if it had sent everything itself —
whenever it cannot be sure to do exactly what the ordinary path would:

- a gap (the event is not the next sequence) or RESYNC: `follow` fills it from the log;
- a result that is not shared data without errors, or not known without waiting;
- a socket that cannot take the frame now: write buffer over its high-water mark, closing or
  closed. Events then wait in the bounded mailbox and a subscriber that falls
  SUBSCRIBER_MAILBOX_SIZE events behind is dropped with SLOW_CONSUMER, as before.

A lane is detached when its operation completes or is unsubscribed (the WebSocket handlers
close it before anything else), and when the mailbox fails (SLOW_CONSUMER,
EVENTS_UNAVAILABLE), which `follow` then raises as before.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from forecourt.subscriptions.fanout import RESYNC, Mailbox, Published
from forecourt.subscriptions.multiplex import (
    SharedData,
    SharedEvent,
    extensions_text,
    render_now,
    selection_of,
)

# The lane of the subscription the current task runs (strawberry runs each operation in a
# task of its own): how the executor and the WebSocket handler find it.
_current: contextvars.ContextVar[Lane | None] = contextvars.ContextVar("forecourt_lane", default=None)

# Events delivered by the fast path, and the frames it made for them, per process: tests read them.
delivered = 0
frames_made = 0
_FIXED: Any = object()


class _Group:
    """The lanes whose frames are the same bytes for the same audience class (same selection,
    operation id, extensions and socket kind): one object per such set while any lane holds
    it, so that finding an event's frame costs a hash by identity (see Lane.offer)."""

    __slots__ = ("__weakref__",)


_groups: weakref.WeakValueDictionary[tuple, _Group] = weakref.WeakValueDictionary()


def _group(key: tuple) -> _Group:
    group = _groups.get(key)
    if group is None:
        group = _groups[key] = _Group()
    return group


class Lane:
    """One subscriber's fast path (see the module's docstring)."""

    __slots__ = ("closed", "executor", "extensions", "kind", "last", "mailbox", "operation_id", "owner",
                 "plan", "share", "socket")

    def __init__(self, mailbox: Mailbox, share: Callable[[Published], SharedEvent]) -> None:
        self.mailbox = mailbox
        self.share = share
        self.last = -1
        self.closed = False
        self.executor: Any = None  # the subscription's graphql-core executor
        self.socket: Any = None  # sockets.py
        self.kind = self.operation_id = self.extensions = ""
        self.owner: tuple[dict, str] | None = None
        self.plan: tuple | None = None  # see _plan

    def ready(self) -> bool:
        return (not self.closed and self.socket is not None and self.executor is not None
                and selection_of(self.executor).synchronous)

    def offer(self, published: Published) -> bool:
        """Send a live event to the socket, or give it back (False): see the module's docstring.

        This runs once per subscriber per event, in one synchronous loop over the process's
        subscribers (the last one written waits for all the others), so the common case is
        short: the frame for the lane's group (selection, message and socket kind: see
        `_plan`) and audience class is made by the first lane that needs it and written as it
        is by the others."""
        global delivered, frames_made
        try:
            sequence = published.payload["sequence"]
            last = self.last
            if sequence != last + 1:
                return sequence <= last  # already delivered, or a gap to fill from the log
            event = published.share(self.share)
            plan = self.plan
            if plan is None or plan[0] is not event.visibility:
                plan = self.plan = self._plan(event)
            _, group, viewer, audience, _ = plan
            if viewer is not _FIXED:
                audience = event.audience_class(viewer)
            if group is None:  # a socket that compresses on its own
                message = self._message(event, audience)
                if message is None or not self.socket.send(message):
                    return False
            else:
                frames = event.frames
                frame = frames.get((group, audience))
                if frame is None:
                    message = self._message(event, audience)
                    if message is None:
                        return False
                    frame = frames[(group, audience)] = self.socket.frame(message)
                    frames_made += 1
                if not self.socket.write(frame):
                    return False
        except Exception:  # noqa: BLE001 (the ordinary path meets it again and reports it)
            return False
        self.last = sequence
        delivered += 1
        return True

    def _message(self, event: SharedEvent, audience: Any) -> list | None:
        """The lane's message for the event and an audience class (SharedData.message), or
        None if the ordinary path must send it."""
        key = (self.plan[4], audience)
        message = event.messages.get(key)
        if message is None:
            result = render_now(self.executor, event)
            if result is None or result.errors or type(result.data) is not SharedData:
                return None
            message = event.messages[key] = result.data.message(self.kind, self.operation_id,
                                                                self.extensions)
        return message

    def _plan(self, event: SharedEvent) -> tuple:
        """What the lane's frames depend on, for the events of one visibility: (visibility,
        the lane's group — what identifies its frames but the audience: the message and the
        socket's kind; None for a socket whose frames are its own —, the viewer to classify
        per event or _FIXED, the audience when fixed, what identifies the message but the
        audience). The audience is the one execute_shared keys by
        (multiplex.Selection.audience), so the fast path and the ordinary path share results."""
        selection = selection_of(self.executor)
        context = self.executor.context_value
        audience = selection.audience(event, context)  # fills selection.closed / .viewers
        visibility = event.visibility
        viewer = selection.viewers.get(visibility, _FIXED) if selection.closed[visibility] else _FIXED
        message_key = (selection.key, self.kind, self.operation_id, self.extensions)
        kind = self.socket.frame_kind()
        group = None if kind is None else _group((message_key, kind))
        return (visibility, group, viewer, None if viewer is not _FIXED else audience, message_key)

    def close(self) -> None:
        """No more fast-path deliveries (the operation is over or unsubscribed)."""
        self.closed = True
        if self.mailbox.lane is self:
            self.mailbox.lane = None
        if self.owner is not None:
            lanes, operation_id = self.owner
            if lanes.get(operation_id) is self:
                del lanes[operation_id]
            self.owner = None


def capture_executor(executor: Any) -> None:
    """Called by the executor for each event of a subscription, in the subscription's task."""
    lane = _current.get()
    if lane is not None and lane.executor is None:
        lane.executor = executor


def bind(socket: Any, lanes: dict[str, Lane], kind: str, message: Any) -> None:
    """Called by a WebSocket handler after sending `message`, in the operation's task: the
    first event sent for a subscription with a lane tells the lane how to send the next ones
    (`kind`: "next" or "data"; `lanes`: the handler's lanes by operation id, closed when the
    operation is)."""
    lane = _current.get()
    if lane is None or lane.socket is not None or lane.closed or socket is None:
        return
    if message.get("type") != kind:
        return
    payload = message.get("payload") or {}
    if payload.get("data") is None or payload.get("errors"):
        return
    operation_id = message["id"]
    lane.kind, lane.operation_id = kind, operation_id
    # The schema's extensions report per operation (the cost): the same for every event.
    lane.extensions = extensions_text(payload.get("extensions"))
    lane.socket = socket
    previous = lanes.get(operation_id)
    if previous is not None and previous is not lane:
        previous.close()
    lanes[operation_id] = lane
    lane.owner = (lanes, operation_id)


async def follow(
    mailbox: Mailbox,
    *,
    last: int,
    current: int,
    stored: Callable[[int], Awaitable[list[dict]]],
    render: Callable[[dict], Any],
    share: Callable[[Published], SharedEvent] | None = None,
    final: Callable[[dict], bool] | None = None,
    finished: bool = False,
) -> AsyncIterator[Any]:
    """The events after `last`, in sequence order, each once: replayed from the log
    (`stored(after)`: the next stored payloads after a sequence, in order) up to `current`,
    then live from `mailbox`. `render(payload)`: the value to yield for a payload;
    `share(published)`: the value shared by the process's subscribers for a live event (and
    the fast path), if the subscription has one; `final(payload)`: the event ends the stream;
    `finished`: nothing will happen after `current`."""
    lane = None
    if share is not None:
        lane = Lane(mailbox, share)
        _current.set(lane)
    try:
        while last < current:  # replay
            payloads = await stored(last)
            if not payloads:
                break
            for payload in payloads:
                last = payload["sequence"]
                yield render(payload)
                if final is not None and final(payload):
                    return
        if finished and last >= current:
            return
        while True:
            if lane is not None and mailbox.idle and lane.ready():
                lane.last = last
                mailbox.lane = lane  # live events go straight to the socket until given back
            message = await mailbox.get()
            if lane is not None and lane.last > last:
                last = lane.last  # sent by the fast path
            if message is RESYNC:
                payloads = await stored(last)
            else:
                payload = message.payload
                sequence = payload["sequence"]
                if sequence <= last:
                    continue  # already sent
                if sequence == last + 1:
                    last = sequence
                    # rendered once per selection and audience
                    yield message.share(share) if share is not None else render(payload)
                    if final is not None and final(payload):
                        return
                    continue
                payloads = await stored(last)
            for payload in payloads:
                if payload["sequence"] == last + 1:
                    last = payload["sequence"]
                    yield render(payload)
                    if final is not None and final(payload):
                        return
    finally:
        if lane is not None:
            lane.close()
