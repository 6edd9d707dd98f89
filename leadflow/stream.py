"""Batch stream stages on aiokafka: consume a batch, write it, then commit.

A stage's `handle(records)` must have written every output (warehouse rows,
produced messages) before it returns; only then are the offsets committed.
That is at-least-once delivery; stages keep their sinks idempotent.

Errors (`StageRunner`): a transient one (warehouse or broker unreachable, a
timeout, a failed commit or a rebalance) rewinds to the committed offsets and
redoes the batch after an exponential backoff with full jitter (tenacity), for
up to `stage_retry_seconds`; then the stage gives up (`StageStopped`). A
permanent one (a record the stage cannot decode or handle) is narrowed down to
its record(s) by bisecting the batch; those go to the dead-letter topic with
the error and the stage goes on.

Per-event stream machinery (Faust agents) tops out at a few thousand events/s
on this machine, so the hot path works in batches of thousands here.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka import errors as kafka_errors
from clickhouse_connect.driver import exceptions as ch_errors
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay, wait_random_exponential
from aiokafka.errors import KafkaError

from leadflow import faults, metrics
from leadflow.warehouse import WarehouseError

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
    """Run a stage's blocking batch work `fn(*args)` in the stage thread; its time counts in
    `leadflow_stage_thread_busy_seconds_total` under the stage (`fn`'s object's `name`, else "other")."""
    stage = getattr(getattr(fn, "__self__", None), "name", None)
    busy = metrics.STAGE_THREAD_BUSY.labels(stage=stage if isinstance(stage, str) else "other")
    return await asyncio.get_running_loop().run_in_executor(_STAGE_THREAD, _timed, busy, functools.partial(fn, *args))


def _timed(busy, fn):
    started = time.perf_counter()
    try:
        return fn()
    finally:
        busy.inc(time.perf_counter() - started)


STAGE_LINGER_MS = 5  # a stage produces a batch's records at once; 5 ms more lets them fill record batches


async def start_producer(bootstrap: str, *, idempotent: bool = False,
                         linger_ms: int = STAGE_LINGER_MS) -> AIOKafkaProducer:
    """A producer waiting for every in-sync replica (acks=all). `idempotent`: the broker drops a batch
    the producer sends again after a lost acknowledgement (ingest). A broker without idempotent
    producers (the embedded Tansu answers InitProducerId with an error) gets a plain acks=all one,
    with a warning: a resent batch then lands twice and the sinks drop the copy by event_id.
    `linger_ms`: how long a record batch waits for more records before it goes."""
    if idempotent:
        producer = _producer(bootstrap, True, linger_ms)
        sender_log = logging.getLogger("aiokafka.producer.sender")  # logs the refusal as an ERROR
        level = sender_log.level
        sender_log.setLevel(logging.CRITICAL)
        try:
            await producer.start()
            return producer
        except KafkaError as exc:
            await producer.stop()
            log.warning("broker %s refused an idempotent producer (%s): producing with acks=all only",
                        bootstrap, type(exc).__name__)
        finally:
            sender_log.setLevel(level)
    producer = _producer(bootstrap, False, linger_ms)
    await producer.start()
    return producer


def _producer(bootstrap: str, idempotent: bool, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=linger_ms, max_batch_size=1 << 20, max_request_size=16 << 20,
        acks="all", enable_idempotence=idempotent,
    )


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


async def partition_count(producer: AIOKafkaProducer, topic: str) -> int:
    return len(await producer.partitions_for(topic))


async def send_all(producer: AIOKafkaProducer, topic: str, messages: list[tuple[bytes | None, bytes]],
                   tracker: OffsetTracker | None = None) -> None:
    """Produce a batch and wait until the broker has all of it.

    Messages are grouped per partition (`partition_for`) into record batches
    sent whole: per-message `send` costs ~10x more Python per event.
    """
    if not messages:
        return
    n = await partition_count(producer, topic)
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


# ClickHouse error codes that say the data of a batch is at fault (it cannot be parsed, converted
# or stored), not the warehouse: the same records fail every time, so they are not retried.
_DATA_ERROR_CODES = frozenset({
    6, 26, 27, 32, 33, 38, 41, 43, 44, 53, 69, 70, 72, 117, 130, 131, 190, 395,
})
_CODE = re.compile(r"Code: (\d+)")
_PERMANENT_KAFKA = (kafka_errors.RecordTooLargeError, kafka_errors.MessageSizeTooLargeError,
                    kafka_errors.RecordListTooLargeError)


def is_transient(exc: BaseException) -> bool:
    """True when redoing the same batch later may succeed: the broker or the warehouse is
    unreachable, busy or timed out, a commit failed or the group rebalanced. False for errors the
    batch's data causes (a record that cannot be decoded, converted or stored) and for bugs."""
    if isinstance(exc, StageFatal):
        return False
    if isinstance(exc, kafka_errors.KafkaError):
        return not isinstance(exc, _PERMANENT_KAFKA)
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, (ch_errors.DataError, ch_errors.NotSupportedError)):
        return False
    if isinstance(exc, ch_errors.ProgrammingError):  # raised on the client: bad data or a bug, except
        return "Unable to open" in str(exc)  # an engine or server that cannot be opened now
    if isinstance(exc, ch_errors.DatabaseError):
        code = _CODE.search(str(exc))
        return not (code and int(code.group(1)) in _DATA_ERROR_CODES)
    if isinstance(exc, ch_errors.Error):  # connection and stream failures
        return True
    if isinstance(exc, WarehouseError):
        return exc.__cause__ is None or is_transient(exc.__cause__)
    return False


class StageFatal(Exception):
    """An error after which the stage must not go on at all (e.g. it lost its writer lease)."""


class StageStopped(RuntimeError):
    """A stage gave up: transient errors outlasted `retry_seconds`, or a fatal error."""


def describe(exc: BaseException, limit: int = 500) -> str:
    """An error as one line: `Type: message` (shortened)."""
    text = " ".join(str(exc).split()) or "(no message)"
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= limit else line[:limit - 3] + "..."


@dataclass(frozen=True)
class RetryPolicy:
    """How a stage rides out transient errors: backoff from `initial_s` doubling up to `max_s`,
    each wait drawn uniformly below that (full jitter), until `give_up_s` of failing in a row."""

    give_up_s: float = 300.0
    initial_s: float = 0.2
    max_s: float = 15.0
    max_poison_per_batch: int = 100

    @classmethod
    def from_settings(cls, settings) -> "RetryPolicy":
        return cls(settings.stage_retry_seconds, settings.stage_backoff_initial_seconds,
                   settings.stage_backoff_max_seconds, settings.stage_max_poison_per_batch)


# dead_letter(stage name, record, error): publish the record to the dead-letter topic with the error
DeadLetterFn = Callable[[str, ConsumerRecord, BaseException], Awaitable[None]]


class StageRunner:
    """Runs one stage as a consumer-group member until stopped, or until it gives up.

    `state`: starting | running | retrying (`error` says why) | stopped (`error` says why when it
    gave up). `run()` raises StageStopped when it gives up."""

    def __init__(self, bootstrap: str, stage: Stage, *, max_records: int, max_wait_s: float,
                 assign_all: bool = False, retry: RetryPolicy = RetryPolicy(),
                 dead_letter: DeadLetterFn | None = None):
        """`assign_all`: the only consumer of its topics (embedded runs) takes every partition
        directly instead of joining the group (Tansu delays each JoinGroup by ~5 s); offsets are
        still committed under the stage's group id. `dead_letter`: where records the stage cannot
        handle go (None: such a record stops the stage)."""
        self.assign_all = assign_all
        self.retry = retry
        self.dead_letter = dead_letter
        self.bootstrap = bootstrap
        self.stage = stage
        self.max_records = max_records
        self.max_wait_ms = max(1, int(max_wait_s * 1000))
        self.positions: dict[TopicPartition, int] = {}
        self.state = "starting"
        self.error: str | None = None
        self.dead_lettered = 0
        self._rewind_first = False
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        consumer = None
        metrics.STAGE_UP.labels(stage=self.stage.name).set(1)
        try:
            consumer = await self._retrying(self._start_consumer)
            self.state = "running"
            while not self._stopping.is_set():
                await self._retrying(self._cycle, consumer)
        except Exception as exc:
            if self._stopping.is_set() and is_transient(exc):
                return  # stopped while riding out an outage: nothing is committed past the last write
            self.state, self.error = "stopped", describe(exc)
            metrics.STAGE_UP.labels(stage=self.stage.name).set(0)
            log.error("stage %s gave up: %s", self.stage.name, self.error)
            if consumer is not None:
                await self._final_lag(consumer)
            raise StageStopped(f"stage {self.stage.name} stopped: {self.error}") from exc
        finally:
            self.state = "stopped"
            if consumer is not None:
                await consumer.stop()

    async def _retrying(self, fn, *args):
        """`fn(*args)`; transient errors are retried with backoff (the next attempt starts from the
        committed offsets) until `retry.give_up_s` of failing in a row, or the runner stops."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=self.retry.initial_s, max=self.retry.max_s),
            stop=stop_after_delay(self.retry.give_up_s) | (lambda _: self._stopping.is_set()),
            sleep=self._sleep, before_sleep=self._before_retry, reraise=True,
        )
        result = await retrying(fn, *args)
        if self.state == "retrying":
            log.warning("stage %s recovered", self.stage.name)
            self.state, self.error = "running", None
        return result

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception()
        self.state, self.error = "retrying", describe(exc)
        self._rewind_first = True
        metrics.PROCESSING_ERRORS.labels(stage=self.stage.name).inc()
        log.warning("stage %s: transient error (attempt %d), retrying from the last commit in %.1f s: %s",
                    self.stage.name, state.attempt_number, state.upcoming_sleep, self.error)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _start_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            *([] if self.assign_all else self.stage.topics), bootstrap_servers=self.bootstrap,
            group_id=self.stage.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=2 << 20,
            fetch_max_bytes=8 << 20, session_timeout_ms=10_000, heartbeat_interval_ms=1_000,
        )
        try:
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
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _rewind(self, consumer: AIOKafkaConsumer) -> None:
        """Back to the committed offsets: the batch of a failed attempt is fetched and done again."""
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def _cycle(self, consumer: AIOKafkaConsumer) -> None:
        """One batch: fetch, handle, commit."""
        if self._rewind_first:
            await self._rewind(consumer)
            self._rewind_first = False
        batch = await consumer.getmany(timeout_ms=self.max_wait_ms, max_records=self.max_records)
        records = [r for part in batch.values() for r in part]
        if not records:
            self._report_lag(consumer)
            return
        started = time.perf_counter()
        await self._handle(records)
        offsets = {tp: part[-1].offset + 1 for tp, part in batch.items()}
        faults.kill_point(self.stage.name, "after-write")  # the fault suite's crash point; no-op unset
        await consumer.commit(offsets)
        self.positions.update(offsets)
        took = time.perf_counter() - started
        metrics.STAGE_BATCH_SECONDS.labels(stage=self.stage.name).observe(took)
        metrics.STAGE_RECORDS.labels(stage=self.stage.name).inc(len(records))
        self._report_lag(consumer)
        pause = getattr(self.stage, "pause_after", None)  # a stage that paces itself (the rollup stage)
        if pause is not None:
            await self._sleep(pause(took))

    async def _handle(self, records: list[ConsumerRecord]) -> None:
        """Handle a batch; when it fails for a permanent reason, find the records at fault by
        bisection, dead-letter them and handle the others (in order)."""
        try:
            await self.stage.handle(records)
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, StageFatal) or self.dead_letter is None:
                raise
            log.warning("stage %s: a batch of %d failed (%s); looking for the records at fault",
                        self.stage.name, len(records), describe(exc))
            await self._isolate(records, exc, [0])

    async def _isolate(self, records: list[ConsumerRecord], exc: Exception, poisoned: list[int]) -> None:
        if len(records) == 1:
            if poisoned[0] >= self.retry.max_poison_per_batch:
                raise StageFatal(f"more than {self.retry.max_poison_per_batch} records of one batch failed "
                                 f"(last: {describe(exc)}); stopping rather than dead-lettering them all") from exc
            poisoned[0] += 1
            await self.dead_letter(self.stage.name, records[0], exc)
            self.dead_lettered += 1
            metrics.STAGE_DEAD_LETTERS.labels(stage=self.stage.name).inc()
            log.warning("stage %s: dead-lettered %s[%d]@%d: %s", self.stage.name, records[0].topic,
                        records[0].partition, records[0].offset, describe(exc))
            return
        middle = len(records) // 2
        for half in (records[:middle], records[middle:]):
            try:
                await self.stage.handle(half)
            except Exception as half_exc:
                if is_transient(half_exc) or isinstance(half_exc, StageFatal):
                    raise
                await self._isolate(half, half_exc, poisoned)

    async def _final_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Measure the lag once more from the committed offsets; it stays exported after the stop, so
        PipelineLag can fire for a stage that gave up."""
        try:
            for tp in consumer.assignment():
                if tp not in self.positions:
                    self.positions[tp] = await asyncio.wait_for(consumer.committed(tp), 2) or 0
        except Exception:  # the broker may be what is down: keep what is known
            log.debug("committed offsets not read at stop", exc_info=True)
        self._report_lag(consumer)

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """`leadflow_consumer_lag_messages`: per topic, over the partitions this worker holds, the high
        watermark of the last fetch minus the position (= the committed offset here, between batches).
        Fetch responses carry the high watermark; Tansu's ListOffsets answer is not used. The series
        outlive the runner (a stage that gave up keeps its last lag, so PipelineLag can fire)."""
        metrics.STAGE_RECORDS.labels(stage=self.stage.name)  # the series exists (at 0) from the first poll
        lag = dict.fromkeys(self.stage.topics, 0)
        try:
            for tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                if highwater is None or tp.topic not in lag:
                    continue
                state = consumer._subscription.subscription.assignment.state_value(tp)
                position = self.positions.get(tp) if self.state == "stopped" or not state.has_valid_position \
                    else state.position
                if position is not None:
                    lag[tp.topic] += max(0, highwater - position)
        except Exception:  # e.g. mid-rebalance; a metric must never stop the stage
            log.debug("consumer lag not measured", exc_info=True)
            return
        for topic, n in lag.items():
            metrics.CONSUMER_LAG.labels(stage=self.stage.name, topic=topic).set(n)

    def caught_up(self, targets: dict[TopicPartition, int]) -> bool:
        return all(self.positions.get(tp, 0) >= end for tp, end in targets.items() if tp.topic in self.stage.topics)

    def stop(self) -> None:
        self._stopping.set()
