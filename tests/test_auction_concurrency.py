"""Many bidders, two server processes, one auction: the bid engine stays correct, every
subscriber on either process sees every event once and in order, and closing happens once."""

import asyncio
import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import websockets

from tests.conftest import PASSWORD, REGISTER
from tests.harness import GraphQLClient, ProcessServer
from tests.test_auctions import BID, CREATE
from tests.test_catalog import CREATE as CREATE_VEHICLE
from tests.test_catalog import vehicle_input
from tests.test_subscriptions import receive

BIDDERS = 50
BIDS_EACH = 20
SUBSCRIBERS_PER_PROCESS = 5
EVENTS = """subscription($id: ID!, $after: Int) { auctionEvents(auctionId: $id, afterSequence: $after) {
  type sequence bid { amount } auction { currentPrice bidCount } } }"""


@pytest.fixture
def processes(tmp_path, database_url, redis_server):
    env = {
        "FORECOURT_ENV": "test", "FORECOURT_DATA_DIR": str(tmp_path), "JWT_SECRET": "multi-" + "y" * 40,
        "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "REDIS_URL": redis_server.url,
        "RATE_LIMIT_IP_PER_MINUTE": "1000000", "RATE_LIMIT_USER_PER_MINUTE": "1000000",
        "RATE_LIMIT_CREDENTIALS_PER_MINUTE": "1000000",
        "REVALUE_INTERVAL_SECONDS": "0", "AUCTION_JOB_INTERVAL_SECONDS": "0.2",
        "RESERVE_PROTECTION_INTERVAL_SECONDS": "0", "DATABASE_POOL_SIZE": "20",
    }
    servers = [ProcessServer(env, database_url, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        yield [s.wait_ready() for s in servers]
    finally:
        for s in servers:
            s.stop()


async def register(client: GraphQLClient, db, role="user", kyc="approved", funds="0"):
    email = f"c{random.getrandbits(48):x}@example.com"
    body = await client(REGISTER, {"input": {"email": email, "password": PASSWORD}})
    token = body["data"]["register"]["accessToken"]
    user_id = await db.fetchval("SELECT id FROM users WHERE email = $1", email)
    await db.execute("UPDATE users SET role = $1, kyc_status = $2 WHERE id = $3", role, kyc, user_id)
    if D(funds):
        await db.execute(
            "INSERT INTO transactions (id, user_id, type, amount, balance_delta, held_delta, created_at) "
            "VALUES (gen_random_uuid(), $1, 'deposit', $2, $2, 0, now())", user_id, D(funds))
    return token, user_id


async def subscribe(url: str, auction_id: str, after: int | None = None):
    ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], max_size=None)
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert (await receive(ws))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": EVENTS, "variables": {"id": auction_id, "after": after}}}))
    return ws


async def collect(ws, until_sequence: int, timeout: float = 60) -> list[dict]:
    events = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not events or events[-1]["sequence"] < until_sequence:
        left = deadline - asyncio.get_running_loop().time()
        message = await receive(ws, timeout=max(left, 0.1))
        assert message["type"] == "next", message
        events.append(message["payload"]["data"]["auctionEvents"])
    return events


@pytest.mark.timeout(300)
async def test_fifty_bidders_on_two_processes(processes, db):
    clients = [GraphQLClient(p.url) for p in processes]
    try:
        seller_token, _ = await register(clients[0], db, role="dealer")
        vehicle = await clients[0](CREATE_VEHICLE, {"input": vehicle_input()}, token=seller_token)
        now = datetime.now(UTC)
        created = await clients[1](CREATE, {"input": {
            "vehicleId": vehicle["data"]["createVehicle"]["vehicle"]["id"], "startPrice": "1000000.00",
            "bidIncrement": "50000.00", "startTime": now.isoformat(), "endTime": (now + timedelta(hours=1)).isoformat(),
        }}, token=seller_token)
        auction = created["data"]["createAuction"]["auction"]
        bidders = [await register(clients[i % 2], db, funds="20000000") for i in range(BIDDERS)]
        subscribers = [await subscribe(p.ws_url, auction["id"]) for p in processes for _ in range(SUBSCRIBERS_PER_PROCESS)]
        await asyncio.sleep(0.5)  # subscriptions are registered with Redis

        accepted: list[D] = []
        refused: dict[str, int] = {}

        async def bid_loop(n: int, token: str):
            rng = random.Random(n)
            for attempt in range(BIDS_EACH):
                amount = D(1000000) + D(50000) * (attempt * BIDDERS + rng.randrange(BIDDERS))
                client = clients[rng.randrange(2)]
                body = await client(BID, {"input": {"auctionId": auction["id"], "amount": f"{amount:.2f}"}}, token=token)
                payload = body["data"]["placeBid"]
                if payload["userErrors"]:
                    code = payload["userErrors"][0]["code"]
                    refused[code] = refused.get(code, 0) + 1
                else:
                    accepted.append(amount)

        await asyncio.gather(*(bid_loop(n, token) for n, (token, _) in enumerate(bidders)))
        assert accepted and set(refused) <= {"BID_TOO_LOW"}, refused

        row = await db.fetchrow("SELECT current_price, bid_count, sequence FROM auctions")
        amounts = [r["amount"] for r in await db.fetch("SELECT amount FROM bids ORDER BY position")]
        assert row["current_price"] == max(accepted) == amounts[-1]
        assert row["bid_count"] == len(accepted) == len(amounts)
        assert all(b >= a + D(50000) for a, b in itertools.pairwise(amounts))
        assert sorted(amounts) == sorted(accepted)

        for ws in subscribers:  # each subscriber, on either process, saw each event once, in order
            events = await collect(ws, row["sequence"])
            assert [e["sequence"] for e in events] == list(range(1, row["sequence"] + 1))
            assert [D(e["bid"]["amount"]) for e in events if e["type"] == "BID_PLACED"] == amounts
            await ws.close()

        # a late subscriber replays everything from the log
        late = await subscribe(processes[1].ws_url, auction["id"], after=0)
        assert len(await collect(late, row["sequence"])) == row["sequence"]
        await late.close()

        assert await db.fetchval("SELECT count(*) FROM wallets WHERE balance < 0 OR held < 0") == 0
        mismatched = await db.fetchval(
            """SELECT count(*) FROM wallets w JOIN (SELECT user_id, sum(balance_delta) b, sum(held_delta) h
               FROM transactions WHERE status = 'completed' GROUP BY user_id) l USING (user_id)
               WHERE w.balance <> l.b OR w.held <> l.h""")
        assert mismatched == 0

        # closing, with both processes running the job: one winner, one deposit hold
        await db.execute("UPDATE auctions SET end_time = now() - interval '1 second', "
                         "original_end_time = now() - interval '1 second'")
        for _ in range(100):
            if await db.fetchval("SELECT status FROM auctions") != "live":
                break
            await asyncio.sleep(0.1)
        closed = await db.fetchrow("SELECT status, winner_id, winning_amount FROM auctions")
        assert closed["status"] == "pending_settlement" and closed["winning_amount"] == max(accepted)
        assert await db.fetchval("SELECT count(*) FROM transactions WHERE type = 'bid_deposit_hold'") == 1
        assert await db.fetchval("SELECT count(*) FROM auction_events WHERE type = 'ENDED'") == 1
        holder = await db.fetchval("SELECT user_id FROM transactions WHERE type = 'bid_deposit_hold'")
        assert holder == closed["winner_id"]
    finally:
        for c in clients:
            await c.close()
