"""How uvicorn serves the app: `forecourt serve`, the benchmarks and the multi-process tests all
run it with `uvicorn_options()`: uvicorn's own HTTP, its WebSockets with compression shared by
subscribers (subscriptions/sockets.py), and forwarded addresses believed only from the
configured proxies."""

from __future__ import annotations

from typing import Any

from forecourt.config import Settings
from forecourt.subscriptions.sockets import WebSockets


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "ws": WebSockets or "auto",
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "ws_ping_interval": None,  # the GraphQL protocols ping (schema/http.py)
        # X-Forwarded-For is believed only from the configured proxies (uvicorn's default
        # believes any local peer, so a client beside the server could pick its address).
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.trusted_proxies) or None,
    }
