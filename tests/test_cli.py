"""The command line, run as real processes: serve on the embedded default, users, migrate,
schema export against the contract."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from forecourt.db.engine import plain_url

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_CHECK = ROOT.parent / "shared" / "tools" / "check_contract.py"
# The wallet belongs to the auctions work; everything else in the identity section is here.
NOT_YET: set[str] = set()
IDENTITY_NAMES = re.compile(
    r"\b(User|Organization|AuthPayload|RegisterInput|LoginInput|SubmitKycInput|ApplyForDealerInput|"
    r"ReviewKycInput|UserPayload|CreateApiTokenInput|ApiTokenPayload|CreateOrganizationInput|"
    r"OrganizationPayload|Role|KycStatus|PlanTier|Node|PageInfo|UserError|DateTime|Query\.(me|node)|"
    r"Mutation\.(register|login|refreshToken|createApiToken|createOrganization|submitKyc|"
    r"applyForDealer|reviewKycApplication))\b"
)


def forecourt(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forecourt", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, **(env or {})}, **kwargs,
    )


def test_schema_export_meets_the_identity_contract(tmp_path):
    result = forecourt("schema", "export")
    assert result.returncode == 0, result.stderr
    assert "type Query" in result.stdout
    sdl = tmp_path / "schema.graphql"
    sdl.write_text(result.stdout)
    if not CONTRACT_CHECK.exists():
        pytest.skip("shared/tools/check_contract.py is not beside the project")
    check = subprocess.run([sys.executable, str(CONTRACT_CHECK), str(sdl)], capture_output=True, text=True)
    problems = [line for line in check.stdout.splitlines() if IDENTITY_NAMES.search(line)]
    assert set(problems) <= NOT_YET, problems


def test_users_create_and_migrate_on_database_url(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "FORECOURT_DATA_DIR": str(tmp_path), "ARGON2_MEMORY_KIB": "1024"}
    assert forecourt("migrate", env=env).returncode == 0
    made = forecourt("users", "create", "--email", "Boss@Example.com", "--password", "Adm1nPass", "--role", "ADMIN", env=env)
    assert made.returncode == 0, made.stderr
    assert "admin boss@example.com" in made.stdout
    dup = forecourt("users", "create", "--email", "boss@example.com", "--password", "Adm1nPass", env=env)
    assert dup.returncode == 1 and "EMAIL_TAKEN" in dup.stderr
    weak = forecourt("users", "create", "--email", "x@example.com", "--password", "weak", env=env)
    assert weak.returncode == 1 and "WEAK_PASSWORD" in weak.stderr
    dealer = forecourt("users", "create", "--email", "d@example.com", "--password", "-", "--role", "dealer",
                       env=env, input="Deal3rPass\n")
    assert dealer.returncode == 0, dealer.stderr
    import asyncio

    import asyncpg

    async def rows():
        conn = await asyncpg.connect(plain_url(database_url))
        try:
            return await conn.fetch("SELECT email, role, kyc_status FROM users ORDER BY email")
        finally:
            await conn.close()

    found = [tuple(r) for r in asyncio.run(rows())]
    assert found == [("boss@example.com", "admin", "none"), ("d@example.com", "dealer", "approved")]


def test_production_refuses_to_start_without_a_secret(tmp_path):
    env = {"FORECOURT_ENV": "production", "JWT_SECRET": "", "FORECOURT_DATA_DIR": str(tmp_path)}
    result = forecourt("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert "JWT_SECRET" in result.stderr
    short = forecourt("serve", "--port", "1", env={**env, "JWT_SECRET": "short"})
    assert short.returncode == 2 and "at least 32" in short.stderr


def test_serve_on_the_embedded_default(tmp_path):
    """Cold start: embedded PostgreSQL, migrations, GraphiQL; a second command reuses the
    running database; Ctrl-C stops the server and the database."""
    from tests.harness import free_port

    port = free_port()
    env = {**os.environ, "FORECOURT_DATA_DIR": str(tmp_path / "data"), "ARGON2_MEMORY_KIB": "1024"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "forecourt", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answered = None
        while time.monotonic() - started < 120:  # a cold start on a busy machine
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=1)
                if r.status_code == 200:
                    answered = time.monotonic() - started
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answered is not None, "serve never answered"
        print(f"cold serve answered its first query after {answered:.2f}s")
        assert httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"Accept": "text/html"}).status_code == 200
        pid_file = tmp_path / "data" / "pgdata" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        # a CLI command on the same data dir attaches to the running database
        made = forecourt("users", "create", "--email", "cli@example.com", "--password", "Cl1Password",
                         env={"FORECOURT_DATA_DIR": str(tmp_path / "data"), "ARGON2_MEMORY_KIB": "1024"})
        assert made.returncode == 0, made.stderr
        assert int(pid_file.read_text().split()[0]) == postmaster
        login = httpx.post(f"http://127.0.0.1:{port}/graphql", json={
            "query": 'mutation { login(input: {email: "cli@example.com", password: "Cl1Password"}) { accessToken } }'})
        assert login.json()["data"]["login"]["accessToken"]
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "GraphiQL at http://127.0.0.1" in output
    assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists()
    assert not _running(postmaster)


def test_sigterm_stops_the_embedded_database_too(tmp_path):
    """systemd, docker and process managers stop a service with SIGTERM to its process alone:
    serve shuts down and stops the embedded PostgreSQL it started."""
    from tests.harness import free_port

    port = free_port()
    env = {**os.environ, "FORECOURT_DATA_DIR": str(tmp_path / "data"), "ARGON2_MEMORY_KIB": "1024"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "forecourt", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # no terminal's process group: the signal reaches serve only
    try:
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, "serve never became healthy"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        postmaster = int((tmp_path / "data" / "pgdata" / "postmaster.pid").read_text().split()[0])
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    deadline = time.monotonic() + 5
    while _running(postmaster) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(postmaster):  # leave no server behind, then fail
        os.kill(postmaster, signal.SIGTERM)
        pytest.fail(f"the embedded PostgreSQL outlived serve\n{output}")
    assert proc.returncode in (0, 128 + signal.SIGTERM), output


def _running(pid: int) -> bool:
    """True if the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_seed_is_idempotent(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "FORECOURT_DATA_DIR": str(tmp_path), "ARGON2_MEMORY_KIB": "1024"}
    first = forecourt("seed", "--vehicles", "60", env=env)
    assert first.returncode == 0, first.stderr
    assert "vehicles: 60 created, 60 in the demo dealer's inventory" in first.stdout
    assert "demo dealer: demo-dealer@" in first.stdout
    assert "training presets: 6 scenarios, 6 buyer personas, 2 products" in first.stdout
    again = forecourt("seed", "--vehicles", "60", env=env)
    assert again.returncode == 0, again.stderr
    assert "vehicles: 0 created, 60 in" in again.stdout and "demo dealer:" not in again.stdout
    assert "training presets: 6 scenarios, 6 buyer personas, 2 products" in again.stdout
