"""The bid path's SQL, run on a raw asyncpg connection: it is the hottest write in the product,
and one round trip to lock, check and write (plus one to read, when the writer does not know
the auction as it is) is what lets a busy auction keep up (bid_context(),
forecourt/db/migrations/versions/0012_bid_write.py; write_bids(), 0014_bid_write_version.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

CONTEXT = "SELECT bid_context($1, $2, $3, $4, $5)"
WRITE = "SELECT * FROM write_bids(" + ", ".join(f"${n}" for n in range(1, 29)) + ")"

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
                  keys: Iterable[tuple[uuid.UUID, str]], *, lock: bool) -> dict[str, Any] | None:
    """What the bid rules need: with `lock`, read under the auction's and the bidders' wallets'
    locks (held until the caller's transaction ends); without, one consistent snapshot."""
    key_bidders, key_values = zip(*keys, strict=True) if keys else ((), ())
    raw = await conn.fetchval(CONTEXT, auction_id, bidders, list(key_bidders), list(key_values), lock)
    return _context(raw)


def _context(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    data = json.loads(raw, parse_float=Decimal)  # money stays exact
    return {
        "auction": _typed(data["auction"]),
        "version": data["version"],
        "bidders": {uuid.UUID(b["id"]): _typed(b) for b in data["bidders"]},
        "earlier": [_typed(b) for b in data["earlier"]],
    }


async def write(conn: asyncpg.Connection, context: dict[str, Any], bidders: list[dict[str, Any]],
                also: list[uuid.UUID], auction: dict[str, Any], bids: list[dict[str, Any]],
                events: list[dict[str, Any]], now: datetime) -> tuple[str | None, dict[str, Any] | None]:
    """Write the bids, their events and the auction: (the auction's new version, None). If the
    auction or the funds or KYC of `bidders` changed since `context` was read, or a bid's
    idempotency key has been used on the auction since, nothing is written: (None, a context
    read just now for `bidders`, `also` and the bids' keys; None if the auction is gone)."""
    version, current = await conn.fetchrow(
        WRITE, auction["id"], context["version"], [b["id"] for b in bidders],
        [b["version"] for b in bidders], [b["committed"] for b in bidders],
        [b["kyc_status"] for b in bidders], also, now,
        [b["id"] for b in bids], [b["position"] for b in bids], [b["bidder_id"] for b in bids],
        [b["amount"] for b in bids], [b["max_amount"] for b in bids], [b["is_proxy"] for b in bids],
        [b["is_platform_bid"] for b in bids], [b["idempotency_key"] for b in bids],
        [e["sequence"] for e in events], [e["type"] for e in events], [e["bid_id"] for e in events],
        [orjson.dumps(e["payload"]).decode() for e in events],
        auction["current_price"], auction["leader_id"], auction["leader_max"], auction["bid_count"],
        auction["bidder_count"], auction["platform_bids"], auction["end_time"], auction["sequence"],
    )
    return version, _context(current)
