"""The README stays true: its configuration table is the settings object's, and its
walkthrough (the fenced blocks marked `walkthrough`) runs, in order, against a live server.

- ```sh walkthrough: run by bash in a scratch directory whose `.venv/bin/forecourt` runs this
  checkout's `forecourt` against the test's database; must exit 0.
- ```graphql walkthrough: POSTed to the server; a first line `# headers: {...}` gives the
  headers. `$NAME` placeholders are filled from earlier answers (CAPTURES); the answer must
  have no errors and no userErrors.
- ```python walkthrough: started in the background with the captured values in its
  environment; it must finish, successfully, after the next block has run.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from forecourt.cli import settings_table
from forecourt.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_URL = "127.0.0.1:8000"
BLOCK = re.compile(r"^```(\w+) walkthrough\n(.*?)^```$", re.DOTALL | re.MULTILINE)
PLACEHOLDER = re.compile(r"\$([A-Z][A-Z_]*)")
# root field of an answer -> (placeholder, path to the value)
CAPTURES = {
    "login": ("ACCESS_TOKEN", ["accessToken"]),
    "createApiToken": ("API_TOKEN", ["token"]),
    "vehicles": ("VEHICLE_ID", ["edges", 0, "node", "id"]),
    "createAuction": ("AUCTION_ID", ["auction", "id"]),
}


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_configuration_table_is_the_settings():
    text = readme()
    found = re.search(r"<!-- settings -->\n(.*?)<!-- /settings -->", text, re.DOTALL)
    assert found, "README.md needs a <!-- settings --> ... <!-- /settings --> section"
    table = found.group(1)
    assert table == settings_table(), (
        "the README's configuration table is out of date: "
        "replace it with the output of `python -m forecourt config table`"
    )
    variables = re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.MULTILINE)
    assert variables == [f.alias for f in Settings.model_fields.values()]
    assert all(f.description for f in Settings.model_fields.values())
    secrets = [f.alias for f in Settings.model_fields.values() if f.repr is False]
    assert secrets and all(f"| `{name}` | — |" in table for name in secrets)


def test_readme_is_a_users_guide():
    text = readme()
    assert "../" not in text and "seed 0" not in text.lower()
    for link in re.findall(r"\]\((docs/[^)]+)\)", text):
        assert link in ("docs/security.md",) or (ROOT / link).exists(), link
    assert "make serve" in text and "make test" in text
    assert len(re.findall(r"\S+", text)) < 2500 + len(settings_table().split())


def substitute(text: str, values: dict[str, str]) -> str:
    def value(m: re.Match) -> str:
        assert m.group(1) in values, f"nothing earlier in the walkthrough provides ${m.group(1)}"
        return values[m.group(1)]

    return PLACEHOLDER.sub(value, text)


def capture(data: dict, values: dict[str, str]) -> None:
    for field, answer in data.items():
        if field in CAPTURES and answer is not None:
            name, path = CAPTURES[field]
            for step in path:
                answer = answer[step]
            values[name] = answer


def run_graphql(block: str, server_url: str, values: dict[str, str]) -> dict:
    block = substitute(block, values)
    headers = {}
    first, _, _rest = block.partition("\n")
    if first.startswith("# headers:"):
        headers = json.loads(first.removeprefix("# headers:"))
    response = httpx.post(f"{server_url}/graphql", json={"query": block}, headers=headers, timeout=30)
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), (block, body)
    for field, payload in body["data"].items():
        assert not (isinstance(payload, dict) and payload.get("userErrors")), (field, payload)
    capture(body["data"], values)
    return body


def cli_dir(tmp_path: Path) -> Path:
    """A scratch directory whose `.venv/bin/forecourt` is this checkout's command."""
    work = tmp_path / "work"
    script = work / ".venv" / "bin" / "forecourt"
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m forecourt "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return work


async def test_walkthrough_runs(server, database_url, tmp_path):
    text = readme()
    blocks = BLOCK.findall(text)
    kinds = [kind for kind, _ in blocks]
    assert kinds.count("sh") >= 2 and "graphql" in kinds and "python" in kinds, kinds
    work = cli_dir(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update({
        "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url,
        "FORECOURT_DATA_DIR": str(tmp_path / "data"), "ARGON2_MEMORY_KIB": "1024", "ARGON2_TIME_COST": "1",
    })
    http_url, ws_url = server.url, server.url.replace("http://", "ws://")
    values: dict[str, str] = {}
    background: list[tuple[subprocess.Popen, str]] = []
    try:
        for kind, block in blocks:
            pending, background = background, []
            if kind == "sh":
                script = block.replace(f"http://{README_URL}", http_url)
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", script], check=False, cwd=work, capture_output=True,
                    text=True, timeout=60, env={**env, **values},
                )
                assert done.returncode == 0, (block, done.stdout, done.stderr)
            elif kind == "graphql":
                run_graphql(block, http_url, values)
            elif kind == "python":
                path = tmp_path / "walkthrough.py"
                path.write_text(block.replace(f"ws://{README_URL}", ws_url))
                proc = subprocess.Popen(
                    [sys.executable, str(path)], cwd=work, env={**env, **values},
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                background.append((proc, block))
            else:
                raise AssertionError(f"unknown walkthrough block kind {kind!r}")
            for proc, source in pending:  # a background script finishes once the next step has run
                out, err = proc.communicate(timeout=30)
                assert proc.returncode == 0, (source, out, err)
                # what the README says the script prints
                assert "1 CANCELLED CANCELLED" in text and "1 CANCELLED CANCELLED" in out, out
        assert not background, "the walkthrough ends with a background script nobody waits for"
    finally:
        for proc, _ in background:
            proc.kill()
            proc.communicate()
    assert {"ACCESS_TOKEN", "API_TOKEN", "VEHICLE_ID", "AUCTION_ID"} <= values.keys()
    # the import wrote the file's vehicles through the API
    body = run_graphql(
        '# headers: {"Authorization": "Bearer $API_TOKEN"}\n'
        '{ vehicleByVin(vin: "JTDBE32K000000002") { make model mileageKm } }',
        http_url, values,
    )
    assert body["data"]["vehicleByVin"] == {"make": "Toyota", "model": "Corolla", "mileageKm": 30500}
