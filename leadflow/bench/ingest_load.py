"""The load generator of `leadflow bench --ingest`, run in its own process so its CPU is not the
server's event loop: `python -m leadflow.bench.ingest_load URL KEY max|rate RATE SECONDS [CONNECTIONS]`.

Each request carries EVENTS_PER_REQUEST valid events with fresh event ids (the samples' valid
events, cycled). `max`: CONNECTIONS requests in flight at all times (closed loop), the sustained
rate. `rate`: requests started at RATE per second on schedule (open loop); a request's latency
counts from when it was due, so a server that falls behind shows it. Prints one JSON object.
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import orjson

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
    def __init__(self, tag: str):
        self.templates = event_templates()
        self.tag = tag
        self.n = 0

    def next(self) -> bytes:
        self.n += 1
        k = len(self.templates)
        parts = [self.templates[(self.n * EVENTS_PER_REQUEST + i) % k].replace(
            b"@ID@", f"{self.tag}-{self.n}-{i}".encode()) for i in range(EVENTS_PER_REQUEST)]
        return b"[" + b",".join(parts) + b"]"


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run(url: str, key: str, mode: str, rate: float, seconds: float, connections: int) -> dict:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"} if key != "-" else {}
    bodies = Bodies(f"b{time.time_ns()}")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def one(due: float) -> None:
            try:
                async with http.post(url, data=bodies.next(), headers=headers) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError:
                status = 0
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
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {"mode": mode, "seconds": round(elapsed, 2), "requests": len(latencies), "ok": ok,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "requests_per_s": round(ok / elapsed, 1), "events_per_s": round(ok * EVENTS_PER_REQUEST / elapsed),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None}


def main(argv: list[str]) -> None:
    url, key, mode, rate, seconds = argv[:5]
    connections = int(argv[5]) if len(argv) > 5 else 32
    print(orjson.dumps(asyncio.run(run(url, key, mode, float(rate), float(seconds), connections))).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
