"""create_app(): /graphql (HTTP + WebSocket), /health; broadcast connected in the lifespan."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import orjson
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from forecourt import __version__, jobs
from forecourt.auth.changes import PrincipalChanges
from forecourt.auth.credentials import Credentials
from forecourt.auth.rate_limit import RateLimiter
from forecourt.config import Settings
from forecourt.db.engine import create_engine, plain_url, session_factory
from forecourt.domain.webhooks import InvalidEvent
from forecourt.integrations.openai import OpenAI
from forecourt.integrations.stripe import Stripe, WebhookRejected
from forecourt.schema.context import AppState, utc_now
from forecourt.schema.execution import freeze_startup_heap
from forecourt.schema.http import GraphQLView, error_response
from forecourt.schema.root import build_schema
from forecourt.services import Work, billing, wallet
from forecourt.services.bidding import BidWriter
from forecourt.subscriptions import broadcast as broadcasting
from forecourt.subscriptions.outbox import Outbox

log = logging.getLogger(__name__)


class BodySizeLimit:
    """Refuse request bodies over the limit with 413, before they are buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = error_response(
            413, f"request body exceeds {self.max_bytes} bytes", "PAYLOAD_TOO_LARGE"
        )
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await too_large(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await too_large(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def create_app(
    settings: Settings, database_url: str, *, clock: Callable[[], datetime] = utc_now
) -> Starlette:
    engine = create_engine(database_url, pool_size=settings.database_pool_size)
    sessions = session_factory(engine)
    broadcast = broadcasting.create_broadcast(settings)
    credentials = Credentials.from_settings(settings)

    async def publish(outbox) -> None:
        await outbox.flush(broadcast)

    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        broadcast=broadcast,
        bid_writer=BidWriter(plain_url(database_url), publish, clock),
        credentials=credentials,
        principal_changes=PrincipalChanges(database_url, credentials.principals),
        rate_limiter=RateLimiter(
            settings.rate_limit_ip_per_minute,
            settings.rate_limit_user_per_minute,
            settings.redis_url,
            credentials_per_ip=settings.rate_limit_credentials_per_minute,
            login_failures_per_account=settings.login_failures_per_account,
            login_failures_per_ip=settings.login_failures_per_ip,
            login_failure_window_seconds=settings.login_failure_window_seconds,
        ),
        clock=clock,
        payments=Stripe(settings) if settings.stripe_api_key else None,
        openai=OpenAI.maybe(settings),
    )
    view = GraphQLView(build_schema(settings), state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        freeze_startup_heap()
        await state.broadcast.connect()
        try:
            async with state.principal_changes.running(), jobs.running(state):
                yield
        finally:
            await state.bid_writer.close()
            if state.payments is not None:
                await state.payments.close()
            if state.openai is not None:
                await state.openai.close()
            await state.broadcast.disconnect()
            await state.rate_limiter.close()
            await engine.dispose()

    async def stripe_webhook(request: Request) -> Response:
        """Stripe's deliveries: verified, applied once per event id in one transaction (a failure
        answers 500 and Stripe delivers again), acknowledged with 200. A malformed event is
        refused with 400 and writes nothing: Stripe retries it for days, so a fix can still apply
        it, and its failures show on Stripe's dashboard."""
        if state.payments is None:
            return error_response(404, "Stripe is not configured", "NOT_FOUND")
        body = await request.body()
        try:
            event = state.payments.verify_webhook(body, request.headers.get("stripe-signature"))
        except WebhookRejected as err:
            return error_response(400, f"webhook rejected: {err}", "BAD_SIGNATURE")
        async with state.sessions() as session:
            work = Work(session, Outbox(), state.clock())
            try:
                async with session.begin():
                    if billing.handles(event.type):  # plans; payment_intent.* and the rest: the wallet
                        await billing.stripe_event(work, event, billing.prices(settings))
                    else:
                        await wallet.stripe_event(work, event, settings.wallet_currency)
            except InvalidEvent as err:
                log.warning("stripe event %s (%s) refused: %s", event.id, event.type, err.message)
                return error_response(400, f"webhook refused: {err.message}", err.code)
            await work.events.flush(state.broadcast)
        return Response(b'{"received":true}', media_type="application/json")

    async def health(request: Request) -> Response:
        report: dict = {
            "status": "ok",
            "version": __version__,
            "uptimeSeconds": round(time.monotonic() - state.started_at, 1),
        }
        started = time.perf_counter()
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            report["database"] = {
                "status": "ok",
                "latencyMs": round((time.perf_counter() - started) * 1000, 2),
            }
        except Exception as err:  # noqa: BLE001 (reported, not raised: this endpoint exists to say so)
            log.warning("health: database unreachable: %s", err)
            report["database"] = {"status": "unavailable"}
            report["status"] = "degraded"
        backend = broadcasting.backend_name(settings)
        try:
            await broadcasting.ping(state.broadcast, settings)
            report["broadcast"] = {"backend": backend, "status": "ok"}
        except Exception as err:  # noqa: BLE001 (reported, not raised, as above)
            log.warning("health: broadcast unreachable: %s", err)
            report["broadcast"] = {"backend": backend, "status": "unavailable"}
            report["status"] = "degraded"
        status = 200 if report["status"] == "ok" else 503
        return Response(orjson.dumps(report), status_code=status, media_type="application/json")

    middleware = [Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    app = Starlette(
        routes=[
            Route("/graphql", view, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
            Route("/health", health),
            Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.forecourt = state
    return app
