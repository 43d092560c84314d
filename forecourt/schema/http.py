"""GraphQL over HTTP and WebSocket on one path, on top of strawberry's ASGI view.

Where strawberry's defaults differ from the GraphQL-over-HTTP spec we follow the spec: 400 for
malformed JSON and parse errors, 422 for validation errors, 405 for a mutation over GET; error
bodies are always JSON with `extensions.code`. WebSockets authenticate from the
`connection_init` payload and get server pings so idle mobile sockets stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.unset import UNSET

from forecourt.auth.errors import AuthError
from forecourt.auth.rate_limit import RateLimited
from forecourt.schema.context import AppState, Context
from forecourt.schema.errors import (
    BAD_USER_INPUT,
    PARSE_FAILED,
    REQUEST_ERROR_STATUS,
    RESPONSE_TOO_LARGE,
)
from forecourt.subscriptions.live import Lane, bind
from forecourt.subscriptions.multiplex import SharedData, frame
from forecourt.subscriptions.sockets import SCOPE_KEY, direct_socket

GRAPHQL_RESPONSE = "application/graphql-response+json"
def error_response(status: int, message: str, code: str, headers: dict | None = None) -> Response:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def send_shared(websocket: Any, kind: str, message: Any) -> bool:
    """Send a `next`/`data` message carrying a multiplexed result's data (and no errors) with
    the data's JSON encoded once for all its subscribers (forecourt/subscriptions/multiplex.py).
    False for any other message."""
    if message.get("type") != kind:
        return False
    payload = message["payload"]
    data = payload.get("data")
    if type(data) is not SharedData or "errors" in payload:
        return False
    try:
        await websocket.ws.send_text(frame(kind, message["id"], data, payload.get("extensions")))
    except WebSocketDisconnect as exc:
        raise WebSocketDisconnected from exc
    return True


def direct_socket_of(websocket: Any) -> Any:
    """The connection's fast-path socket (forecourt/subscriptions/sockets.py), if it has one."""
    return websocket.ws.scope.get(SCOPE_KEY)


class PingingTransportWSHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws with server-initiated pings after the connection is acknowledged,
    multiplexed results sent as encoded once, and live events of caught-up subscribers sent
    by the fast path (forecourt/subscriptions/live.py)."""

    _lanes: dict[str, Lane] | None = None

    async def send_message(self, message: Any) -> None:
        if not await send_shared(self.websocket, "next", message):
            await super().send_message(message)
        if self._lanes is None:
            self._lanes = {}
        bind(direct_socket_of(self.websocket), self._lanes, "next", message)

    async def cleanup_operation(self, operation_id: str) -> None:
        # Unsubscribed (`complete`) or disconnected: not one more event, even before the
        # operation's task has seen its cancellation.
        lane = (self._lanes or {}).get(operation_id)
        if lane is not None:
            lane.close()
        await super().cleanup_operation(operation_id)

    _pinger: asyncio.Task | None = None

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._pinger is None:
            self._pinger = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self.view.keep_alive_interval)
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()


class LegacyWSHandler(BaseGraphQLWSHandler):
    """graphql-ws, with multiplexed results sent as encoded once and live events of caught-up
    subscribers sent by the fast path (forecourt/subscriptions/live.py)."""

    _lanes: dict[str, Lane] | None = None

    async def send_message(self, message: Any) -> None:
        if not await send_shared(self.websocket, "data", message):
            await super().send_message(message)
        if self._lanes is None:
            self._lanes = {}
        bind(direct_socket_of(self.websocket), self._lanes, "data", message)

    async def cleanup_operation(self, operation_id: str) -> None:
        # `stop` or disconnected: not one more event, even before the operation's task has
        # seen its cancellation.
        lane = (self._lanes or {}).get(operation_id)
        if lane is not None:
            lane.close()
        await super().cleanup_operation(operation_id)


class GraphQLView(GraphQL):
    graphql_transport_ws_handler_class = PingingTransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema: Any, state: AppState) -> None:
        settings = state.settings
        super().__init__(
            schema,
            graphql_ide="graphiql",
            keep_alive=True,  # the legacy graphql-ws protocol's "ka" messages
            keep_alive_interval=settings.ws_keepalive_seconds,
            connection_init_wait_timeout=timedelta(
                seconds=settings.ws_connection_init_timeout_seconds
            ),
            # Sockets authenticate with a token in connection_init, never with cookies, so a
            # page on another origin gains nothing it could not do itself.
            allowed_origins=settings.cors_origins or ["*"],
        )
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})
        try:
            if scope["type"] == "http":
                request = Request(scope, receive)
                try:
                    response = await self.run(request)
                except HTTPException as err:
                    code = PARSE_FAILED if err.status_code == 400 else BAD_USER_INPUT
                    headers = {"Allow": "POST"} if err.status_code == 405 else None
                    response = error_response(err.status_code, err.reason, code, headers)
                except AuthError as err:
                    response = error_response(
                        401, err.message, err.code, {"WWW-Authenticate": "Bearer"}
                    )
                except RateLimited as err:
                    response = error_response(
                        429,
                        f"too many requests; retry in {err.retry_after}s",
                        "RATE_LIMITED",
                        {"Retry-After": str(err.retry_after)},
                    )
                await response(scope, receive, send)
            else:
                scope[SCOPE_KEY] = direct_socket(receive)
                await self.run(WebSocket(scope, receive=receive, send=send))
        finally:
            ctx = scope["state"].get("graphql_context")
            if ctx is not None:
                await ctx.close()

    async def get_context(self, request: Any, response: Any) -> Context:
        ctx = Context(self.state, request, response)
        request.scope["state"]["graphql_context"] = ctx
        if request.scope["type"] == "http":
            await ctx.authenticate(request.headers.get("authorization"))
            principal = ctx.principal
            await self.state.rate_limiter.check(
                user_id=principal.user_id if principal else None, ip=ctx.client_ip
            )
        return ctx

    async def on_ws_connect(self, context: Context) -> Any:
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        if not authorization and params.get("token"):
            authorization = f"Bearer {params['token']}"
        try:
            await context.authenticate(authorization if isinstance(authorization, str) else None)
        except AuthError as err:
            raise ConnectionRejectionError({"message": err.message, "code": err.code}) from err
        return UNSET

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as err:
            if isinstance(err.__cause__, InvalidOperationTypeError):
                raise HTTPException(405, "mutations must be sent with POST") from err
            raise

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)  # its JSONDecodeError is json's: Strawberry answers 400

    async def process_result(self, request: Any, result: Any) -> dict:
        response = await super().process_result(request, result)
        if result.errors and result.data is None and _request_error_status(response):
            response.pop("data", None)  # the operation never ran: no "data" key (spec)
        return response

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        status = 200
        if isinstance(response_data, dict):
            status = _request_error_status(response_data) or 200
        body = _bounded(orjson.dumps(response_data), self.state.settings.max_response_bytes)
        response = Response(body, status_code=status, media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response


def _bounded(body: bytes, max_bytes: int) -> bytes:
    """The encoded response, or an error in its place when it is larger than max_bytes: the
    cost budget is an estimate, and this bounds what one answer can hold. The operation did
    run, so the error says that a mutation's changes were made."""
    if len(body) <= max_bytes:
        return body
    message = (
        f"the response is larger than {max_bytes} bytes and was not sent; ask for fewer "
        "items or fields (a mutation's changes, if any, were made)"
    )
    error = {"message": message, "extensions": {"code": RESPONSE_TOO_LARGE}}
    return orjson.dumps({"data": None, "errors": [error]})


def _request_error_status(response: dict) -> int | None:
    """The status of a request error (parse, validation, limits, bad variables), else None."""
    errors = response.get("errors") or []
    if not errors or response.get("data") is not None:
        return None
    first = errors[0]
    code = (first.get("extensions") or {}).get("code")
    if code in REQUEST_ERROR_STATUS:
        return REQUEST_ERROR_STATUS[code]
    if code == BAD_USER_INPUT and not first.get("path"):
        return 400
    return None
