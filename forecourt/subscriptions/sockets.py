"""Synchronous sends for the fast path (live.py): a message written straight to a WebSocket
connection from the fan-out's listener, without a task, an `await` or the ASGI send chain.

Only uvicorn's websockets-sansio protocol (uvicorn's default WebSocket implementation with the
`websockets` package) is supported: its ASGI `receive` is a method of the connection's
protocol object, which holds the Sans-I/O `websockets` connection and the transport. What
`send` does here is what uvicorn's own `send` does for a text message, minus the wait for a
writable transport: a transport over its high-water mark (or a connection closing) makes
`send` refuse (False), and the subscriber's events go the ordinary way. Under any other
server or WebSocket implementation there is no fast path (`direct_socket` gives None).

One message goes to many subscribers, so what can be shared is made once per message: the
frame of an uncompressed connection (server frames are not masked), and the frame of a
connection whose permessage-deflate compresses each message on its own
(server_no_context_takeover, which `WebSockets` negotiates); a connection that keeps a
compression context (uvicorn's default) compresses its own copy.

Messages under COMPRESSION_THRESHOLD bytes are sent uncompressed on every connection (RFC 7692
leaves compression to the sender, message by message; Node's `ws` does the same under 1 KiB):
a few hundred bytes of JSON shrink little, and each of their subscribers would spend more
inflating them than the network saves.
"""

from __future__ import annotations

import logging
import struct
import zlib
from typing import Any

from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol,
    )
except ImportError:  # pragma: no cover
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

SCOPE_KEY = "forecourt.direct_socket"
COMPRESSION_THRESHOLD = 1024  # bytes of a message's text
_UNKNOWN, _PLAIN, _SHARED_DEFLATE, _OWN_CONTEXT = 0, 1, 2, 3


class UvicornSocket:
    __slots__ = ("compression", "mode", "protocol")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.mode = _UNKNOWN
        self.compression: tuple | None = None

    def send(self, message: list) -> bool:
        """Write one text message (`SharedData.message`: `[UTF-8 bytes, frame or None,
        compressed frames or None]`) as a WebSocket frame; False if the connection cannot
        take it now."""
        protocol = self.protocol
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        transport = protocol.transport
        conn = protocol.conn
        if transport.is_closing() or conn.state is not State.OPEN or conn.expect_continuation_frame:
            return False
        if self.mode is _OWN_CONTEXT or self.frame_kind() is None:
            conn.send_text(message[0])
            data = b"".join(conn.data_to_send())
        else:
            data = self.frame(message)
        transport.write(data)
        return True

    def write(self, frame: bytes) -> bool:
        """Write a frame made by `frame()` (for this socket or any other of the same
        `frame_kind()`); False, writing nothing, if the connection cannot take it now."""
        protocol = self.protocol
        if protocol.close_sent or protocol.disconnected or not protocol.writable.is_set():
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        conn = protocol.conn
        if conn.state is not State.OPEN or conn.expect_continuation_frame:
            return False
        transport.write(frame)
        return True

    def frame_kind(self) -> Any:
        """What the frames of this connection depend on besides the message, once its
        handshake is over: connections of the same kind can be sent the same bytes. None for a
        connection that compresses with a context of its own (each frame is its own)."""
        mode = self.mode
        if mode is _UNKNOWN:  # the handshake is over: extensions are settled
            mode = self.mode = self._mode(self.protocol.conn)
        if mode is _PLAIN:
            return _PLAIN
        if mode is _SHARED_DEFLATE:
            return self.compression
        return None

    def frame(self, message: list) -> bytes:
        """The frame of a message for a connection of a shareable `frame_kind()`, made once
        per message and kind."""
        if self.mode is _PLAIN:
            return self._plain_frame(message)
        if len(message[0]) < COMPRESSION_THRESHOLD:
            return self._plain_frame(message)
        frames = message[2]
        if frames is None:
            frames = message[2] = {}
        data = frames.get(self.compression)
        if data is None:
            data = frames[self.compression] = _compressed_frame(message[0], *self.compression)
        return data

    @staticmethod
    def _plain_frame(message: list) -> bytes:
        data = message[1]
        if data is None:
            data = message[1] = Frame(Opcode.TEXT, message[0]).serialize(mask=False)
        return data

    def _mode(self, conn: Any) -> int:
        extensions = conn.extensions
        if not extensions:
            return _PLAIN
        if len(extensions) == 1 and type(extensions[0]) is SmallMessagesUncompressed:
            deflate = extensions[0]
            if deflate.local_no_context_takeover:
                self.compression = (deflate.local_max_window_bits,
                                    tuple(sorted(deflate.compress_settings.items())))
                return _SHARED_DEFLATE
        return _OWN_CONTEXT


_DATA = (Opcode.TEXT, Opcode.BINARY)


class SmallMessagesUncompressed(PerMessageDeflate):
    """permessage-deflate that sends messages under COMPRESSION_THRESHOLD uncompressed."""

    def encode(self, frame: Frame) -> Frame:
        if frame.fin and frame.opcode in _DATA and len(frame.data) < COMPRESSION_THRESHOLD:
            return frame  # a whole message, its RSV1 bit clear: not compressed
        return super().encode(frame)


class _DeflateFactory(ServerPerMessageDeflateFactory):
    def process_request_params(self, params: Any, accepted_extensions: Any) -> Any:
        response, extension = super().process_request_params(params, accepted_extensions)
        extension.__class__ = SmallMessagesUncompressed
        return response, extension


def _compressed_frame(data: bytes, window_bits: int, settings: tuple) -> bytes:
    """A text frame compressed as permessage-deflate without context takeover compresses it
    (websockets' PerMessageDeflate.encode): the same bytes for every such connection."""
    encoder = zlib.compressobj(wbits=-window_bits, **dict(settings))
    compressed = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
    payload = compressed[:-4]  # a sync flush ends with 00 00 ff ff, which the receiver adds back
    # FIN, RSV1 (compressed), text; server frames are not masked (RFC 6455 5.2)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0xC1, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0xC1, 126, length)
    else:
        header = struct.pack("!BBQ", 0xC1, 127, length)
    return header + payload


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


if WebSocketsSansIOProtocol is not None:

    class WebSockets(WebSocketsSansIOProtocol):
        """uvicorn's websockets-sansio protocol whose permessage-deflate (when enabled:
        WS_PER_MESSAGE_DEFLATE) compresses each message on its own (server_no_context_takeover,
        which RFC 7692 lets a server declare whatever the client offered): a live event sent
        to many subscribers is compressed once per process, and no compressor (~20 KiB) is
        kept per connection. The rest is uvicorn's (window bits and memory level as its own)."""

        def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
            super().__init__(config, server_state, app_state, _loop)
            if config.ws_per_message_deflate:
                self.conn = ServerProtocol(
                    extensions=[_DeflateFactory(
                        server_no_context_takeover=True, server_max_window_bits=12,
                        client_max_window_bits=12, compress_settings={"memLevel": 5},
                    )],
                    max_size=config.ws_max_size,
                    logger=logging.getLogger("uvicorn.error"),
                )
else:  # pragma: no cover
    WebSockets = None  # type: ignore[assignment,misc]
