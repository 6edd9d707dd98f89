"""Batch stream stages on aiokafka: consume a batch, write it, then commit.

A stage's `handle(records)` must have written every output (warehouse rows,
produced messages) before it returns; only then are the offsets committed.
That is at-least-once delivery; stages keep their sinks idempotent.

Per-event stream machinery (Faust agents) tops out at a few thousand events/s
on this machine, so the hot path works in batches of thousands here.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from leadflow import faults, metrics

log = logging.getLogger(__name__)


class Stage(Protocol):
    name: str
    group_id: str
    topics: list[str]

    async def handle(self, records: list[ConsumerRecord]) -> None: ...


# The stages' batch work (decoding, rows, warehouse reads and writes) runs in this one
# thread, a batch at a time, so the event loop keeps fetching and producing meanwhile (chdb
# and socket I/O release the GIL). 200k events: 15.9 s on the loop, 13.6-14.8 s here; a
# thread per stage was no faster on 2 cores and held 120-190 MiB more (batches of several
# stages in memory at once).
_STAGE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")


async def in_stage_thread(fn, *args):
    """Run a stage's blocking batch work `fn(*args)` in the stage thread."""
    return await asyncio.get_running_loop().run_in_executor(_STAGE_THREAD, functools.partial(fn, *args))


async def start_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, max_request_size=16 << 20,
        acks="all", enable_idempotence=False,
    )
    await producer.start()
    return producer


@dataclass
class OffsetTracker:
    """Highest offset + 1 written per partition, from the broker's own acknowledgements.

    (Tansu's ListOffsets answer is not reliable, so completion is judged from
    these acknowledgements instead of end offsets.)
    """

    ends: dict[TopicPartition, int] = field(default_factory=dict)

    def record(self, topic: str, partition: int, offset: int) -> None:
        tp = TopicPartition(topic, partition)
        if offset + 1 > self.ends.get(tp, 0):
            self.ends[tp] = offset + 1


def partition_for(key: bytes | None, partitions: int) -> int:
    """Partition of a key: CRC-32 modulo the partition count.

    Every leadflow producer goes through `send_all`, so the mapping only has to
    be consistent here; CRC-32 is C code, Kafka's murmur2 in kafka-python/aiokafka
    is pure Python and cost ~7% of a replay.
    """
    return zlib.crc32(key) % partitions if key else 0


async def send_all(producer: AIOKafkaProducer, topic: str, messages: list[tuple[bytes | None, bytes]],
                   tracker: OffsetTracker | None = None) -> None:
    """Produce a batch and wait until the broker has all of it.

    Messages are grouped per partition (`partition_for`) into record batches
    sent whole: per-message `send` costs ~10x more Python per event.
    """
    if not messages:
        return
    n = len(await producer.partitions_for(topic))
    by_partition: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for key, value in messages:
        by_partition[partition_for(key, n)].append((key, value))
    pending = []
    for partition, items in by_partition.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                pending.append((await producer.send_batch(batch, topic, partition=partition), batch.record_count()))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a message of {len(value)} bytes does not fit in a record batch")
        pending.append((await producer.send_batch(batch, topic, partition=partition), batch.record_count()))
    for future, count in pending:
        md = await future
        if tracker is not None:
            tracker.record(md.topic, md.partition, md.offset + count - 1)


class StageRunner:
    """Runs one stage as a consumer-group member until stopped."""

    def __init__(self, bootstrap: str, stage: Stage, *, max_records: int, max_wait_s: float,
                 assign_all: bool = False, max_failures: int = 3):
        """`assign_all`: the only consumer of its topics (embedded runs) takes every partition
        directly instead of joining the group (Tansu delays each JoinGroup by ~5 s); offsets are
        still committed under the stage's group id."""
        self.assign_all = assign_all
        self.max_failures = max_failures
        self.bootstrap = bootstrap
        self.stage = stage
        self.max_records = max_records
        self.max_wait_ms = max(1, int(max_wait_s * 1000))
        self.positions: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *([] if self.assign_all else self.stage.topics), bootstrap_servers=self.bootstrap,
            group_id=self.stage.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=2 << 20,
            fetch_max_bytes=8 << 20, session_timeout_ms=10_000, heartbeat_interval_ms=1_000,
        )
        await consumer.start()
        if self.assign_all:
            partitions = []
            for topic in self.stage.topics:
                for _ in range(100):
                    found = consumer.partitions_for_topic(topic)
                    if found:
                        break
                    await consumer._client.force_metadata_update()  # new topic: metadata may lag
                    await asyncio.sleep(0.05)
                partitions += [TopicPartition(topic, p) for p in sorted(found or ())]
            consumer.assign(partitions)
        failures = 0
        try:
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=self.max_wait_ms, max_records=self.max_records)
                records = [r for part in batch.values() for r in part]
                if not records:
                    self._report_lag(consumer)
                    continue
                started = time.perf_counter()
                try:
                    await self.stage.handle(records)
                except Exception:
                    failures += 1
                    metrics.PROCESSING_ERRORS.labels(stage=self.stage.name).inc()
                    if failures >= self.max_failures:
                        log.error("stage %s failed %d times in a row; stopping", self.stage.name, failures)
                        raise
                    log.exception("stage %s failed on a batch of %d; rewinding to the last commit",
                                  self.stage.name, len(records))
                    for tp in batch:
                        committed = await consumer.committed(tp)
                        consumer.seek(tp, committed if committed is not None else 0)
                    await asyncio.sleep(1.0)
                    continue
                failures = 0
                faults.kill_point(self.stage.name, "after-write")  # the fault suite's crash point; no-op unset
                await consumer.commit()
                for tp, part in batch.items():
                    self.positions[tp] = part[-1].offset + 1
                metrics.STAGE_BATCH_SECONDS.labels(stage=self.stage.name).observe(time.perf_counter() - started)
                metrics.STAGE_RECORDS.labels(stage=self.stage.name).inc(len(records))
                self._report_lag(consumer)
        finally:
            self._clear_lag()
            await consumer.stop()

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """`leadflow_consumer_lag_messages`: per topic, over the partitions this worker holds, the high
        watermark of the last fetch minus the position (= the committed offset here, between batches).
        Fetch responses carry the high watermark; Tansu's ListOffsets answer is not used."""
        metrics.STAGE_RECORDS.labels(stage=self.stage.name)  # the series exists (at 0) from the first poll
        lag = dict.fromkeys(self.stage.topics, 0)
        try:
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                if highwater is None or tp.topic not in lag:
                    continue
                state = consumer._subscription.subscription.assignment.state_value(tp)
                position = state.position if state.has_valid_position else self.positions.get(tp)
                if position is not None:
                    lag[tp.topic] += max(0, highwater - position)
        except Exception:  # e.g. mid-rebalance; a metric must never stop the stage
            log.debug("consumer lag not measured", exc_info=True)
            return
        for topic, n in lag.items():
            metrics.CONSUMER_LAG.labels(stage=self.stage.name, topic=topic).set(n)

    def _clear_lag(self) -> None:
        for topic in self.stage.topics:  # a stopped runner holds no partitions: drop its series
            try:
                metrics.CONSUMER_LAG.remove(self.stage.name, topic)
            except KeyError:
                pass

    def caught_up(self, targets: dict[TopicPartition, int]) -> bool:
        return all(self.positions.get(tp, 0) >= end for tp, end in targets.items() if tp.topic in self.stage.topics)

    def stop(self) -> None:
        self._stopping.set()
