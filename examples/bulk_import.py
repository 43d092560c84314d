"""Import a dealer's inventory CSV into Forecourt with nothing but httpx.

    pip install httpx
    python bulk_import.py inventory.csv https://forecourt.example.com fc_pat_...

Columns: vin, year, make, model, condition, price, mileage_km, color, trim, location,
description, features (separated by |). Rows are sent 1,000 at a time; VINs already listed by
you are updated, new ones created; rejected rows are printed with their reasons.
"""

import csv
import sys

import httpx

MUTATION = """mutation($input: ImportVehiclesInput!) {
  importVehicles(input: $input) {
    created updated failed
    rows { index userErrors { field code message } }
    userErrors { code message }
  }
}"""


def to_row(record: dict) -> dict:
    row = {
        "vin": record["vin"], "year": int(record["year"]), "make": record["make"],
        "model": record["model"], "condition": (record.get("condition") or "CLEAN").upper(),
    }
    if record.get("price"):
        row["price"] = record["price"]  # Money is a decimal string, never a float
    if record.get("mileage_km"):
        row["mileageKm"] = int(record["mileage_km"])
    for column in ("color", "trim", "location", "description"):
        if record.get(column):
            row[column] = record[column]
    if record.get("features"):
        row["features"] = [f.strip() for f in record["features"].split("|") if f.strip()]
    return row


def main(path: str, server: str, token: str) -> None:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        records = list(csv.DictReader(handle))
    client = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    for start in range(0, len(records), 1000):
        batch = records[start:start + 1000]
        response = client.post("/graphql", json={
            "query": MUTATION, "variables": {"input": {"rows": [to_row(r) for r in batch]}}})
        response.raise_for_status()
        result = response.json()["data"]["importVehicles"]
        print(f"rows {start + 1}-{start + len(batch)}: {result['created']} created, "
              f"{result['updated']} updated, {result['failed']} rejected")
        for row in result["rows"]:
            for error in row["userErrors"]:
                print(f"  line {start + row['index'] + 2}: {error['message']} ({error['code']})")


if __name__ == "__main__":
    main(*sys.argv[1:4])
