"""The bid path's SQL, run on a raw asyncpg connection: it is the hottest write in the product,
and one round trip to lock and read plus one to write is what lets a busy auction keep up."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

CONTEXT = "SELECT bid_context($1, $2, $3, $4)"

WRITE = """
WITH new_bids AS (
    INSERT INTO bids (id, auction_id, position, bidder_id, amount, max_amount, is_proxy,
                      is_platform_bid, idempotency_key, created_at)
    SELECT id, $1, position, bidder_id, amount, max_amount, is_proxy, is_platform_bid, idempotency_key, $2
    FROM unnest($3::uuid[], $4::int[], $5::uuid[], $6::numeric[], $7::numeric[], $8::bool[], $9::bool[],
                $10::text[]) AS b(id, position, bidder_id, amount, max_amount, is_proxy, is_platform_bid,
                                  idempotency_key)
), new_events AS (
    INSERT INTO auction_events (auction_id, sequence, type, bid_id, occurred_at, payload)
    SELECT $1, sequence, type, bid_id, $2, payload
    FROM unnest($11::int[], $12::text[], $13::uuid[], $14::jsonb[]) AS e(sequence, type, bid_id, payload)
)
UPDATE auctions SET current_price = $15, leader_id = $16, leader_max = $17, bid_count = $18,
       bidder_count = $19, platform_bids = $20, end_time = $21, sequence = $22, updated_at = now()
WHERE id = $1
"""

TIME_COLUMNS = {"start_time", "end_time", "original_end_time", "settlement_deadline", "ended_at",
                "settled_at", "created_at", "updated_at"}
ID_COLUMNS = {"id", "vehicle_id", "seller_id", "created_by", "leader_id", "winner_id", "relisted_from",
              "auction_id", "bidder_id"}


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A row from to_jsonb() with the Python types asyncpg would have given it (numbers with a
    fraction are already Decimal; whole amounts become Decimal in the domain's arithmetic)."""
    for name, value in row.items():
        if value is None:
            continue
        if name in TIME_COLUMNS:
            row[name] = datetime.fromisoformat(value)
        elif name in ID_COLUMNS:
            row[name] = uuid.UUID(value)
    return row


async def context(conn: asyncpg.Connection, auction_id: uuid.UUID, bidders: list[uuid.UUID],
                  keys: Iterable[tuple[uuid.UUID, str]]) -> dict[str, Any] | None:
    key_bidders, key_values = zip(*keys, strict=True) if keys else ((), ())
    raw = await conn.fetchval(CONTEXT, auction_id, bidders, list(key_bidders), list(key_values))
    if raw is None:
        return None
    data = json.loads(raw, parse_float=Decimal)  # money stays exact
    return {
        "auction": _typed(data["auction"]),
        "bidders": {uuid.UUID(b["id"]): _typed(b) for b in data["bidders"]},
        "earlier": [_typed(b) for b in data["earlier"]],
    }


async def write(conn: asyncpg.Connection, auction: dict[str, Any], bids: list[dict[str, Any]],
                events: list[dict[str, Any]], now: datetime) -> None:
    await conn.execute(
        WRITE, auction["id"], now,
        [b["id"] for b in bids], [b["position"] for b in bids], [b["bidder_id"] for b in bids],
        [b["amount"] for b in bids], [b["max_amount"] for b in bids], [b["is_proxy"] for b in bids],
        [b["is_platform_bid"] for b in bids], [b["idempotency_key"] for b in bids],
        [e["sequence"] for e in events], [e["type"] for e in events], [e["bid_id"] for e in events],
        [orjson.dumps(e["payload"]).decode() for e in events],
        auction["current_price"], auction["leader_id"], auction["leader_max"], auction["bid_count"],
        auction["bidder_count"], auction["platform_bids"], auction["end_time"], auction["sequence"],
    )
