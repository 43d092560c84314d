"""`forecourt import vehicles` and examples/bulk_import.py against a live server."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def token(gql, make_user):
    dealer = await make_user("dealer")
    body = await gql('mutation { createApiToken(input: {name: "import"}) { token } }', token=dealer.token)
    return body["data"]["createApiToken"]["token"]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def rows(n: int, **over) -> list[dict]:
    return [{"vin": f"JTDBE32K{i:09d}", "year": 2018, "make": "Toyota", "model": "Camry", "condition": "clean",
             "price": "8,500,000.00", "mileage_km": "45,000", "features": "Sunroof|Leather seats", **over}
            for i in range(n)]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forecourt", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


async def test_csv_import_with_rejects(server, token, tmp_path, db):
    data = rows(25)
    data[3]["vin"] = "TOO-SHORT"
    data[7]["year"] = "twenty"
    data[9]["condition"] = "shiny"
    path = write_csv(tmp_path / "stock.csv", data)
    result = cli("import", "vehicles", str(path), "--url", server.url, "--token", token, "--batch-size", "10")
    assert result.returncode == 3, result.stderr
    assert "25 rows in 3 batches" in result.stdout and "22 created" in result.stdout and "3 rejected" in result.stdout
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 22
    with (tmp_path / "stock.rejected.csv").open() as handle:
        rejected = list(csv.DictReader(handle))
    reasons = {r["vin"]: r["errors"] for r in rejected}
    assert "INVALID_VIN" in reasons["TOO-SHORT"]
    assert "whole number" in reasons[data[7]["vin"]] and "condition" in reasons[data[9]["vin"]]
    again = cli("import", "vehicles", str(path), "--url", server.url, "--token", token)
    assert "0 created, 0 updated" in again.stdout  # idempotent


async def test_jsonl_import_and_dry_run(server, token, tmp_path, db):
    import json
    path = tmp_path / "stock.jsonl"
    path.write_text("\n".join(json.dumps({**r, "features": ["Sunroof"], "year": 2019}) for r in rows(5)) + "\n")
    result = cli("import", "vehicles", str(path), "--url", server.url, "--token", token, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "5 created" in result.stdout and "dry run" in result.stdout
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 0


async def test_broken_quoting_stops_with_the_line(server, token, tmp_path, db):
    path = tmp_path / "broken.csv"
    path.write_text('vin,year,make,model\nJTDBE32K000000001,2018,Toyota,"Camry\nJTDBE32K000000002,2018,Toyota,Corolla\n')
    result = cli("import", "vehicles", str(path), "--url", server.url, "--token", token)
    assert result.returncode == 1
    assert "broken CSV" in result.stderr and "broken.csv:" in result.stderr
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 0


async def test_unreachable_server_and_bad_token(server, tmp_path):
    path = write_csv(tmp_path / "s.csv", rows(1))
    bad = cli("import", "vehicles", str(path), "--url", server.url, "--token", "fc_pat_nope")
    assert bad.returncode == 1 and "401" in bad.stderr
    gone = cli("import", "vehicles", str(path), "--url", "http://127.0.0.1:1", "--token", "x")
    assert gone.returncode == 1 and "cannot reach" in gone.stderr


async def test_example_script(server, token, tmp_path, db):
    data = rows(3)
    for r in data:
        r["price"] = "8500000.00"
        r["mileage_km"] = "45000"
    path = write_csv(tmp_path / "inv.csv", data)
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "bulk_import.py"), str(path), server.url, token],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "3 created" in result.stdout
    assert await db.fetchval("SELECT count(*) FROM vehicles") == 3
