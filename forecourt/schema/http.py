"""GraphQL over HTTP and WebSocket on one path, on top of strawberry's ASGI view.

Where strawberry's defaults differ from the GraphQL-over-HTTP spec we follow the spec: 400 for
malformed JSON and parse errors, 422 for validation errors, 405 for a mutation over GET; error
bodies are always JSON with `extensions.code`. WebSockets authenticate from the
`connection_init` payload and get server pings so idle mobile sockets stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
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
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.types.unset import UNSET

from forecourt.auth.errors import AuthError
from forecourt.schema.context import AppState, Context
from forecourt.schema.errors import (
    BAD_USER_INPUT,
    INTERNAL,
    PARSE_FAILED,
    REQUEST_ERROR_STATUS,
    RESPONSE_TOO_LARGE,
    UNAVAILABLE_MESSAGES,
    unavailable_code,
)
from forecourt.subscriptions.live import Lane, bind
from forecourt.subscriptions.multiplex import SharedData, frame
from forecourt.subscriptions.sockets import SCOPE_KEY, direct_socket

log = logging.getLogger(__name__)

GRAPHQL_RESPONSE = "application/graphql-response+json"
MAX_OPERATION_ID_LENGTH = 128


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


@functools.lru_cache(maxsize=512)
def _is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return False  # refused by the schema as for any transport
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


class PerOperationSchema:
    """The schema as a WebSocket connection's handler sees it. The operations of one socket
    run concurrently, each in a task of its own, so each runs with a Context of its own (its
    own sessions, database connections, loaders and outbox), closed when the operation ends,
    however it ends. Queries and mutations also take one of the connection's
    WS_CONCURRENT_OPERATIONS slots while they run: one socket cannot hold the database pool."""

    def __init__(self, schema: Any, settings: Any) -> None:
        self.schema = schema
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.ws_concurrent_operations)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.schema, name)

    async def stream(self, query: str | None, variable_values: Any = None,
                     context_value: Any = None, root_value: Any = None,
                     operation_name: str | None = None, operation_extensions: Any = None,
                     allowed_operation_types: Any = None) -> AsyncGenerator[Any, None]:
        context = context_value.for_operation()
        results = await self.schema.stream(
            query, variable_values, context, root_value, operation_name, operation_extensions,
            allowed_operation_types)
        long_lived = (isinstance(query, str) and len(query) <= self.settings.max_query_length
                      and _is_subscription(query, operation_name, self.settings.max_tokens))
        return self._scoped(results, context, None if long_lived else self.slots)

    async def subscribe(self, query: str | None, variable_values: Any = None,
                        context_value: Any = None, root_value: Any = None,
                        operation_name: str | None = None,
                        operation_extensions: Any = None) -> AsyncGenerator[Any, None]:
        return await self.stream(query, variable_values, context_value, root_value, operation_name,
                                 operation_extensions, (StrawberryOperationType.SUBSCRIPTION,))

    @staticmethod
    async def _scoped(results: Any, context: Context,
                      slots: asyncio.Semaphore | None) -> AsyncIterator[Any]:
        context.task = asyncio.current_task()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if slots is not None:
                    await stack.enter_async_context(slots)
                await stack.enter_async_context(contextlib.aclosing(results))
                async for result in results:
                    yield result
        finally:
            # Shielded: an operation cancelled twice still returns its connections clean.
            await asyncio.shield(context.close())
            if context.connection is not None:
                context.connection.operations.discard(context)


def _valid_message(message: Any, operation_types: tuple[str, ...]) -> bool:
    """A protocol message as the handlers expect it: an object with a string type, and for an
    operation a bounded string id and a payload whose query, variables and name have the
    right types. Anything else closes the socket as an invalid message, not with a crash."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return False
    if message["type"] not in operation_types:
        return True
    operation_id, payload = message.get("id"), message.get("payload")
    return (isinstance(operation_id, str) and 0 < len(operation_id) <= MAX_OPERATION_ID_LENGTH
            and isinstance(payload, dict) and isinstance(payload.get("query"), str)
            and isinstance(payload.get("variables") or {}, dict)
            and isinstance(payload.get("operationName") or "", str))


PERMISSIONS_CHANGED = {
    "message": "your access changed; subscribe again to go on from afterSequence",
    "extensions": {"code": "PERMISSIONS_CHANGED"},
}


class WatchedSocket:
    """A signed-in socket that follows changes to its caller (forecourt/auth/changes.py):
    authenticated again when the caller changes, closed (4403) when its token no longer
    admits anyone, and its running operations ended when the caller's access changed."""

    context: Context
    websocket: Any
    _watched_user: Any = None
    _recheck: asyncio.Task | None = None
    _recheck_again = False

    def watch_caller(self) -> None:
        principal = self.context.principal
        if principal is not None:
            self._watched_user = principal.user_id
            self.context.state.principal_changes.watch(principal.user_id, self)

    def unwatch_caller(self) -> None:
        if self._watched_user is not None:
            self.context.state.principal_changes.unwatch(self._watched_user, self)
            self._watched_user = None
        if self._recheck is not None:
            self._recheck.cancel()

    def principal_changed(self) -> None:
        if self._recheck is not None and not self._recheck.done():
            self._recheck_again = True  # a change during a check: check once more after it
            return
        self._recheck = asyncio.create_task(self._authenticate_again())

    async def _authenticate_again(self) -> None:
        while True:
            self._recheck_again = False
            context = Context(self.context.state, self.context.request, self.context.response)
            try:
                await context.authenticate(self.context.authorization)
            except AuthError:  # the handler's shutdown unwatches it
                await self.websocket.close(code=4403, reason="Forbidden")
                return
            except Exception:  # the database is unreachable: keep the caller until it is back
                log.warning("could not authenticate a socket again", exc_info=True)
                return
            finally:
                await context.close()
            if context.principal != self.context.principal:
                self.context.principal = context.principal
                going_on = set()
                for operation in self.context.operations:
                    operation.principal = context.principal
                    if not operation.ends_with_caller_change:
                        going_on.add(operation.task)
                for operation_id, task in self.running_operations():
                    if task not in going_on:
                        await self.end_operation(operation_id, PERMISSIONS_CHANGED)
            if not self._recheck_again:
                return

    def running_operations(self) -> list[tuple[str, asyncio.Task | None]]:
        """Each running operation's id and task."""
        raise NotImplementedError

    async def end_operation(self, operation_id: str, error: dict) -> None:
        raise NotImplementedError


class PingingTransportWSHandler(WatchedSocket, BaseGraphQLTransportWSHandler):
    """graphql-transport-ws with server-initiated pings after the connection is acknowledged,
    multiplexed results sent as encoded once, and live events of caught-up subscribers sent
    by the fast path (forecourt/subscriptions/live.py)."""

    _lanes: dict[str, Lane] | None = None

    def __init__(self, view: Any, websocket: Any, context: Any, root_value: Any, schema: Any,
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(view, websocket, context, root_value,
                         PerOperationSchema(schema, view.state.settings), *args, **kwargs)

    async def handle_message(self, message: Any) -> None:
        if not _valid_message(message, ("subscribe",)):
            await self.handle_invalid_message("invalid message")
            return
        await super().handle_message(message)

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
            self.watch_caller()

    def running_operations(self) -> list[tuple[str, asyncio.Task | None]]:
        return [(operation_id, operation.task) for operation_id, operation in self.operations.items()]

    async def end_operation(self, operation_id: str, error: dict) -> None:
        await self.cleanup_operation(operation_id)
        await self.send_message({"id": operation_id, "type": "error", "payload": [error]})

    async def _ping(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self.view.keep_alive_interval)
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        self.unwatch_caller()
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()


class LegacyWSHandler(WatchedSocket, BaseGraphQLWSHandler):
    """graphql-ws, with multiplexed results sent as encoded once and live events of caught-up
    subscribers sent by the fast path (forecourt/subscriptions/live.py)."""

    _lanes: dict[str, Lane] | None = None

    def __init__(self, view: Any, websocket: Any, context: Any, root_value: Any, schema: Any,
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(view, websocket, context, root_value,
                         PerOperationSchema(schema, view.state.settings), *args, **kwargs)

    async def handle_message(self, message: Any) -> None:
        if not _valid_message(message, ("start",)):
            await self.websocket.close(code=4400, reason="invalid message")
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        # One connection_init per socket: each would otherwise start a keep-alive loop.
        if self.connection_acknowledged or self.keep_alive_task is not None:
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.watch_caller()

    async def cleanup(self) -> None:
        self.unwatch_caller()
        await super().cleanup()

    def running_operations(self) -> list[tuple[str, asyncio.Task | None]]:
        return list(self.tasks.items())

    async def end_operation(self, operation_id: str, error: dict) -> None:
        lane = (self._lanes or {}).get(operation_id)
        if lane is not None:
            lane.close()
        await self.send_message({"id": operation_id, "type": "error", "payload": error})
        await self.cleanup_operation(operation_id)

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
                except Exception as err:  # noqa: BLE001 (never a plain-text 500)
                    response = _failure_response(err)
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
        if request.scope["type"] == "http":  # sockets authenticate in connection_init
            await ctx.authenticate(request.headers.get("authorization"))
        return ctx

    async def on_ws_connect(self, context: Context) -> Any:
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        if not authorization and params.get("token"):
            authorization = f"Bearer {params['token']}"
        context.authorization = authorization if isinstance(authorization, str) else None
        try:
            await context.authenticate(context.authorization)
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

    def parse_json(self, data: str | bytes) -> Any:
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the request body must be a JSON object")
        return parsed

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


def _failure_response(err: Exception) -> Response:
    """A JSON answer for a request that failed outside GraphQL execution (authenticating it,
    reading its body): 503 while the database is unreachable, otherwise a logged 500."""
    unavailable = unavailable_code(err)
    if unavailable is not None:
        log.warning("request refused: %s (%r)", unavailable, err)
        return error_response(503, UNAVAILABLE_MESSAGES[unavailable], unavailable,
                              {"Retry-After": "5"})
    log.error("unexpected error handling a request", exc_info=err)
    return error_response(500, "Internal server error", INTERNAL)


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
