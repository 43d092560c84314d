"""How uvicorn serves the app: `forecourt serve`, the benchmarks and the multi-process tests all
run it with `uvicorn_options()`.

HTTP: uvicorn writes a response's status line and headers as soon as the app starts the
response, and its body as a second write: two TCP segments (sockets are TCP_NODELAY) and two
wake-ups of the client for every small GraphQL answer. `HttpProtocol` holds the headers until
the body's first write in the same turn of the event loop and writes both at once (aiohttp and
undici do the same); a response whose body comes later gets its headers at the end of the
turn, as before, just without a second segment.

WebSockets: uvicorn's own, with compression shared by subscribers (subscriptions/sockets.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from forecourt.config import Settings
from forecourt.subscriptions.sockets import WebSockets

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class CoalescingTransport:
    """A transport whose response heads wait for their body (see the module's docstring)."""

    __slots__ = ("_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held + data)
        elif data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


if HttpToolsProtocol is not None:

    class HttpProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol writing each small response in one segment."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

        def handle_websocket_upgrade(self) -> None:
            # A WebSocket writes its own frames: it gets the socket's transport itself.
            self.transport = self.transport.transport  # type: ignore[attr-defined]
            super().handle_websocket_upgrade()

else:  # pragma: no cover
    HttpProtocol = None  # type: ignore[assignment,misc]


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": HttpProtocol or "auto",
        "ws": WebSockets or "auto",
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "ws_ping_interval": None,  # the GraphQL protocols ping (schema/http.py)
        # X-Forwarded-For is believed only from the configured proxies (uvicorn's default
        # believes any local peer, so a client beside the server could pick its address).
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or None,
    }
