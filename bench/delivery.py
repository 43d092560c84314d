"""Bid -> subscriber delivery: 1,000 `auctionEvents` subscribers split over two server processes
that share PostgreSQL and Redis, against raw Redis PUBLISH -> SUBSCRIBE to as many subscribers,
in the same run.

    .venv/bin/python -m bench.delivery [--subscribers 1000] [--seconds 10] [--burst 100]

Two `forecourt` server processes (REDIS_URL set, so every event crosses Redis) serve
graphql-transport-ws subscribers (asyncio protocols: the `websockets` library's Sans-I/O client
for the handshake, then, by default, a minimal frame reader as lean as the raw side's RESP
reader; `--client websockets` reads with the library throughout; each a different signed-in
user, half on each process, all with one selection that includes the viewer-dependent
`isLeading`; they offer permessage-deflate as browsers do unless `--no-deflate`). One bidder
places bids over HTTP, alternating between the processes. The latency of a delivery is the time
from sending the bid's HTTP request to the subscriber's frame being read; the raw baseline's is
from PUBLISH to the message being read by one of as many plain Redis subscriber connections
(asyncio protocol, minimal RESP parsing). Both are timestamped as the bytes arrive. Phases:

1. latency: bids / messages at `--rate` per second (default 5: 5,000 deliveries/s);
2. sustained: at `--sustained-rate` (default 10: 10,000 deliveries/s), all must arrive;
3. burst: `--burst` bids back to back; deliveries/s = deliveries / (last arrival - first send).

Every subscriber must receive every event once, in sequence order (checked). The load
generator, both servers, PostgreSQL and Redis share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from decimal import Decimal

import httpx
import orjson
import uvloop
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    enable_client_permessage_deflate,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

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


class Subscriber(asyncio.Protocol):
    """One graphql-transport-ws connection subscribed to the auction's events: the `websockets`
    library's Sans-I/O client on an asyncio protocol, so that messages are parsed and
    timestamped as they arrive (as the raw Redis subscribers' are) rather than after a task
    switch per message: the load generator shares the machine's two cores with the servers."""

    def __init__(self, url: str, token: str, auction_id: str, arrivals: Arrivals,
                 compression: str | None) -> None:
        self.url, self.token, self.auction_id, self.arrivals = url, token, auction_id, arrivals
        extensions = enable_client_permessage_deflate(None) if compression else None
        self.protocol = ClientProtocol(parse_uri(url), subprotocols=["graphql-transport-ws"],
                                       extensions=extensions, max_size=None)
        self.last_sequence: int | None = None
        self.acknowledged = asyncio.get_running_loop().create_future()

    async def open(self) -> None:
        uri = parse_uri(self.url)
        await asyncio.get_running_loop().create_connection(lambda: self, uri.host, uri.port)
        await asyncio.wait_for(self.acknowledged, 60)
        self.send({"id": "1", "type": "subscribe", "payload": {
            "query": EVENTS, "variables": {"id": self.auction_id}}})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self.flush()

    def send(self, message: dict) -> None:
        self.protocol.send_text(orjson.dumps(message))
        self.flush()

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Response):
                if protocol.handshake_exc is not None:
                    self.acknowledged.set_exception(protocol.handshake_exc)
                else:
                    self.send({"type": "connection_init",
                               "payload": {"Authorization": f"Bearer {self.token}"}})
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                assert event.fin, "fragmented message"
                self.message(orjson.loads(event.data), now)
            elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                self.arrivals.problems.append(f"closed: {event.data!r}")
        self.flush()  # pongs, closes

    def message(self, message: dict, now: float) -> None:
        kind = message["type"]
        if kind == "next":
            data = message["payload"].get("data")
            if not data:
                self.arrivals.problems.append(f"error: {message['payload']}")
                return
            event = data["auctionEvents"]
            sequence = event["sequence"]
            if self.last_sequence is not None and sequence != self.last_sequence + 1:
                self.arrivals.problems.append(f"sequence {sequence} after {self.last_sequence}")
            self.last_sequence = sequence
            self.arrivals.times.append((event["bid"]["amount"], now))
        elif kind == "connection_ack":
            self.acknowledged.set_result(None)
        elif kind == "ping":
            self.send({"type": "pong"})
        elif kind in ("error", "complete"):
            self.arrivals.problems.append(f"{kind}: {message}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.acknowledged.done():
            self.acknowledged.set_exception(exc or ConnectionError("closed"))

    async def close(self) -> None:
        self.transport.close()


class LeanSubscriber(Subscriber):
    """The same subscriber, reading frames with a minimal parser after the library's handshake
    (as the raw Redis subscribers read RESP): on this 2-core machine the load generator's CPU
    per delivery delays everyone's deliveries, and the library's general-purpose parser costs
    about twice what the raw side's does. Server frames are unmasked and unfragmented; a
    permessage-deflate message (RSV1) is inflated with a context per message or per
    connection, as negotiated; pings are answered; what the client sends goes through the
    library (masked, uncompressed)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = b""
        self.open_ = False
        self.inflate = None  # per connection when the server keeps its compression context
        self.inflate_bits = 0

    def data_received(self, data: bytes) -> None:
        if not self.open_:
            now = time.perf_counter()
            protocol = self.protocol
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Response):
                    if protocol.handshake_exc is not None:
                        self.acknowledged.set_exception(protocol.handshake_exc)
                        return
                    self.open_ = True
                    for extension in protocol.extensions:
                        if isinstance(extension, PerMessageDeflate):
                            self.inflate_bits = extension.remote_max_window_bits
                            if not extension.remote_no_context_takeover:
                                self.inflate = zlib.decompressobj(wbits=-self.inflate_bits)
                    self.send({"type": "connection_init",
                               "payload": {"Authorization": f"Bearer {self.token}"}})
                elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:  # pragma: no cover
                    self.message(orjson.loads(event.data), now)
            self.flush()
            return
        now = time.perf_counter()
        buffer = self.buffer + data if self.buffer else data
        position, size = 0, len(buffer)
        while size - position >= 2:
            head, length = buffer[position], buffer[position + 1] & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length, start = int.from_bytes(buffer[start:start + 2], "big"), start + 2
            elif length == 127:
                if size - start < 8:
                    break
                length, start = int.from_bytes(buffer[start:start + 8], "big"), start + 8
            if size - start < length:
                break
            payload = buffer[start:start + length]
            position = start + length
            assert head & 0x80, "fragmented message"
            opcode = head & 0x0F
            if opcode == 1:
                if head & 0x40:  # compressed
                    inflate = self.inflate or zlib.decompressobj(wbits=-self.inflate_bits)
                    payload = inflate.decompress(payload + b"\x00\x00\xff\xff")
                self.message(orjson.loads(payload), now)
            elif opcode == 9:  # ping
                self.protocol.send_pong(payload)
                self.flush()
            elif opcode == 8:
                self.arrivals.problems.append(f"closed: {payload!r}")
        self.buffer = buffer[position:]


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
        self.answered: dict[str, float] = {}

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
        self.answered[amount] = time.perf_counter()
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


def summarize(source, times: list[tuple[str, float]], expected: int) -> dict:
    sent = source.sent
    latencies = sorted((t - sent[key]) * 1000 for key, t in times)
    first = min(sent[key] for key, _ in times)
    last = max(t for _, t in times)
    per_event: dict[str, list[float]] = {}
    for key, t in times:
        per_event.setdefault(key, []).append(t)
    answered = getattr(source, "answered", {})
    return {
        "delivered": len(times), "expected": expected,
        "p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1],
        "max": latencies[-1], "per_second": len(times) / (last - first),
        # medians over events: the publisher's answer, the first and the last delivery
        "answer": statistics.median((answered[k] - sent[k]) * 1000 for k in per_event) if answered else 0.0,
        "first": statistics.median((min(ts) - sent[k]) * 1000 for k, ts in per_event.items()),
        "last": statistics.median((max(ts) - sent[k]) * 1000 for k, ts in per_event.items()),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


async def run_phases(name: str, source, arrivals: Arrivals, subscribers: int, args,
                     servers: list[int]) -> dict:
    results = {}
    gc.collect()
    gc.freeze()  # the connections: no full collection walks them in the middle of a phase

    async def phase(label: str, publish) -> None:
        source.sent.clear()
        arrivals.take()
        cpu = [cpu_seconds(pid) for pid in (*servers, os.getpid())]
        count = await publish()
        await settle(arrivals, count * subscribers)
        used = [cpu_seconds(pid) - before for pid, before in zip((*servers, os.getpid()), cpu, strict=True)]
        results[label] = r = summarize(source, arrivals.take(), count * subscribers)
        # CPU per delivery (µs): the server processes (Redis for the raw side), this client.
        r["server_us"] = sum(used[:-1]) / max(r["delivered"], 1) * 1e6
        r["client_us"] = used[-1] / max(r["delivered"], 1) * 1e6

    async def burst() -> int:
        for _ in range(args.burst):
            await source.bid()
        return args.burst

    await phase("latency", lambda: paced(source, args.rate, args.seconds))
    await phase("sustained", lambda: paced(source, args.sustained_rate, args.seconds))
    await phase("burst", burst)
    for label, r in results.items():
        print(f"  {name:8s} {label:9s}: {r['delivered']:7d}/{r['expected']:7d} delivered  "
              f"p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms  "
              f"{r['per_second']:8.0f} deliveries/s", flush=True)
        print(f"  {'':8s} {'':9s}  per event: answer {r['answer']:.1f} ms, first delivery "
              f"{r['first']:.1f} ms, last {r['last']:.1f} ms; CPU per delivery: "
              f"{'servers' if name == 'graphql' else 'redis'} {r['server_us']:.0f} µs, "
              f"client {r['client_us']:.0f} µs", flush=True)
        if r["delivered"] != r["expected"]:
            arrivals.problems.append(f"{name} {phase}: {r['delivered']} of {r['expected']} delivered")
    return results


async def graphql_side(urls: list[str], pids: list[int], database_url: str, args) -> dict:
    auction_id, bidder_tokens, _ = await arrange(urls[0], database_url, 1)
    viewers = await register_users(urls[0], args.subscribers)
    arrivals = Arrivals()
    compression = None if args.no_deflate else "deflate"
    kind = LeanSubscriber if args.client == "lean" else Subscriber
    subscribers = [kind(urls[i % 2].replace("http", "ws") + "/graphql", token, auction_id, arrivals,
                        compression) for i, token in enumerate(viewers)]
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
        results = await run_phases("graphql", bidder, arrivals, args.subscribers, args, pids)
    finally:
        bidder.close()
        await asyncio.gather(*(s.close() for s in subscribers), return_exceptions=True)
    if arrivals.problems:
        raise AssertionError(f"{len(arrivals.problems)} problems, e.g. {arrivals.problems[:5]}")
    return results


async def raw_side(redis_server: RedisServer, args, size: int) -> dict:
    redis_url = redis_server.url
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
        return await run_phases("redis", publisher, arrivals, args.subscribers, args,
                                [redis_server.process.pid])
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
        ours = await graphql_side(urls, [proc.pid for proc, _ in servers], database_url, args)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait()
    raw = await raw_side(redis_server, args, args.message_size)
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
    parser.add_argument("--no-deflate", action="store_true",
                        help="subscribers do not offer permessage-deflate (browsers do)")
    parser.add_argument("--message-size", type=int, default=420, help="raw Redis message bytes")
    parser.add_argument("--client", choices=("lean", "websockets"), default="lean",
                        help="how subscribers read frames after the handshake: a minimal parser, as "
                             "the raw Redis subscribers read RESP (default), or the websockets library's")
    main(parser.parse_args())
