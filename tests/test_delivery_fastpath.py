"""The fast path of live auction events (forecourt/subscriptions/live.py): caught-up
subscribers get live events written straight to their sockets, with the same data, order,
errors and endings as the ordinary path — across replay hand-overs, slow consumers, Redis
outages, both WebSocket protocols, and unsubscribing."""

import asyncio
import json
import socket
import threading
import zlib

import pytest
import uvicorn
import websockets
from websockets.frames import Frame, Opcode

from forecourt.subscriptions import live, multiplex
from forecourt.subscriptions.sockets import (
    _SHARED_DEFLATE,
    COMPRESSION_THRESHOLD,
    SmallMessagesUncompressed,
    UvicornSocket,
    WebSockets,
)
from tests.conftest import fund, make_settings
from tests.harness import GraphQLClient, LiveServer, RedisServer
from tests.test_auctions import new_auction, place
from tests.test_subscriptions import receive

FAST = """subscription($id: ID!, $after: Int) { auctionEvents(auctionId: $id, afterSequence: $after) {
  type sequence bid { amount isProxy } auction { currentPrice bidCount reservePrice isLeading } } }"""
# `bidder` awaits a loader: such a selection stays on the ordinary (multiplexed) path.
AWAITING = """subscription($id: ID!) { auctionEvents(auctionId: $id) {
  sequence bid { amount bidder { id } } auction { isLeading } } }"""
BIG = """subscription($id: ID!, $after: Int) { auctionEvents(auctionId: $id, afterSequence: $after) {
  type sequence occurredAt bid { id amount isProxy isPlatformBid createdAt }
  auction { id status startPrice reserveMet currentPrice bidIncrement minimumNextBid depositPercent
    reserveProtection startTime endTime originalEndTime bidCount bidderCount platformBidCount sequence
    winningAmount settlementDeadline isLeading } } }"""


def amount(n: int) -> str:
    return f"{1000000 + 50000 * (n - 1)}.00"


async def subscribe(url, query, variables, token=None, protocol="graphql-transport-ws", op="s",
                    compression="deflate", **connect):
    ws = await websockets.connect(url, subprotocols=[protocol], compression=compression, **connect)
    await ws.send(json.dumps({"type": "connection_init",
                              "payload": {"Authorization": f"Bearer {token}"} if token else {}}))
    assert (await receive(ws))["type"] == "connection_ack"
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    await ws.send(json.dumps({"id": op, "type": start, "payload": {"query": query, "variables": variables}}))
    return ws


async def event(ws, op="s", timeout=10.0):
    message = await receive(ws, timeout=timeout)
    assert message["type"] in ("next", "data") and message["id"] == op, message
    assert "errors" not in message["payload"], message
    assert message["payload"]["extensions"]["cost"]["requestedQueryCost"] > 0
    return message["payload"]["data"]["auctionEvents"]


async def silent(ws, seconds=0.5):
    with pytest.raises(asyncio.TimeoutError):
        message = await receive(ws, timeout=seconds)
        pytest.fail(f"unexpected {message}")



async def test_mixed_audiences_get_their_own_data_on_the_fast_path(server, gql, seller, alice, bob, make_user,
                                                                     clock):
    admin = await make_user("admin")
    auction = await new_auction(gql, seller, clock, reservePrice="2000000.00")
    variables = {"id": auction["id"]}
    viewers = {"guest": None, "seller": seller.token, "alice": alice.token, "bob": bob.token,
               "admin": admin.token}
    sockets = {name: await subscribe(server.ws_url, FAST, variables, token) for name, token in viewers.items()}
    sockets["plain-alice"] = await subscribe(server.ws_url, FAST, variables, alice.token, compression=None)
    sockets["legacy-bob"] = await subscribe(server.ws_url, FAST, variables, bob.token, protocol="graphql-ws")
    sockets["legacy-plain-guest"] = await subscribe(server.ws_url, FAST, variables, protocol="graphql-ws",
                                                    compression=None)
    awaiting = {"alice": await subscribe(server.ws_url, AWAITING, variables, alice.token),
                "bob": await subscribe(server.ws_url, AWAITING, variables, bob.token)}
    await asyncio.sleep(0.3)

    def expected(n, leader, viewer_leads, parties):
        return {"type": "BID_PLACED", "sequence": n, "bid": {"amount": amount(n), "isProxy": False},
                "auction": {"currentPrice": amount(n), "bidCount": n,
                            "reservePrice": "2000000.00" if parties else None,
                            "isLeading": None if viewer_leads is None else viewer_leads == leader}}

    views = {"guest": (None, False), "seller": ("seller", True), "alice": ("alice", False),
             "bob": ("bob", False), "admin": ("admin", True), "plain-alice": ("alice", False),
             "legacy-bob": ("bob", False), "legacy-plain-guest": (None, False)}
    bidders = {"alice": alice, "bob": bob}
    for n, leader in enumerate(["alice", "bob", "alice", "bob"], start=1):
        before, executions = live.delivered, multiplex.executions
        assert (await place(gql, bidders[leader], auction, amount(n)))["userErrors"] == []
        for name, ws in sockets.items():
            viewer, parties = views[name]
            assert await event(ws) == expected(n, leader, viewer, parties), name
        for name, ws in awaiting.items():
            got = await event(ws)
            assert got["auction"]["isLeading"] is (name == leader)
            assert got["bid"]["bidder"] == ({"id": bidders[name].id} if name == leader else None)
        if n > 1:  # the first event was sent the ordinary way; it told each lane its socket
            assert live.delivered - before == len(sockets)
            # FAST: guests, the parties (seller, admin), the leader, the rest; AWAITING: 2
            assert multiplex.executions - executions == 4 + 2
    for ws in [*sockets.values(), *awaiting.values()]:
        await ws.close()


async def test_resuming_while_events_are_published_gets_each_event_once_in_order(server, gql, seller, alice,
                                                                                    bob, clock):
    """Subscribers join with afterSequence while bids keep coming: replayed and live events
    meet without a gap or a duplicate, and the subscribers then take the fast path."""
    auction = await new_auction(gql, seller, clock)
    total = 40
    placed = asyncio.Event()
    count = 0

    async def bidding():
        nonlocal count
        for n in range(1, total + 1):
            assert (await place(gql, alice if n % 2 else bob, auction, amount(n)))["userErrors"] == []
            count = n
            if n == 10:
                placed.set()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(bidding())
    await placed.wait()
    before = live.delivered
    sockets = []
    for after in (0, 3, 8, None):  # None: live events only, from the current sequence on
        joined_at = count
        ws = await subscribe(server.ws_url, FAST, {"id": auction["id"], "after": after},
                             compression=None if after == 3 else "deflate")
        sockets.append((ws, after, joined_at))
        await asyncio.sleep(0.05)
    await task
    for ws, after, joined_at in sockets:
        got = []
        while not got or got[-1] < total:
            got.append((await event(ws))["sequence"])
        # without afterSequence: from the sequence current when the server subscribed
        first = after + 1 if after is not None else got[0]
        assert first > joined_at or after is not None
        assert got == list(range(first, total + 1)), (after, got)
        await silent(ws, 0.2)
        await ws.close()
    assert live.delivered > before


async def test_a_fast_subscriber_that_stops_reading_is_dropped_and_can_resume(tmp_path, database_url, clock,
                                                                                make_user, db):
    """The socket's write buffer fills: its events go to the bounded mailbox, which overflows:
    SLOW_CONSUMER, as on the ordinary path; everything sent before is gapless, and
    afterSequence resumes."""
    settings = make_settings(tmp_path, SUBSCRIBER_MAILBOX_SIZE=20)
    server = LiveServer(settings, database_url, clock).start()
    gql = GraphQLClient(server.url)
    try:
        seller = await make_user("dealer")
        alice = await make_user("user", kyc="approved")
        await fund(db, alice, "100000000")
        auction = await new_auction(gql, seller, clock)
        variables = {"id": auction["id"]}
        # A reader that stops reading fills its small receive window, then the server's
        # socket buffer, then the transport's buffer.
        small = socket.socket()
        small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        small.connect(("127.0.0.1", server.port))
        slow = await subscribe(server.ws_url, BIG, variables, max_queue=1, compression=None, sock=small)
        brisk = await subscribe(server.ws_url, BIG, variables, compression=None, max_queue=None)
        await asyncio.sleep(0.3)
        assert (await place(gql, alice, auction, amount(1)))["userErrors"] == []
        for ws in (slow, brisk):
            assert (await event(ws))["sequence"] == 1
        stored = await db.fetchval("SELECT payload FROM auction_events WHERE sequence = 1")
        payload = json.loads(stored) if isinstance(stored, str) else stored
        channel = f"auction:{payload['auction']['id']}"
        before = live.delivered

        async def flood(count):
            # Synthetic live events after the real one: the lanes cannot tell them apart.
            broadcast = server.state.broadcast
            for sequence in range(2, count + 2):
                await broadcast.publish(channel, json.dumps({**payload, "sequence": sequence}))
                if sequence % 200 == 0:
                    await asyncio.sleep(0)

        async def drain(ws, until):
            expected = 2
            while True:
                message = await receive(ws, timeout=30)
                data = message["payload"].get("data") if message["type"] == "next" else None
                if data is None:
                    return message
                assert data["auctionEvents"]["sequence"] == expected
                if expected == until:
                    return message
                expected += 1

        flooded = 20000
        await server.call(flood, flooded)
        assert live.delivered - before > 100  # the fast path wrote until the buffer was full
        last = await drain(brisk, flooded + 1)  # a reader misses nothing
        assert last["payload"]["data"]["auctionEvents"]["sequence"] == flooded + 1, last
        got, message = [], None
        while True:  # the one that stopped reading
            message = await receive(slow, timeout=30)
            if message["type"] != "next" or message["payload"].get("errors"):
                break
            got.append(message["payload"]["data"]["auctionEvents"]["sequence"])
        assert got == list(range(2, len(got) + 2)) and len(got) < flooded
        assert message["payload"]["data"] is None
        assert message["payload"]["errors"][0]["extensions"]["code"] == "SLOW_CONSUMER"
        assert (await receive(slow, timeout=5))["type"] == "complete"
        await slow.close()

        # Resume from what was received (the log holds only the real event).
        resumed = await subscribe(server.ws_url, BIG, {**variables, "after": 0})
        assert (await event(resumed))["sequence"] == 1
        await brisk.close()
        await resumed.close()
    finally:
        await gql.close()
        server.stop()


async def test_redis_outage_resyncs_fast_subscribers(tmp_path, database_url, clock, make_user, db, server):
    redis_server = RedisServer()
    settings = make_settings(tmp_path, REDIS_URL=redis_server.url)
    a = LiveServer(settings, database_url, clock).start()
    b = LiveServer(settings, database_url, clock).start()
    client_a = GraphQLClient(a.url)
    try:
        seller = await make_user("dealer")
        bidder = await make_user("user", kyc="approved")
        await fund(db, bidder, "100000000")
        auction = await new_auction(client_a, seller, clock)
        sockets = [await subscribe(b.ws_url, FAST, {"id": auction["id"]}),
                   await subscribe(b.ws_url, FAST, {"id": auction["id"]}, protocol="graphql-ws")]
        await asyncio.sleep(0.3)
        for n in (1, 2):
            assert (await place(client_a, bidder, auction, amount(n)))["userErrors"] == []
            for ws in sockets:
                assert (await event(ws))["sequence"] == n
        redis_server.stop()
        await asyncio.sleep(0.3)
        assert (await place(client_a, bidder, auction, amount(3)))["userErrors"] == []  # publish fails
        redis_server.start()
        for ws in sockets:  # filled from the event log on reconnect
            assert (await event(ws, timeout=15))["sequence"] == 3
        before = live.delivered
        for _ in range(50):  # the fast path resumes once the subscribers have caught up
            n = await db.fetchval("SELECT sequence FROM auctions") + 1
            assert (await place(client_a, bidder, auction, amount(n)))["userErrors"] == []
            for ws in sockets:
                assert (await event(ws, timeout=15))["sequence"] == n
            if live.delivered - before == len(sockets):
                break
        assert live.delivered - before == len(sockets)
        for ws in sockets:
            await ws.close()
    finally:
        await client_a.close()
        a.stop()
        b.stop()
        redis_server.stop()


async def test_unsubscribing_stops_fast_delivery(server, gql, seller, alice, clock):
    auction = await new_auction(gql, seller, clock)
    variables = {"id": auction["id"]}
    modern = await subscribe(server.ws_url, FAST, variables, op="m")
    legacy = await subscribe(server.ws_url, FAST, variables, protocol="graphql-ws", op="l")
    await asyncio.sleep(0.3)
    for n in (1, 2):
        assert (await place(gql, alice, auction, amount(n)))["userErrors"] == []
        assert (await event(modern, "m"))["sequence"] == n
        assert (await event(legacy, "l"))["sequence"] == n
    before = live.delivered
    await modern.send(json.dumps({"id": "m", "type": "complete"}))
    await legacy.send(json.dumps({"id": "l", "type": "stop"}))
    assert await receive(legacy) == {"type": "complete", "id": "l"}
    await asyncio.sleep(0.1)
    assert (await place(gql, alice, auction, amount(3)))["userErrors"] == []
    await silent(modern)
    await silent(legacy)
    assert live.delivered == before
    # The sockets still work: the same ids subscribe again.
    await modern.send(json.dumps({"id": "m", "type": "subscribe", "payload": {
        "query": FAST, "variables": {**variables, "after": 2}}}))
    assert (await event(modern, "m"))["sequence"] == 3
    await modern.close()
    await legacy.close()


class ServeServer(LiveServer):
    """The app under the WebSocket protocol and options `forecourt serve` runs it with."""

    def __init__(self, settings, database_url, clock) -> None:
        super().__init__(settings, database_url, clock)
        config = uvicorn.Config(self.app, log_level="warning", ws_ping_interval=None, lifespan="on",
                                ws=WebSockets, ws_per_message_deflate=settings.ws_per_message_deflate)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)


@pytest.mark.parametrize("deflate", [True, False])
async def test_compressed_messages_are_shared_and_compression_can_be_off(tmp_path, database_url, clock, alice,
                                                                         seller, deflate):
    """WS_PER_MESSAGE_DEFLATE on: a client offering permessage-deflate gets it without server
    context takeover (each message compressed once for all); off: no compression."""
    server = ServeServer(make_settings(tmp_path, WS_PER_MESSAGE_DEFLATE=deflate), database_url, clock).start()
    gql = GraphQLClient(server.url)  # this server's broadcast is its own (in memory)
    try:
        auction = await new_auction(gql, seller, clock)
        variables = {"id": auction["id"]}
        offering = [await subscribe(server.ws_url, FAST, variables) for _ in range(3)]
        legacy = await subscribe(server.ws_url, FAST, variables, protocol="graphql-ws")
        plain = await subscribe(server.ws_url, FAST, variables, compression=None)
        for ws in (*offering, legacy):
            extensions = ws.protocol.extensions
            if deflate:
                assert len(extensions) == 1 and extensions[0].remote_no_context_takeover
            else:
                assert extensions == []
        await asyncio.sleep(0.3)
        for n in (1, 2, 3):
            before, frames = live.delivered, live.frames_made
            assert (await place(gql, alice, auction, amount(n)))["userErrors"] == []
            for ws in (*offering, legacy, plain):
                got = await event(ws)
                assert got["sequence"] == n and got["auction"]["currentPrice"] == amount(n)
            if n > 1:
                assert live.delivered - before == 5
                # one frame per distinct message and socket kind, not per subscriber: the
                # deflate connections' one and the plain one of the graphql-transport-ws
                # message, and the legacy protocol's message (these events are small, so the
                # deflate connections' frame is sent uncompressed: see the next test)
                assert live.frames_made - frames == (3 if deflate else 2)
        for ws in (*offering, legacy, plain):
            await ws.close()
    finally:
        await gql.close()
        server.stop()


def test_messages_under_the_threshold_go_uncompressed_and_larger_ones_compressed():
    small = json.dumps({"payload": "x" * 300}).encode()
    large = json.dumps({"payload": [f"bid {n}" for n in range(400)]}).encode()
    assert len(small) < COMPRESSION_THRESHOLD <= len(large)
    # the ordinary path (websockets' encoder, as negotiated by WebSockets)
    deflate = SmallMessagesUncompressed(False, True, 15, 12)
    sent = deflate.encode(Frame(Opcode.TEXT, small))
    assert not sent.rsv1 and sent.data == small
    sent = deflate.encode(Frame(Opcode.TEXT, large))
    assert sent.rsv1 and len(sent.data) < len(large)
    assert zlib.decompressobj(wbits=-12).decompress(sent.data + b"\x00\x00\xff\xff") == large
    # the fast path's frames shared by such connections agree: FIN + text, RSV1 only when large
    shared = UvicornSocket(None)
    shared.mode, shared.compression = _SHARED_DEFLATE, (12, (("memLevel", 5),))
    assert shared.frame([small, None, None])[0] == 0x81
    frame = shared.frame([large, None, None])
    assert frame[0] == 0xC1
    payload = frame[4:]  # 126 + a 16-bit length
    assert zlib.decompressobj(wbits=-12).decompress(payload + b"\x00\x00\xff\xff") == large
