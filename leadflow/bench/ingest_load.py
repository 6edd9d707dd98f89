"""The load generator of `leadflow bench --ingest`, run in processes of its own so its CPU is not
the server's: `python -m leadflow.bench.ingest_load URL KEY max|rate RATE SECONDS [CONNECTIONS]`.

Each request carries EVENTS_PER_REQUEST valid events with fresh event ids (the samples' valid
events, cycled). `max`: CONNECTIONS requests in flight at all times (closed loop), the sustained
rate. `rate`: requests started at RATE per second on schedule (open loop); a request's latency
counts from when it was due, so a server that falls behind shows it. Prints one JSON object,
with every latency when `--latencies` is given (to merge several generators' percentiles).

On a 2-core machine the generator competes with the server for CPU, so it is kept cheap: a
plain HTTP/1.1 keep-alive client on asyncio protocols (uvloop), each request's head written
once and its body joined from pre-split templates; the answer's status line and
Content-Length are all it parses (the server's answers are never chunked).
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import uvloop

EVENTS_PER_REQUEST = 20
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample.jsonl"


def event_templates() -> list[bytes]:
    """Valid sample events serialized with `@ID@` in place of their event id."""
    from leadflow.config import load_settings
    from services.ingest.validate import AcceptedEvent, InputOccurrences, Validator

    validator = Validator(load_settings())
    out = []
    for line in SAMPLE.read_bytes().splitlines():
        valid = validator.check(line, origin="bench", default_source="bench", occurrences=InputOccurrences())
        if isinstance(valid, AcceptedEvent):
            event = orjson.loads(line)
            event.pop("source", None)  # a write key's requests take the key's source
            out.append(orjson.dumps({**event, "event_id": "@ID@"}))
    return out


class Bodies:
    """Request bodies: a JSON array of EVENTS_PER_REQUEST events, each with an event id of its own."""

    def __init__(self, tag: str):
        self.templates = [t.split(b"@ID@") for t in event_templates()]
        self.tag = tag
        self.n = 0

    def next(self) -> bytes:
        self.n += 1
        k = len(self.templates)
        prefix = f"{self.tag}-{self.n}-".encode()
        parts = []
        for i in range(EVENTS_PER_REQUEST):
            before, after = self.templates[(self.n * EVENTS_PER_REQUEST + i) % k]
            parts.append(b"".join((before, prefix, str(i).encode(), after)))
        return b"[" + b",".join(parts) + b"]"


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, its answer's status returned."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._answer()

    def _answer(self) -> None:
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = 0
        if at >= 0:
            eol = head.find(b"\r\n", at)
            length = int(head[at + 15:eol if eol >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[:end + 4 + length]
        if b"connection: close" in head:
            self.closed = True
        self.waiter.set_result(status)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, data: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class Client:
    """CONNECTIONS keep-alive connections to one host; `post` takes a free one (or waits for one)."""

    def __init__(self, url: str, key: str, connections: int):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        auth = f"Authorization: Bearer {key}\r\n" if key != "-" else ""
        self.head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}"
                     f"Content-Type: application/json\r\nContent-Length: ").encode()
        self.free: asyncio.Queue = asyncio.Queue()
        for _ in range(connections):
            self.free.put_nowait(None)  # a connection made when first needed

    async def post(self, body: bytes) -> int:
        conn = await self.free.get()
        try:
            if conn is None or conn.closed:
                _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
            status = await conn.request(b"".join((self.head, str(len(body)).encode(), b"\r\n\r\n", body)))
        except OSError:
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            conn = None
            status = 0
        self.free.put_nowait(conn)
        return status

    def close(self) -> None:
        while not self.free.empty():
            conn = self.free.get_nowait()
            if conn is not None and conn.transport is not None:
                conn.transport.close()


async def run(url: str, key: str, mode: str, rate: float, seconds: float, connections: int,
              keep_latencies: bool = False) -> dict:
    bodies = Bodies(f"b{time.time_ns()}")
    client = Client(url, key, connections)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one(due: float) -> None:
        status = await client.post(bodies.next())
        statuses[status] = statuses.get(status, 0) + 1
        latencies.append(time.perf_counter() - due)

    started = time.perf_counter()
    end = started + seconds
    if mode == "max":
        async def worker() -> None:
            while time.perf_counter() < end:
                await one(time.perf_counter())
        await asyncio.gather(*(worker() for _ in range(connections)))
    else:
        tasks = set()
        i = 0
        while True:
            due = started + i / rate
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if tasks:
            await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    client.close()
    return summary(mode, elapsed, statuses, latencies, keep_latencies)


def summary(mode: str, elapsed: float, statuses: dict, latencies: list[float], keep_latencies: bool = False) -> dict:
    latencies = sorted(latencies)
    ok = sum(n for s, n in statuses.items() if 200 <= int(s) < 300)
    out = {"mode": mode, "seconds": round(elapsed, 2), "requests": len(latencies), "ok": ok,
           "statuses": {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: int(kv[0]))},
           "requests_per_s": round(ok / elapsed, 1), "events_per_s": round(ok * EVENTS_PER_REQUEST / elapsed),
           "p50_ms": round(percentile(latencies, 0.50) * 1000, 2) if latencies else None,
           "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None}
    if keep_latencies:
        out["latencies"] = [round(x, 6) for x in latencies]
    return out


def merge(results: list[dict]) -> dict:
    """One summary of several generators that ran side by side (each with `--latencies`)."""
    statuses: dict[str, int] = {}
    for r in results:
        for s, n in r["statuses"].items():
            statuses[s] = statuses.get(s, 0) + n
    latencies = [x for r in results for x in r.get("latencies", ())]
    return summary(results[0]["mode"], max(r["seconds"] for r in results), statuses, latencies)


def main(argv: list[str]) -> None:
    keep = "--latencies" in argv
    argv = [a for a in argv if a != "--latencies"]
    url, key, mode, rate, seconds = argv[:5]
    connections = int(argv[5]) if len(argv) > 5 else 32
    result = uvloop.run(run(url, key, mode, float(rate), float(seconds), connections, keep))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
