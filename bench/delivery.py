"""Bid -> subscriber delivery: 1,000 `auctionEvents` subscribers split over two server processes
that share PostgreSQL and Redis, against raw Redis PUBLISH -> SUBSCRIBE to as many subscribers,
in the same run.

    .venv/bin/python -m bench.delivery [--subscribers 1000] [--seconds 10] [--burst 100]

Two `forecourt` server processes (REDIS_URL set, so every event crosses Redis) serve
graphql-transport-ws subscribers (the `websockets` library, each a different signed-in user, half
on each process, all with one selection that includes the viewer-dependent `isLeading`). One
bidder places bids over HTTP, alternating between the processes. The latency of a delivery is
the time from sending the bid's HTTP request to the subscriber's frame being read; the raw
baseline's is from PUBLISH to the message being read by one of as many plain Redis subscriber
connections (asyncio protocol, minimal RESP parsing, timestamped on arrival). Phases:

1. latency: bids / messages at `--rate` per second (default 5: 5,000 deliveries/s);
2. sustained: at `--sustained-rate` (default 10: 10,000 deliveries/s), all must arrive;
3. burst: `--burst` bids back to back; deliveries/s = deliveries / (last arrival - first send).

Every subscriber must receive every event once, in sequence order (checked). The load
generator, both servers, PostgreSQL and Redis share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal

import httpx
import orjson
import uvloop
import websockets

from bench.bids import INCREMENT, Connection, arrange
from tests.harness import EmbeddedPostgres, RedisServer, free_port

EVENTS = """subscription($id: ID!) { auctionEvents(auctionId: $id) { type sequence occurredAt
  bid { id amount isProxy createdAt }
  auction { id currentPrice minimumNextBid bidCount endTime isLeading } } }"""
BID = """mutation($input: PlaceBidInput!) { placeBid(input: $input) { userErrors { code } } }"""
RAW_CHANNEL = b"bench:raw"


def start_server(database_url: str, redis_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "AUCTION_JOB_INTERVAL_SECONDS": "5",
           "RESERVE_PROTECTION_INTERVAL_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "bench.serve", "graphql", str(port), database_url,
                             tempfile.mkdtemp()], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not start")


async def register_users(url: str, count: int) -> list[str]:
    tokens: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def one() -> None:
            body = (await client.post("/graphql", json={"query": """mutation($e: String!) {
                register(input: {email: $e, password: "Bench1234"}) { accessToken } }""",
                "variables": {"e": f"viewer-{uuid.uuid4().hex[:12]}@example.com"}})).json()
            tokens.append(body["data"]["register"]["accessToken"])

        for start in range(0, count, 20):
            await asyncio.gather(*(one() for _ in range(min(20, count - start))))
    return tokens


class Arrivals:
    """What every subscriber received: (key, time read) per message, and order checks."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.problems: list[str] = []

    def take(self) -> list[tuple[str, float]]:
        taken, self.times = self.times, []
        return taken


class Subscriber:
    """One graphql-transport-ws connection subscribed to the auction's events."""

    def __init__(self, url: str, token: str, auction_id: str, arrivals: Arrivals) -> None:
        self.url, self.token, self.auction_id, self.arrivals = url, token, auction_id, arrivals
        self.last_sequence: int | None = None
        self.task: asyncio.Task | None = None

    async def open(self) -> None:
        ws = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"], max_size=None,
                                      ping_interval=None, open_timeout=60)
        await ws.send(orjson.dumps({"type": "connection_init",
                                    "payload": {"Authorization": f"Bearer {self.token}"}}).decode())
        while orjson.loads(await ws.recv())["type"] != "connection_ack":
            pass
        await ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": EVENTS, "variables": {"id": self.auction_id}}}).decode())
        self.ws = ws
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        arrivals = self.arrivals
        clock = time.perf_counter
        try:
            async for raw in self.ws:
                now = clock()
                message = orjson.loads(raw)
                kind = message["type"]
                if kind == "next":
                    data = message["payload"].get("data")
                    if not data:
                        arrivals.problems.append(f"error: {message['payload']}")
                        return
                    event = data["auctionEvents"]
                    sequence = event["sequence"]
                    if self.last_sequence is not None and sequence != self.last_sequence + 1:
                        arrivals.problems.append(f"sequence {sequence} after {self.last_sequence}")
                    self.last_sequence = sequence
                    arrivals.times.append((event["bid"]["amount"], now))
                elif kind == "ping":
                    await self.ws.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    arrivals.problems.append(f"{kind}: {message}")
                    return
        except websockets.ConnectionClosed as err:
            arrivals.problems.append(f"closed: {err}")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.ws.close()


class RawSubscriber(asyncio.Protocol):
    """A plain Redis SUBSCRIBE connection: messages are parsed and timestamped on arrival."""

    def __init__(self, arrivals: Arrivals, subscribed: asyncio.Event) -> None:
        self.arrivals, self.subscribed = arrivals, subscribed
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(RAW_CHANNEL), RAW_CHANNEL))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self.buffer + data
        while True:
            parts, end = _resp_array(buffer)
            if parts is None:
                break
            buffer = buffer[end:]
            if parts[0] == b"message":
                self.arrivals.times.append((parts[2].split(b"|", 1)[0].decode(), now))
            elif parts[0] == b"subscribe":
                self.subscribed.set()
        self.buffer = buffer


def _resp_array(buffer: bytes) -> tuple[list[bytes] | None, int]:
    """One RESP array of bulk strings / integers from the start of `buffer`, or None if partial."""
    if not buffer.startswith(b"*"):
        return None, 0
    line_end = buffer.find(b"\r\n")
    if line_end < 0:
        return None, 0
    count, position, parts = int(buffer[1:line_end]), line_end + 2, []
    for _ in range(count):
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None, 0
        header = buffer[position:line_end]
        if header[:1] == b":":
            parts.append(header[1:])
            position = line_end + 2
            continue
        size = int(header[1:])
        start = line_end + 2
        if len(buffer) < start + size + 2:
            return None, 0
        parts.append(buffer[start:start + size])
        position = start + size + 2
    return parts, position


class Bidder:
    """Places bids over HTTP keep-alive, alternating between the servers."""

    def __init__(self, urls: list[str], token: str, auction_id: str) -> None:
        self.urls, self.token, self.auction_id = urls, token, auction_id
        self.amounts = itertools.count(1)
        self.sent: dict[str, float] = {}

    async def open(self) -> None:
        self.conns = []
        for url in self.urls:
            host, port = url.removeprefix("http://").split(":")
            self.conns.append(await Connection(host, int(port)).open())
        self.turn = itertools.cycle(self.conns)

    async def bid(self) -> None:
        amount = f"{Decimal(1000) + INCREMENT * next(self.amounts):.2f}"
        body = orjson.dumps({"query": BID, "variables": {"input": {"auctionId": self.auction_id,
                                                                   "amount": amount}}})
        self.sent[amount] = time.perf_counter()
        status, response = await next(self.turn).post_json("/graphql", body, self.token)
        errors = orjson.loads(response)["data"]["placeBid"]["userErrors"]
        assert status == 200 and not errors, response[:300]

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


class RawPublisher:
    def __init__(self, url: str, size: int) -> None:
        self.url, self.size = url, size
        self.numbers = itertools.count(1)
        self.sent: dict[str, float] = {}

    async def open(self) -> None:
        host, port = self.url.removeprefix("redis://").split("/")[0].split(":")
        self.reader, self.writer = await asyncio.open_connection(host, int(port))

    async def bid(self) -> None:
        key = str(next(self.numbers))
        message = key.encode() + b"|" + b"x" * max(0, self.size - len(key) - 1)
        self.sent[key] = time.perf_counter()
        self.writer.write(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(RAW_CHANNEL), RAW_CHANNEL, len(message), message))
        await self.reader.readline()  # :<receivers>

    def close(self) -> None:
        self.writer.close()


async def paced(source, rate: float, seconds: float) -> int:
    """`source.bid()` at `rate` per second for `seconds`; returns how many were made."""
    count = int(rate * seconds)
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await source.bid()
    return count


async def settle(arrivals: Arrivals, expected: int, timeout: float = 60) -> None:
    deadline = time.perf_counter() + timeout
    while len(arrivals.times) < expected and time.perf_counter() < deadline and not arrivals.problems:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # anything extra (duplicates) would arrive by now


def summarize(sent: dict[str, float], times: list[tuple[str, float]], expected: int) -> dict:
    latencies = sorted((t - sent[key]) * 1000 for key, t in times)
    first = min(sent[key] for key, _ in times)
    last = max(t for _, t in times)
    return {
        "delivered": len(times), "expected": expected,
        "p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1],
        "max": latencies[-1], "per_second": len(times) / (last - first),
    }


async def run_phases(name: str, source, arrivals: Arrivals, subscribers: int, args) -> dict:
    results = {}
    source.sent.clear()
    arrivals.take()
    count = await paced(source, args.rate, args.seconds)
    await settle(arrivals, count * subscribers)
    results["latency"] = summarize(source.sent, arrivals.take(), count * subscribers)
    source.sent.clear()
    count = await paced(source, args.sustained_rate, args.seconds)
    await settle(arrivals, count * subscribers)
    results["sustained"] = summarize(source.sent, arrivals.take(), count * subscribers)
    source.sent.clear()
    for _ in range(args.burst):
        await source.bid()
    await settle(arrivals, args.burst * subscribers)
    results["burst"] = summarize(source.sent, arrivals.take(), args.burst * subscribers)
    for phase, r in results.items():
        print(f"  {name:8s} {phase:9s}: {r['delivered']:7d}/{r['expected']:7d} delivered  "
              f"p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms  "
              f"{r['per_second']:8.0f} deliveries/s", flush=True)
        if r["delivered"] != r["expected"]:
            arrivals.problems.append(f"{name} {phase}: {r['delivered']} of {r['expected']} delivered")
    return results


async def graphql_side(urls: list[str], database_url: str, args) -> dict:
    auction_id, bidder_tokens, _ = await arrange(urls[0], database_url, 1)
    viewers = await register_users(urls[0], args.subscribers)
    arrivals = Arrivals()
    subscribers = [Subscriber(urls[i % 2].replace("http", "ws") + "/graphql", token, auction_id, arrivals)
                   for i, token in enumerate(viewers)]
    for start in range(0, len(subscribers), 50):
        await asyncio.gather(*(s.open() for s in subscribers[start:start + 50]))
    bidder = Bidder(urls, bidder_tokens[0], auction_id)
    await bidder.open()
    try:
        # Subscriptions are live once a bid reaches all of them; this also warms both servers.
        for _ in range(100):
            await bidder.bid()
            await settle(arrivals, args.subscribers, timeout=2)
            arrivals.take()
            if all(s.last_sequence is not None for s in subscribers):
                break
        for _ in range(20):
            await bidder.bid()
        await settle(arrivals, 20 * args.subscribers)
        arrivals.take()
        results = await run_phases("graphql", bidder, arrivals, args.subscribers, args)
    finally:
        bidder.close()
        await asyncio.gather(*(s.close() for s in subscribers), return_exceptions=True)
    if arrivals.problems:
        raise AssertionError(f"{len(arrivals.problems)} problems, e.g. {arrivals.problems[:5]}")
    return results


async def raw_side(redis_url: str, args, size: int) -> dict:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(args.subscribers):
        subscribed = asyncio.Event()
        transport, _ = await loop.create_connection(lambda s=subscribed: RawSubscriber(arrivals, s), host, int(port))
        await subscribed.wait()
        transports.append(transport)
    publisher = RawPublisher(redis_url, size)
    await publisher.open()
    try:
        for _ in range(20):
            await publisher.bid()
        await settle(arrivals, 20 * args.subscribers)
        arrivals.take()
        return await run_phases("redis", publisher, arrivals, args.subscribers, args)
    finally:
        publisher.close()
        for transport in transports:
            transport.close()


async def measure(args, pg: EmbeddedPostgres, redis_server: RedisServer) -> tuple[dict, dict]:
    servers = []
    try:
        database_url = pg.url(await pg.create_database())
        for _ in range(2):
            servers.append(start_server(database_url, redis_server.url))
        urls = [url for _, url in servers]
        print(f"auctionEvents delivery: {args.subscribers} subscribers over 2 processes via Redis; "
              f"{args.rate}/s, {args.sustained_rate}/s for {args.seconds}s, then a burst of {args.burst}")
        ours = await graphql_side(urls, database_url, args)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait()
    raw = await raw_side(redis_server.url, args, args.message_size)
    return ours, raw


def main(args) -> None:
    pg = EmbeddedPostgres()
    redis_server = RedisServer()
    try:
        ours, raw = uvloop.run(measure(args, pg, redis_server))
    finally:
        redis_server.stop()
        pg.stop()
    lat, base = ours["latency"], raw["latency"]
    print(f"latency at {args.rate * args.subscribers:.0f} deliveries/s: p50 {lat['p50']:.1f} ms "
          f"(target <= 20), p99 {lat['p99']:.1f} ms vs raw Redis p99 {base['p99']:.1f} ms: "
          f"+{lat['p99'] - base['p99']:.1f} ms (target <= +10)")
    sus, sbase = ours["sustained"], raw["sustained"]
    print(f"sustained {args.sustained_rate * args.subscribers:.0f} deliveries/s: p50 {sus['p50']:.1f} ms, "
          f"p99 {sus['p99']:.1f} ms vs raw {sbase['p99']:.1f} ms: +{sus['p99'] - sbase['p99']:.1f} ms")
    burst, bbase = ours["burst"], raw["burst"]
    print(f"burst: {burst['per_second']:.0f} deliveries/s (target >= 10,000) vs raw Redis "
          f"{bbase['per_second']:.0f}/s: ratio {burst['per_second'] / bbase['per_second']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=5)
    parser.add_argument("--sustained-rate", type=float, default=10)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--message-size", type=int, default=420, help="raw Redis message bytes")
    main(parser.parse_args())
