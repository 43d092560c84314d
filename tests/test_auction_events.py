"""auctionEvents: replay from the log with afterSequence, exactly-once delivery across
reconnects, bounded mailboxes, and Redis outages (resume or end, never hang)."""

import asyncio
import json

import pytest

from forecourt.subscriptions.fanout import RESYNC, FanOut, StreamInterrupted
from forecourt.subscriptions.redis_backend import RedisPubSubBackend
from tests.conftest import make_settings
from tests.harness import GraphQLClient, LiveServer, RedisServer
from tests.test_auction_concurrency import EVENTS, collect
from tests.test_auctions import new_auction, place
from tests.test_subscriptions import receive


async def open_events(url, auction_id, after=None, token=None):
    import websockets

    ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"} if token else {}}))
    assert (await receive(ws))["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe",
                              "payload": {"query": EVENTS, "variables": {"id": auction_id, "after": after}}}))
    return ws


async def test_replay_then_live_then_resume_after_a_disconnect(server, gql, seller, alice, clock):
    auction = await new_auction(gql, seller, clock)
    for amount in ("1000000.00", "1050000.00", "1100000.00"):
        await place(gql, alice, auction, amount)
    ws = await open_events(server.ws_url, auction["id"], after=1)
    replayed = await collect(ws, 3)
    assert [e["sequence"] for e in replayed] == [2, 3]
    assert replayed[0]["auction"] == {"currentPrice": "1050000.00", "bidCount": 2}  # as it was then
    await place(gql, alice, auction, "1150000.00")
    assert [e["sequence"] for e in await collect(ws, 4)] == [4]
    await ws.close()
    for amount in ("1200000.00", "1250000.00"):  # missed while away
        await place(gql, alice, auction, amount)
    ws = await open_events(server.ws_url, auction["id"], after=4)
    resumed = await collect(ws, 6)
    assert [(e["sequence"], e["bid"]["amount"]) for e in resumed] == [(5, "1200000.00"), (6, "1250000.00")]
    await ws.close()


async def test_without_after_sequence_only_new_events_arrive(server, gql, seller, alice, clock):
    auction = await new_auction(gql, seller, clock)
    await place(gql, alice, auction, "1000000.00")
    ws = await open_events(server.ws_url, auction["id"])
    await asyncio.sleep(0.2)
    await place(gql, alice, auction, "1050000.00")
    assert [e["sequence"] for e in await collect(ws, 2)] == [2]
    await ws.close()


async def test_unknown_auction_is_an_error(server):
    ws = await open_events(server.ws_url, "QXVjdGlvbjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA=")
    message = await receive(ws)
    assert message["type"] == "next", message
    assert message["payload"]["errors"][0]["extensions"]["reason"] == "NOT_FOUND"
    assert (await receive(ws))["type"] == "complete"
    await ws.close()


async def test_a_slow_subscriber_is_dropped_not_buffered_forever():
    fanout = FanOut("memory://", mailbox_size=3)
    await fanout.connect()
    try:
        async with fanout.subscribe("auction:x") as mailbox:
            for i in range(5):
                await fanout.publish("auction:x", str(i))
            await asyncio.sleep(0.05)
            with pytest.raises(StreamInterrupted) as err:
                while True:
                    await mailbox.get()
            assert err.value.code == "SLOW_CONSUMER"
    finally:
        await fanout.disconnect()


async def test_redis_outage_resyncs_subscribers_or_ends_them():
    redis_server = RedisServer()
    quick = FanOut(backend=RedisPubSubBackend(redis_server.url), outage_grace_seconds=30)
    strict = FanOut(backend=RedisPubSubBackend(redis_server.url), outage_grace_seconds=0.3)
    await quick.connect()
    await strict.connect()
    try:
        async with quick.subscribe("auction:y") as resumed, strict.subscribe("auction:y") as ended:
            await asyncio.sleep(0.2)
            redis_server.stop()
            await asyncio.sleep(1.5)
            redis_server.start()
            assert await asyncio.wait_for(resumed.get(), 10) is RESYNC  # catch up from the database
            with pytest.raises(StreamInterrupted) as err:
                await asyncio.wait_for(ended.get(), 10)
            assert err.value.code == "EVENTS_UNAVAILABLE"
    finally:
        await quick.disconnect()
        await strict.disconnect()
        redis_server.stop()


async def test_a_bid_published_while_redis_is_down_still_reaches_the_subscriber(
        tmp_path, database_url, clock, make_user, gql, db, server):
    redis_server = RedisServer()
    settings = make_settings(tmp_path, REDIS_URL=redis_server.url)
    a = LiveServer(settings, database_url, clock).start()
    b = LiveServer(settings, database_url, clock).start()
    client_a = GraphQLClient(a.url)
    try:
        seller = await make_user("dealer")
        from tests.conftest import fund

        bidder = await make_user("user", kyc="approved")
        await fund(db, bidder, "100000000")
        auction = await new_auction(client_a, seller, clock)
        ws = await open_events(b.ws_url, auction["id"])
        await asyncio.sleep(0.3)
        redis_server.stop()
        await asyncio.sleep(0.3)
        assert (await place(client_a, bidder, auction, "1000000.00"))["userErrors"] == []  # publish fails
        redis_server.start()
        events = await collect(ws, 1, timeout=15)  # filled from the event log on reconnect
        assert [e["sequence"] for e in events] == [1]
        await ws.close()
    finally:
        await client_a.close()
        a.stop()
        b.stop()
        redis_server.stop()


VIEWER_EVENTS = """subscription($id: ID!, $after: Int) { auctionEvents(auctionId: $id, afterSequence: $after) {
  sequence bid { amount bidder { id displayName } } auction { currentPrice reservePrice isLeading winner { id } } } }"""
EMAIL_EVENTS = """subscription($id: ID!) { auctionEvents(auctionId: $id) { sequence bid { bidder { id email } } } }"""
PLAIN_EVENTS = """subscription($id: ID!) { auctionEvents(auctionId: $id) { sequence bid { amount } } }"""


async def subscribe_as(url, query, variables, token=None, protocol="graphql-transport-ws"):
    import websockets

    ws = await websockets.connect(url, subprotocols=[protocol])
    await ws.send(json.dumps({"type": "connection_init",
                              "payload": {"Authorization": f"Bearer {token}"} if token else {}}))
    assert (await receive(ws))["type"] == "connection_ack"
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    await ws.send(json.dumps({"id": "s", "type": start, "payload": {"query": query, "variables": variables}}))
    return ws


async def test_live_events_are_rendered_once_per_selection_and_audience(server, gql, seller, alice, make_user,
                                                                         clock):
    """Viewers with different visibility get different, correct payloads from one shared event;
    viewers alike share one execution; a field whose visibility is not declared (email) is
    rendered per viewer."""
    from forecourt.subscriptions import multiplex

    bob, admin = await make_user("user", kyc="approved"), await make_user("admin")
    auction = await new_auction(gql, seller, clock, reservePrice="2000000.00")
    variables = {"id": auction["id"]}
    viewers = {"guest1": None, "guest2": None, "seller": seller.token, "alice": alice.token,
               "bob": bob.token, "admin": admin.token}
    sockets = {name: await subscribe_as(server.ws_url, VIEWER_EVENTS, variables, token)
               for name, token in viewers.items()}
    # Resuming from a sequence does not change how live events render: same group as guest1.
    sockets["guest3"] = await subscribe_as(server.ws_url, VIEWER_EVENTS, {**variables, "after": 0})
    sockets["legacy"] = await subscribe_as(server.ws_url, VIEWER_EVENTS, variables, protocol="graphql-ws")
    email = {"alice": await subscribe_as(server.ws_url, EMAIL_EVENTS, variables, alice.token),
             "bob": await subscribe_as(server.ws_url, EMAIL_EVENTS, variables, bob.token),
             "guest": await subscribe_as(server.ws_url, EMAIL_EVENTS, variables)}
    plain = [await subscribe_as(server.ws_url, PLAIN_EVENTS, variables, token)
             for token in (None, alice.token, bob.token, seller.token)]
    await asyncio.sleep(0.3)
    before = multiplex.executions
    assert (await place(gql, alice, auction, "1000000.00"))["userErrors"] == []

    async def event(ws):
        message = await receive(ws)
        assert message["type"] in ("next", "data") and message["id"] == "s", message
        assert message["payload"]["extensions"]["cost"]["requestedQueryCost"] > 0  # as unshared
        return message["payload"]["data"]["auctionEvents"]

    got = {name: await event(ws) for name, ws in sockets.items()}
    alice_user = {"id": alice.id, "displayName": None}
    hidden = {"sequence": 1, "bid": {"amount": "1000000.00", "bidder": None},
              "auction": {"currentPrice": "1000000.00", "reservePrice": None, "isLeading": None, "winner": None}}
    assert got["guest1"] == got["guest2"] == got["guest3"] == got["legacy"] == hidden
    assert got["bob"] == {**hidden, "auction": {**hidden["auction"], "isLeading": False}}
    assert got["alice"] == {**hidden, "bid": {"amount": "1000000.00", "bidder": alice_user},
                            "auction": {**hidden["auction"], "isLeading": True}}
    for party in ("seller", "admin"):
        assert got[party] == {**hidden, "bid": {"amount": "1000000.00", "bidder": alice_user},
                              "auction": {**hidden["auction"], "reservePrice": "2000000.00", "isLeading": False}}
    emails = {name: await event(ws) for name, ws in email.items()}
    assert emails["alice"]["bid"]["bidder"] == {"id": alice.id, "email": alice.email}
    assert emails["bob"]["bid"]["bidder"] is None and emails["guest"]["bid"]["bidder"] is None
    for ws in plain:
        assert await event(ws) == {"sequence": 1, "bid": {"amount": "1000000.00"}}
    # VIEWER_EVENTS: guests (4 sockets, both protocols), bob, alice, seller and admin (one
    # class: they see the parties and do not lead); EMAIL_EVENTS: one per viewer (3); PLAIN: 1.
    assert multiplex.executions - before == 4 + 3 + 1
    for ws in [*sockets.values(), *email.values(), *plain]:
        await ws.close()
