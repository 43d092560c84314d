"""`forecourt import vehicles`: a client of the public API for dealers' inventory files.

Reads CSV or JSON Lines, checks each row's types locally (a wrong type would otherwise fail a
whole batch at the GraphQL layer), sends batches to `importVehicles`, shows progress, and
writes every rejected row with its reasons to a CSV file.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

IMPORT = """mutation($input: ImportVehiclesInput!) { importVehicles(input: $input) {
  created updated failed userErrors { code message }
  rows { index userErrors { field code message } } } }"""

CONDITIONS = {"SALVAGE", "ROUGH", "CLEAN", "EXCELLENT", "UPGRADED"}
# file column -> API field; both spellings accepted
ALIASES = {
    "mileage_km": "mileageKm", "mileage": "mileageKm", "catalog_entry_id": "catalogEntryId",
}
INTEGER_FIELDS = ("year", "mileageKm")
LIST_FIELDS = ("features", "images")
TEXT_FIELDS = ("vin", "make", "model", "trim", "color", "price", "location", "description",
               "catalogEntryId", "condition")


class FileError(Exception):
    """The file itself cannot be read (not one bad row): stop and say where."""


@dataclass
class Summary:
    rows: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    rejects: list[tuple[dict, str]] = field(default_factory=list)


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, raw row) for each record of a .csv or .jsonl file."""
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise FileError(f"{path}:{number}: not valid JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise FileError(f"{path}:{number}: each line must be a JSON object")
                yield number, record
    elif path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, strict=True)
            try:
                for record in reader:
                    if None in record:
                        raise FileError(f"{path}:{reader.line_num}: more values than columns")
                    yield reader.line_num, record
            except csv.Error as err:
                raise FileError(f"{path}:{reader.line_num}: broken CSV ({err})") from None
    else:
        raise FileError(f"{path}: use a .csv or .jsonl file")


def to_input(raw: dict) -> dict:
    """The CreateVehicleInput for a raw row; ValueError says what is wrong with it."""
    row = {ALIASES.get(k.strip(), k.strip()): v for k, v in raw.items() if k}
    unknown = set(row) - set(INTEGER_FIELDS) - set(LIST_FIELDS) - set(TEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown column(s): {', '.join(sorted(unknown))}")
    out: dict = {}
    for name, value in row.items():
        if value is None or value == "":
            continue
        if name in INTEGER_FIELDS:
            try:
                out[name] = int(str(value).replace(",", "").strip())
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {str(value)[:40]!r}") from None
        elif name in LIST_FIELDS:
            items = value if isinstance(value, list) else str(value).split("|")
            out[name] = [str(i).strip() for i in items if str(i).strip()]
        else:
            out[name] = str(value).strip()
    condition = out.get("condition", "CLEAN").upper()
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(sorted(CONDITIONS))}")
    out["condition"] = condition
    if "price" in out:
        out["price"] = out["price"].replace(",", "")
    for required in ("vin", "year", "make", "model"):
        if required not in out:
            raise ValueError(f"{required} is required")
    return out


def run(
    path: Path,
    *,
    url: str,
    token: str,
    batch_size: int = 1000,
    mode: str = "UPSERT",
    dry_run: bool = False,
    rejects_path: Path | None = None,
    progress=sys.stderr,
) -> Summary:
    summary = Summary()
    started = time.perf_counter()
    endpoint = url.rstrip("/") + ("" if url.rstrip("/").endswith("/graphql") else "/graphql")
    headers = {"Authorization": f"Bearer {token}"}
    batch: list[tuple[dict, dict]] = []
    with httpx.Client(timeout=300, headers=headers) as client:

        def send() -> None:
            inputs = [item for _, item in batch]
            response = client.post(endpoint, json={"query": IMPORT, "variables": {"input": {
                "rows": inputs, "mode": mode, "dryRun": dry_run}}})
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            if response.status_code != 200 or body.get("errors"):
                message = (body.get("errors") or [{"message": response.text[:200]}])[0]["message"]
                raise FileError(f"the server refused a batch ({response.status_code}): {message}")
            payload = body["data"]["importVehicles"]
            if payload["userErrors"]:
                raise FileError("; ".join(e["message"] for e in payload["userErrors"]))
            summary.created += payload["created"]
            summary.updated += payload["updated"]
            for row in payload["rows"]:
                if row["userErrors"]:
                    reasons = "; ".join(
                        f"{e['field'][-1] if e['field'] else 'row'}: {e['message']} ({e['code']})"
                        for e in row["userErrors"]
                    )
                    summary.rejects.append((batch[row["index"]][0], reasons))
            summary.batches += 1
            batch.clear()
            _progress(progress, summary)

        for _, raw in read_rows(path):
            summary.rows += 1
            try:
                batch.append((raw, to_input(raw)))
            except ValueError as err:
                summary.rejects.append((raw, str(err)))
            if len(batch) >= batch_size:
                send()
        if batch:
            send()
    summary.rejected = len(summary.rejects)
    summary.seconds = time.perf_counter() - started
    if rejects_path is not None and summary.rejects:
        write_rejects(rejects_path, summary.rejects)
    return summary


def _progress(stream, summary: Summary) -> None:
    if stream is not None:
        stream.write(
            f"\r{summary.rows:,} rows read, {summary.created:,} created, "
            f"{summary.updated:,} updated, {len(summary.rejects):,} rejected"
        )
        stream.flush()


def write_rejects(path: Path, rejects: list[tuple[dict, str]]) -> None:
    columns: list[str] = []
    for raw, _ in rejects:
        columns += [c for c in raw if c not in columns]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, "errors"], extrasaction="ignore")
        writer.writeheader()
        for raw, reasons in rejects:
            flat = {k: "|".join(v) if isinstance(v, list) else v for k, v in raw.items()}
            writer.writerow({**flat, "errors": reasons})
