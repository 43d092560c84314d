"""Synchronous sends for the fast path (live.py): a message written straight to a WebSocket
connection from the fan-out's listener, without a task, an `await` or the ASGI send chain.

Only uvicorn's websockets-sansio protocol (uvicorn's default WebSocket implementation with the
`websockets` package) is supported: its ASGI `receive` is a method of the connection's
protocol object, which holds the Sans-I/O `websockets` connection and the transport. What
`send` does here is what uvicorn's own `send` does for a text message, minus the wait for a
writable transport: a transport over its high-water mark (or a connection closing) makes
`send` refuse (False), and the subscriber's events go the ordinary way. Under any other
server or WebSocket implementation there is no fast path (`direct_socket` gives None).
"""

from __future__ import annotations

from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import State

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol,
    )
except ImportError:  # pragma: no cover
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

SCOPE_KEY = "forecourt.direct_socket"


class UvicornSocket:
    __slots__ = ("protocol",)

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol

    def send(self, message: list) -> bool:
        """Write one text message (`SharedData.message`: `[UTF-8 bytes, frame or None]`) as a
        WebSocket frame; False if the connection cannot take it now."""
        protocol = self.protocol
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        transport = protocol.transport
        conn = protocol.conn
        if transport.is_closing() or conn.state is not State.OPEN or conn.expect_continuation_frame:
            return False
        if conn.extensions:
            # permessage-deflate: compressed with this connection's own context
            conn.send_text(message[0])
            data = b"".join(conn.data_to_send())
        else:
            # Unmasked and uncompressed, a frame is the same bytes for every connection.
            data = message[1]
            if data is None:
                data = message[1] = Frame(Opcode.TEXT, message[0]).serialize(mask=False)
        transport.write(data)
        return True


def direct_socket(receive: Any) -> UvicornSocket | None:
    """The fast-path socket of a WebSocket connection, from the ASGI `receive` the server
    passed, or None where the server is not one this module can write to directly."""
    protocol = getattr(receive, "__self__", None)
    if WebSocketsSansIOProtocol is None or not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    if not all(hasattr(protocol, name) for name in
               ("close_sent", "disconnected", "writable", "transport", "conn")):
        return None  # pragma: no cover (another uvicorn than the one this was written for)
    return UvicornSocket(protocol)
