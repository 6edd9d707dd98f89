"""The ceiling: bare aiokafka consume -> orjson decode -> chdb batch insert, no logic."""
from __future__ import annotations

import time
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer

from leadflow.broker import ensure_topics
from leadflow.stream import send_all, start_producer
from leadflow.warehouse import insert_rows

TABLE = ("CREATE TABLE IF NOT EXISTS bench_ceiling (event_id String, type LowCardinality(String), "
         "occurred_at DateTime64(3, 'UTC'), payload String) ENGINE = MergeTree ORDER BY event_id")


async def load_topic(bootstrap: str, topic: str, lines: list[bytes], partitions: int = 4) -> None:
    await ensure_topics(bootstrap, {topic: partitions})
    producer = await start_producer(bootstrap)
    try:
        for i in range(0, len(lines), 20_000):
            await send_all(producer, topic, [(None, line) for line in lines[i:i + 20_000]])
    finally:
        await producer.stop()


async def measure_ceiling(bootstrap: str, client, topic: str, expected: int) -> dict:
    client.command(TABLE)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-ceiling",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            if started is None and batch:
                started = time.perf_counter()
            rows = []
            for records in batch.values():
                for r in records:
                    try:
                        e = orjson.loads(r.value)
                        rows.append((str(e.get("event_id", "")), str(e.get("type", "")),
                                     datetime.fromisoformat(e["occurred_at"]), r.value.decode()))
                    except Exception:  # invalid lines are part of the data; the ceiling skips them
                        pass
                    seen += 1
            insert_rows(client, "bench_ceiling", ["event_id", "type", "occurred_at", "payload"], rows)
            await consumer.commit()
    finally:
        await consumer.stop()
    seconds = time.perf_counter() - (started or time.perf_counter())
    return {"lines": seen, "seconds": round(seconds, 3), "events_per_s": round(seen / seconds, 1)}
