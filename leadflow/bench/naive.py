"""The naive baseline: a per-event Faust agent that validates and inserts each event's raw row.

This is what a first version would do; it shows what batching buys. Faust serves only this
baseline, so it is the `bench` extra (`pip install -e '.[bench]'`, which `make bench` runs):
without it the bench says so and leaves the baseline out.
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from leadflow.config import Settings
from leadflow.warehouse import insert_rows
from services.ingest.sink import RAW_COLUMNS, raw_row
from services.ingest.validate import AcceptedEvent, InputOccurrences, Validator

MISSING = ("naive baseline skipped: faust-streaming is not installed (it serves only this baseline: "
           "`pip install -e '.[bench]'`, or run `make bench`, which installs it)")


def faust_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("faust") is not None


async def measure_naive(bootstrap: str, client, settings: Settings, topic: str, expected: int) -> dict:
    import faust  # the `bench` extra: callers check faust_available() first

    client.command("CREATE TABLE IF NOT EXISTS bench_naive AS raw_events")
    logging.getLogger("faust").setLevel(logging.ERROR)
    logging.getLogger("mode").setLevel(logging.ERROR)
    app = faust.App(f"{topic}-naive", broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
                    broker_rebalance_timeout=5, broker_session_timeout=6, broker_heartbeat_interval=1,
                    topic_allow_declare=False, topic_disable_leader=True, consumer_auto_offset_reset="earliest")
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")
    validator, occurrences = Validator(settings), InputOccurrences()
    done, state = asyncio.Event(), {"seen": 0, "started": None}

    @app.agent(source)
    async def naive(stream):
        async for value in stream:
            if state["started"] is None:
                state["started"] = time.perf_counter()
            result = validator.check(value, origin="bench", default_source="bench", occurrences=occurrences)
            if isinstance(result, AcceptedEvent):
                event = orjson.loads(result.value)
                insert_rows(client, "bench_naive", RAW_COLUMNS, [raw_row(event, result.value)])
            state["seen"] += 1
            if state["seen"] >= expected:
                done.set()

    await app.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=max(120.0, expected / 50))
    finally:
        await app.stop()
    seconds = time.perf_counter() - state["started"]
    return {"lines": state["seen"], "seconds": round(seconds, 3), "events_per_s": round(state["seen"] / seconds, 1)}
