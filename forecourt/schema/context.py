"""The typed per-request Context, and the per-process state it draws on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from broadcaster import Broadcast
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from forecourt.auth.authenticate import authenticate, bearer_token
from forecourt.auth.changes import PrincipalChanges
from forecourt.auth.credentials import Credentials
from forecourt.auth.principal import Principal
from forecourt.auth.rate_limit import RateLimiter
from forecourt.config import Settings
from forecourt.db.engine import read_session_factory
from forecourt.db.reader import Reader
from forecourt.integrations.openai import OpenAI
from forecourt.integrations.stripe import Stripe
from forecourt.loaders import Loaders
from forecourt.services import Work, training
from forecourt.services.bidding import BidWriter
from forecourt.subscriptions.outbox import Outbox


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppState:
    """What one server process shares between requests."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broadcast: Broadcast
    credentials: Credentials
    rate_limiter: RateLimiter
    bid_writer: BidWriter
    principal_changes: PrincipalChanges
    clock: Callable[[], datetime] = utc_now
    payments: Stripe | None = None  # set when STRIPE_API_KEY is configured
    openai: OpenAI | None = None  # set when OPENAI_API_KEY is configured
    started_at: float = field(default_factory=time.monotonic)

    @cached_property
    def evaluator(self) -> training.LlmEvaluator | None:
        """Scores finished training sessions with the LLM when OpenAI is configured."""
        if self.openai is None:
            return None
        return training.llm_evaluator(self.openai, self.settings.training_evaluation_model)

    @cached_property
    def read_sessions(self) -> async_sessionmaker[AsyncSession]:
        return read_session_factory(self.engine)


class Context:
    def __init__(self, state: AppState, request: HTTPConnection, response: object) -> None:
        self.state = state
        self.settings = state.settings
        self.request = request
        self.response = response
        self.connection_params: dict | None = None  # set by the WebSocket handlers
        self.authorization: str | None = None  # a WebSocket's, to authenticate it again
        self.operations: set[Context] = set()  # a WebSocket's running operations' contexts
        self.connection: Context | None = None  # a WebSocket operation's connection
        self.task: asyncio.Task | None = None  # a WebSocket operation's
        # Whether a WebSocket operation ends when its caller's access changes (auth/changes.py);
        # one about the caller's own account goes on.
        self.ends_with_caller_change = True
        self.principal: Principal | None = None
        self.outbox = Outbox()
        self._session: AsyncSession | None = None
        self._read_session: AsyncSession | None = None  # autocommit; see `reader`
        self._reader: Reader | None = None
        self._loaders: Loaders | None = None

    def for_operation(self) -> Context:
        """A Context of its own for one operation of a WebSocket connection: the connection's
        caller, and nothing else shared (operations run concurrently). The connection keeps it
        in `operations` while it runs."""
        context = Context(self.state, self.request, self.response)
        context.connection_params = self.connection_params
        context.principal = self.principal
        context.connection = self
        self.operations.add(context)
        return context

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self.state.sessions()
        return self._session

    @property
    def reader(self) -> Reader:
        """Reads (DataLoaders, pages) on their own autocommit session: no BEGIN/ROLLBACK
        round trips. Mutations write through `session`, and end_reads() before and after
        them, so the reads that follow see what they committed."""
        if self._reader is None:
            if self._read_session is None:
                self._read_session = self.state.read_sessions()
            self._reader = Reader(self._read_session)
        return self._reader

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.reader)
        return self._loaders

    def now(self) -> datetime:
        return self.state.clock()

    @property
    def client_ip(self) -> str | None:
        client = self.request.client
        return client.host if client else None

    def work(self) -> Work:
        return Work(self.session, self.outbox, self.now(), self.principal, self.client_ip)

    async def authenticate(self, authorization: str | None) -> None:
        """Resolve the caller; raises Unauthenticated for a bad or expired token."""
        token = bearer_token(authorization)
        if token is None:  # a guest: no session to open, nothing to look up
            self.principal = None
            await self.end_reads()
            return
        self.principal = await authenticate(
            lambda: self.session, self.state.credentials.access_tokens, token, self.now(),
            self.state.credentials.principals,
        )
        await self.end_reads()

    async def end_reads(self) -> None:
        """Finish the read transaction and forget cached rows, so what follows (a mutation,
        the next subscription event) sees the database as it is now."""
        if self._session is not None and self._session.in_transaction():
            await self._session.rollback()
        if self._read_session is not None:
            await self._read_session.close()  # returns its connection; forgets ORM objects
        self._loaders = None

    async def close(self) -> None:
        if self._read_session is not None:
            await self._read_session.close()
            self._read_session = None
        if self._session is not None:
            await self._session.close()
            self._session = None
