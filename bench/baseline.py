"""The yardstick: a hand-written asyncpg endpoint returning the same JSON as the GraphQL
vehicles query (one SQL statement, orjson), served by the same uvicorn."""

from __future__ import annotations

import contextlib

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from forecourt.db.engine import plain_url
from forecourt.schema.relay import to_global_id
from forecourt.schema.scalars import serialize_money

QUERY = """
SELECT v.id, v.vin, v.make, v.model, v.year, v.price, v.status,
       c.id AS c_id, c.make AS c_make, c.model AS c_model, c.body_type,
       u.id AS u_id, u.display_name, val.market_value, val.signal,
       a.id AS a_id, coalesce(a.current_price, a.start_price) AS a_price, a.bid_count
FROM vehicles v
LEFT JOIN vehicle_catalog c ON c.id = v.catalog_id
LEFT JOIN auctions a ON a.vehicle_id = v.id
     AND a.status IN ('draft', 'scheduled', 'live', 'ended', 'pending_settlement')
LEFT JOIN users u ON u.id = v.listed_by
LEFT JOIN LATERAL (SELECT market_value, signal FROM vehicle_valuations
                   WHERE vehicle_id = v.id ORDER BY as_of DESC LIMIT 1) val ON true
WHERE v.status <> 'archived'
ORDER BY v.created_at DESC, v.id DESC
LIMIT $1
"""


def create_app(database_url: str) -> Starlette:
    pool: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pool["p"] = await asyncpg.create_pool(plain_url(database_url), min_size=4, max_size=10)
        yield
        await pool["p"].close()

    async def vehicles(request: Request) -> Response:
        first = int(request.query_params.get("first", 50))
        rows = await pool["p"].fetch(QUERY, first)
        edges = [
            {"node": {
                "id": to_global_id("Vehicle", r["id"]), "vin": r["vin"], "make": r["make"],
                "model": r["model"], "year": r["year"],
                "price": serialize_money(r["price"]) if r["price"] is not None else None,
                "status": r["status"].upper(),
                "catalogEntry": {"id": to_global_id("CatalogEntry", r["c_id"]), "make": r["c_make"],
                                 "model": r["c_model"], "bodyType": r["body_type"]} if r["c_id"] else None,
                "activeAuction": {"currentPrice": serialize_money(r["a_price"]), "bidCount": r["bid_count"]}
                if r["a_id"] else None,
                "listedBy": {"id": to_global_id("User", r["u_id"]), "displayName": r["display_name"]}
                if r["u_id"] else None,
                "latestValuation": {"marketValue": serialize_money(r["market_value"]), "signal": r["signal"]}
                if r["market_value"] is not None else None,
            }}
            for r in rows
        ]
        return Response(orjson.dumps({"data": {"vehicles": {"edges": edges}}}), media_type="application/json")

    return Starlette(routes=[Route("/vehicles", vehicles)], lifespan=lifespan)
