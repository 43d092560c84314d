"""Accepted bids per second on one hot auction, through GraphQL over HTTP, at 1, 8, 32 and 128
concurrent clients, against a raw asyncpg loop doing the same lock-check-insert-update
transaction on the same row, in the same run.

    .venv/bin/python -m bench.bids [--seconds 5] [--processes 1]

With `--processes N` (N > 1), N server processes share PostgreSQL and a Redis server (as a
deployment with several processes would: events are published through Redis) and the clients
are spread over them; their bid writers take turns on the auction's row lock.

Each client is its own bidder. A client's bid is the next value of a shared counter times the
increment, so a bid overtaken in flight by a later one is refused as too low: the figure that
counts is accepted bids per second (attempts are reported too). The load generator speaks
HTTP/1.1 keep-alive over asyncio streams, because httpx would saturate a core before the server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import httpx
import orjson

from bench.__main__ import start
from forecourt.db.engine import plain_url
from tests.harness import EmbeddedPostgres, RedisServer

CONCURRENCY = tuple(int(c) for c in os.environ.get("BENCH_CLIENTS", "1,8,32,128").split(","))
INCREMENT = Decimal("1.00")
BID = """mutation($input: PlaceBidInput!) { placeBid(input: $input) {
  bid { id amount } auction { currentPrice bidCount } userErrors { code } } }"""


class Connection:
    """A minimal HTTP/1.1 keep-alive client (Content-Length responses only)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def post_json(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def arrange(url: str, database_url: str, bidders: int) -> tuple[str, list[str], uuid.UUID]:
    """A dealer, a live auction with a fixed increment of 1.00, and funded, KYC'd bidders."""
    conn = await asyncpg.connect(plain_url(database_url))
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def register(role: str, kyc: str) -> tuple[str, uuid.UUID]:
            email = f"bids-{uuid.uuid4().hex[:10]}@example.com"
            body = (await client.post("/graphql", json={"query": """mutation($e: String!) {
                register(input: {email: $e, password: "Bench1234"}) { accessToken } }""",
                "variables": {"e": email}})).json()
            user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
            await conn.execute("UPDATE users SET role = $1, kyc_status = $2 WHERE id = $3", role, kyc, user_id)
            return body["data"]["register"]["accessToken"], user_id

        seller, _ = await register("dealer", "approved")
        vehicle = (await client.post("/graphql", headers={"Authorization": f"Bearer {seller}"}, json={
            "query": """mutation { createVehicle(input: {vin: "BDBENCH0000000001", year: 2020, make: "Toyota",
              model: "Camry", condition: CLEAN}) { vehicle { id } } }"""})).json()
        now = datetime.now(UTC)
        auction = (await client.post("/graphql", headers={"Authorization": f"Bearer {seller}"}, json={
            "query": """mutation($input: CreateAuctionInput!) { createAuction(input: $input) {
              auction { id } userErrors { code } } }""",
            "variables": {"input": {"vehicleId": vehicle["data"]["createVehicle"]["vehicle"]["id"],
                                    "startPrice": "1000.00", "bidIncrement": f"{INCREMENT}",
                                    "startTime": now.isoformat(),
                                    "endTime": (now + timedelta(hours=6)).isoformat()}}})).json()
        tokens = []
        for _ in range(bidders):
            token, user_id = await register("user", "approved")
            await conn.execute(
                "INSERT INTO transactions (id, user_id, type, amount, balance_delta, held_delta, created_at) "
                "VALUES (gen_random_uuid(), $1, 'deposit', 1e12, 1e12, 0, now())", user_id)
            tokens.append(token)
    auction_id = auction["data"]["createAuction"]["auction"]["id"]
    raw = await conn.fetchval("SELECT id FROM auctions")
    await conn.close()
    return auction_id, tokens, raw


async def graphql_bids(urls: list[str], auction_id: str, tokens: list[str], clients: int, seconds: float,
                       counter: itertools.count) -> tuple[float, float]:
    accepted = attempted = 0
    deadline = time.perf_counter() + seconds

    async def client(token: str, url: str) -> None:
        nonlocal accepted, attempted
        host, port = url.removeprefix("http://").split(":")
        conn = await Connection(host, int(port)).open()
        try:
            while time.perf_counter() < deadline:
                amount = Decimal(1000) + INCREMENT * next(counter)
                body = orjson.dumps({"query": BID, "variables": {"input": {
                    "auctionId": auction_id, "amount": f"{amount:.2f}"}}})
                status, response = await conn.post_json("/graphql", body, token)
                assert status == 200, response[:300]
                payload = orjson.loads(response)["data"]["placeBid"]
                attempted += 1
                if not payload["userErrors"]:
                    accepted += 1
                elif payload["userErrors"][0]["code"] != "BID_TOO_LOW":
                    raise AssertionError(payload)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(tokens[i], urls[i % len(urls)]) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return accepted / elapsed, attempted / elapsed


async def raw_bids(database_url: str, auction_id: uuid.UUID, clients: int, seconds: float) -> float:
    """The yardstick: each worker runs the same transaction by hand — lock the auction, lock the
    bidder's wallet, read their commitments, insert the bid and its event, update the auction."""
    conns = [await asyncpg.connect(plain_url(database_url)) for _ in range(min(clients, 40))]
    bidders = [r["id"] for r in await conns[0].fetch("SELECT id FROM users WHERE role = 'user' LIMIT $1", clients)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def one_bid(conn: asyncpg.Connection, bidder: uuid.UUID) -> None:
        nonlocal done
        async with conn.transaction():
            a = await conn.fetchrow(
                "SELECT current_price, start_price, bid_count, sequence, end_time, status, seller_id "
                "FROM auctions WHERE id = $1 FOR UPDATE", auction_id)
            wallet = await conn.fetchrow("SELECT balance, held FROM wallets WHERE user_id = $1 FOR UPDATE", bidder)
            committed = await conn.fetchval(
                "SELECT coalesce(sum(current_price), 0) FROM auctions WHERE status = 'live' "
                "AND leader_id = $1 AND id <> $2", bidder, auction_id)
            amount = (a["current_price"] or a["start_price"]) + INCREMENT
            assert a["status"] == "live" and wallet["balance"] - wallet["held"] >= (committed + amount) / 5
            bid_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO bids (id, auction_id, position, bidder_id, amount, created_at) "
                "VALUES ($1, $2, $3, $4, $5, now())", bid_id, auction_id, a["bid_count"] + 1, bidder, amount)
            await conn.execute(
                "UPDATE auctions SET current_price = $2, leader_id = $3, bid_count = bid_count + 1, "
                "sequence = sequence + 1 WHERE id = $1", auction_id, amount, bidder)
            await conn.execute(
                "INSERT INTO auction_events (auction_id, sequence, type, bid_id, occurred_at, payload) "
                "VALUES ($1, $2, 'BID_PLACED', $3, now(), $4)", auction_id, a["sequence"] + 1, bid_id,
                orjson.dumps({"amount": str(amount)}).decode())
        done += 1

    pool: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
    for c in conns:  # PostgreSQL allows ~100 connections: workers share at most 40
        pool.put_nowait(c)

    async def client(bidder: uuid.UUID) -> None:
        while time.perf_counter() < deadline:
            conn = await pool.get()
            try:
                await one_bid(conn, bidder)
            finally:
                pool.put_nowait(conn)

    started = time.perf_counter()
    await asyncio.gather(*(client(bidders[i % len(bidders)]) for i in range(clients)))
    elapsed = time.perf_counter() - started
    for c in conns:
        await c.close()
    return done / elapsed


async def main(seconds: float, processes: int, pg: EmbeddedPostgres) -> None:
    url = pg.url(await pg.create_database())
    redis = RedisServer() if processes > 1 else None
    if redis is not None:
        os.environ["REDIS_URL"] = redis.url  # the servers' environment
    servers = [start("graphql", url, tempfile.mkdtemp()) for _ in range(processes)]
    gurls = [gurl for _, gurl in servers]
    try:
        auction_id, tokens, raw_id = await arrange(gurls[0], url, max(CONCURRENCY))
        counter = itertools.count(1_000_000)
        print(f"placeBid on one hot auction (accepted bids/s), {processes} server process(es)")
        for clients in CONCURRENCY:
            raw = await raw_bids(url, raw_id, clients, seconds)
            # the raw loop raised the price: continue the counter above it
            conn = await asyncpg.connect(plain_url(url))
            price = await conn.fetchval("SELECT current_price FROM auctions")
            await conn.close()
            counter = itertools.count(int((price - 1000) / INCREMENT) + 1)
            ours, attempts = await graphql_bids(gurls, auction_id, tokens, clients, seconds, counter)
            print(f"  {clients:3d} clients: graphql {ours:7.0f} accepted/s ({attempts:7.0f} attempts/s)  "
                  f"raw asyncpg {raw:7.0f}/s  ratio {ours / raw:.2f}")
    finally:
        for server, _ in servers:
            server.terminate()
            server.wait()
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    pg = EmbeddedPostgres()
    try:
        asyncio.run(main(args.seconds, args.processes, pg))
    finally:
        pg.stop()
