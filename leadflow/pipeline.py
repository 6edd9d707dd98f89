"""The stages of one leadflow process, wired together, and a way to wait for them.

Embedded runs (`replay`, `run`, `serve`) start every stage in one process,
because chdb is an in-process engine. In production each stage runs as its
own consumer group in as many workers as the topic has partitions.
"""
from __future__ import annotations

import asyncio
import ctypes
import gc
import hashlib
import logging
import time
from datetime import datetime, timezone
from typing import Callable

import orjson
from aiokafka import ConsumerRecord
from clickhouse_connect.driver.client import Client

from leadflow import warehouse
from leadflow.broker import ensure_topics
from leadflow.config import Settings
from leadflow.lease import FencedStage, Lease
from leadflow.secret_guard import check_fingerprint
from leadflow.stream import (OffsetTracker, RetryPolicy, Stage, StageFatal, StageRunner, StageStopped, describe,
                             in_stage_thread, partition_count, send_all, start_producer)
from leadflow.topics import Stages, topics_for
from services.attribution.stage import AttributionStage
from services.enrich.stage import EnrichStage
from services.rollup.dirty import PENDING_SQL, Dirty
from services.rollup.stage import RollupStage
from services.ingest.sink import DeadLetterSink, RawEventSink
from services.ingest.validate import DeadLetter, original_bytes, partition_key

log = logging.getLogger(__name__)


# Python's default collector thresholds (700, 10, 10) run a young collection every 700
# net allocations; a stage allocates a few tuples and dicts per event and the process holds
# millions of long-lived objects (the identity graph, batches in flight), so collecting
# cost 15-20% of a replay (200k events: 16.9-18.4 s -> 14.1-15.1 s with these). Most
# garbage goes by refcount; larger older-generation thresholds were no faster and held
# ~80 MiB more.
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Collect less often in a process that runs stages (idempotent)."""
    if gc.get_threshold()[0] < GC_THRESHOLDS[0]:
        gc.set_threshold(*GC_THRESHOLDS)


def release_free_memory() -> None:
    """Hand what the process has freed back to the system: a full collection, then glibc's
    malloc_trim (CPython's and glibc's allocators keep freed heap mapped). A bulk replay calls
    it once its stages are gone (their identity graph, batches and buffers), before the
    rollups' catch-up asks chdb for memory of its own."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: what is freed stays mapped, as before
        pass


def settle_gc() -> None:
    """For a long-running server once started: collect less often, and leave what start-up made
    (modules, models, app) out of every later collection (gc.freeze), so a full collection on
    the request path costs less."""
    tune_gc()
    gc.collect()
    gc.freeze()


def stage_dead_letter_of(record: ConsumerRecord) -> bool:
    """Whether a dead-letter topic record is one a stage made (not ingest's)."""
    try:
        return orjson.loads(record.value).get("processor") == STAGE_PROCESSOR
    except Exception:
        return False


class PipelineError(RuntimeError):
    """A stage stopped, or the pipeline did not finish in time."""


ALL_STAGES = (Stages.WAREHOUSE_SINK, Stages.DEADLETTER_SINK, Stages.ENRICH, Stages.ATTRIBUTION, Stages.ROLLUP)
STAGE_PROCESSOR = "leadflow-stage"


def stage_dead_letter(stage: str, record: ConsumerRecord, exc: BaseException) -> DeadLetter:
    """The dead letter of a record stage `stage` cannot handle: its original bytes and the error.

    Its id hashes the stage, the record's place and its bytes, so a batch redone after a
    transient error dead-letters the record again under the same id (the table keeps one)."""
    event: dict = {}
    try:
        decoded = orjson.loads(record.value)
        event = decoded if isinstance(decoded, dict) else {}
    except (orjson.JSONDecodeError, TypeError):
        pass

    def text(name: str) -> str:
        value = event.get(name)
        return value[:200] if isinstance(value, str) else ""

    place = f"{record.topic}[{record.partition}]@{record.offset}"
    digest = hashlib.sha256(f"{stage}\0{place}\0".encode() + (record.value or b"")).hexdigest()
    return DeadLetter(
        dead_letter_id=f"{digest}#stage", rejected_at=datetime.now(timezone.utc),
        source=text("source") or f"stage:{stage}", origin=f"{stage}:{place}", event_id=text("event_id"),
        event_type=text("type"), error_kind="processing", errors=[("", f"{stage}: {describe(exc, 1000)}")],
        processor=STAGE_PROCESSOR, **original_bytes(record.value or b""),
    )


class Pipeline:
    def __init__(self, settings: Settings, bootstrap: str, client: Client, single_process: bool = True,
                 stages: tuple[str, ...] = ALL_STAGES, identity_graph=None, defer_rollups: bool = False):
        """`single_process`: this process is the only consumer of the topics and runs every stage
        (embedded runs, replay, serve); it takes all partitions directly and resumes unfinished work.
        False for workers (`leadflow worker`) that run some `stages` in consumer groups shared with
        other workers. `identity_graph`: the graph of a single-process pipeline this process just
        drained on the same warehouse (a replay in segments); it is taken over instead of loaded,
        and nothing is left unfinished to resume. `defer_rollups`: a bulk load (replay) runs without
        the rollup stage; enrich and attribution only record what changed in rollup_queue, and the
        loader refreshes it once at the end (services/rollup/stage.py catch_up)."""
        unknown = set(stages) - set(ALL_STAGES)
        if unknown:
            raise ValueError(f"unknown stage(s): {', '.join(sorted(unknown))}; one of {', '.join(ALL_STAGES)}")
        rollup_stage = settings.rollups and not defer_rollups  # off or deferred: no rollup stage
        stages, every = (tuple(s for s in names if rollup_stage or s != Stages.ROLLUP)
                         for names in (stages, ALL_STAGES))
        if single_process and stages != every:
            raise ValueError("a single-process pipeline runs every stage")
        self.stages = stages
        self.single_process = single_process
        self.identity_graph = identity_graph
        self.defer_rollups = defer_rollups
        self.settings = settings
        self.bootstrap = bootstrap
        self.client = client
        self.topics = topics_for(settings)
        self.producer = None
        self.runners: list[StageRunner] = []
        self.lease: Lease | None = None
        self._lease_task: asyncio.Task | None = None
        self._standby: str | None = None
        self._closing = False
        self._tasks: list[asyncio.Task] = []
        self._own_clients: list[Client] = []

    async def __aenter__(self) -> "Pipeline":
        tune_gc()
        check_fingerprint(self.client, self.settings.identity_secret)  # before anything is written
        await ensure_topics(self.bootstrap, {t: self.settings.topic_partitions for t in self.topics.all()},
                            self.settings.replication_factor)
        self.producer = await start_producer(self.bootstrap)
        # stages do their batch work off the event loop (leadflow.stream.in_stage_thread): a server
        # client gets a session per stage, chdb's is shared (it serializes calls with a lock)
        client = self._stage_client
        build = {
            Stages.WAREHOUSE_SINK: lambda: RawEventSink(client(), self.producer, self.topics),
            Stages.DEADLETTER_SINK: lambda: DeadLetterSink(client(), self.topics, self.settings.identity_secret),
            Stages.ENRICH: lambda: EnrichStage(client(), self.producer, self.topics, self.settings,
                                               self.identity_graph),
            Stages.ATTRIBUTION: lambda: AttributionStage(client(), self.topics, self.settings, self.producer),
            Stages.ROLLUP: lambda: RollupStage(client(), self.topics, self.settings),
        }
        if Stages.ENRICH in self.stages and self._enrich_needs_lease():
            self.lease = Lease(client(), Stages.ENRICH, ttl_s=self.settings.enrich_lease_seconds,
                               settle_s=self.settings.lease_settle_seconds)
            if self.single_process:  # it must enrich what it publishes: wait for the lease here
                await self.lease.acquire(self._standing_by)
                self._standby = None
                self._lease_task = asyncio.create_task(self.lease.keep(), name="lease-enrich")
        # a worker's leased enrich is built (its graph loaded) once it holds the lease
        deferred = Stages.ENRICH if self.lease is not None and not self.single_process else None
        built = {name: build[name]() for name in self.stages if name != deferred}
        self.raw_sink = built.get(Stages.WAREHOUSE_SINK)
        self.dead_sink = built.get(Stages.DEADLETTER_SINK)
        self.enrich = built.get(Stages.ENRICH)
        self.attribution = built.get(Stages.ATTRIBUTION)
        self.rollup = built.get(Stages.ROLLUP)
        if self.enrich is not None and self.attribution is not None:  # one tracker of what the rollup stage has to do
            self.attribution.dirty_emitted = self.enrich.dirty_emitted
        for stage in (self.enrich, self.attribution):
            if stage is not None and self.defer_rollups:
                stage.announce_rollups = False  # recorded in rollup_queue only
        if self.single_process and self.identity_graph is None:
            await self._resume()
        for name, stage in built.items():
            self._start(FencedStage(stage, self.lease) if self.lease is not None and name == Stages.ENRICH else stage)
        if deferred:
            self._tasks.append(asyncio.create_task(self._enrich_when_leased(build[Stages.ENRICH]),
                                                   name=f"stage-{Stages.ENRICH}"))
        return self

    def _enrich_needs_lease(self) -> bool:
        """One identity writer per warehouse: enrich takes the lease unless the warehouse is this
        process's own (chdb opens a directory in one process only, and a single-process pipeline is
        the only one in it)."""
        return not (self.single_process and self.settings.warehouse_dsn.startswith("chdb:"))

    def _standing_by(self, holding) -> None:
        self._standby = holding.describe()

    def _runner(self, stage: Stage) -> StageRunner:
        # a stage may cap its batch in records of its own (the rollup stage's messages are packed)
        max_records = getattr(stage, "max_records", self.settings.batch_max_rows)
        return StageRunner(self.bootstrap, stage, max_records=max_records,
                           max_wait_s=self.settings.batch_max_seconds, assign_all=self.single_process,
                           retry=RetryPolicy.from_settings(self.settings), dead_letter=self._dead_letter)

    def _start(self, stage: Stage) -> None:
        runner = self._runner(stage)
        self.runners.append(runner)
        self._tasks.append(asyncio.create_task(runner.run(), name=f"stage-{stage.name}"))

    async def _enrich_when_leased(self, build: Callable[[], EnrichStage]) -> None:
        """A worker's enrich: stand by until it holds the lease, then load the graph and run."""
        await self.lease.acquire(self._standing_by)
        self._standby = None
        self._lease_task = asyncio.create_task(self.lease.keep(), name="lease-enrich")
        self.enrich = await in_stage_thread(build)
        if self._closing:  # the pipeline stopped while the graph loaded
            return
        runner = self._runner(FencedStage(self.enrich, self.lease))
        self.runners.append(runner)
        await runner.run()

    async def _dead_letter(self, stage: str, record: ConsumerRecord, exc: BaseException) -> None:
        if stage == Stages.DEADLETTER_SINK and stage_dead_letter_of(record):
            raise StageFatal(f"cannot store a dead letter a stage made: {describe(exc)}") from exc
        await send_all(self.producer, self.topics.deadletter,
                       [(record.key, stage_dead_letter(stage, record, exc).to_message())])

    def _stage_client(self) -> Client:
        client = warehouse.stage_client(self.settings, self.client)
        if client is not self.client:
            self._own_clients.append(client)
        return client

    async def _resume(self) -> None:
        """Give the stages the work an earlier run stored but did not finish (its broker is gone).

        Stored events enrich has not processed go to `events.stored` again, and people whose
        credits are pending go to `persons.changed` again. Both stages are idempotent.
        """
        # both tables are sorted by event_id: a merge join streams them (NOT IN built a hash set of
        # every enriched id: 1.2 GB and 8 s at 10M events; this takes ~200 MB and 1.2 s)
        pending = self.client.query(
            "SELECT event_id, any(payload) FROM raw_events WHERE event_id IN ("
            " SELECT r.event_id FROM raw_events AS r LEFT JOIN enriched_events AS e ON r.event_id = e.event_id"
            " WHERE e.event_id = '') GROUP BY event_id "
            "SETTINGS join_algorithm = 'full_sorting_merge', join_use_nulls = 0"
        ).result_rows
        messages = [(partition_key(orjson.loads(payload)), payload.encode()) for _, payload in pending]
        await send_all(self.producer, self.topics.stored, messages, self.raw_sink.forwarded)
        people = [row[0] for row in self.client.query(
            "SELECT person_id FROM attribution_queue GROUP BY person_id HAVING argMax(done, version) = 0"
        ).result_rows]
        await self.enrich.announce(people)
        dirty = Dirty()
        if self.settings.rollups and not self.defer_rollups:
            dirty = Dirty.from_entities(row[0] for row in self.client.query(PENDING_SQL).result_rows)
            topic = self.topics.rollup_dirty
            await send_all(self.producer, topic, dirty.messages(await partition_count(self.producer, topic)),
                           self.enrich.dirty_emitted)
        if messages or people or dirty:
            log.warning("resumed unfinished work: %d stored events, %d people, %d rollup entities", len(messages),
                        len(people), len(dirty.entities()))

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        for runner in self.runners:
            runner.stop()
        for task in self._tasks:
            if self._standby is not None and task.get_name() == f"stage-{Stages.ENRICH}":
                task.cancel()  # standing by: nothing to finish
            try:
                await asyncio.wait_for(task, timeout=15)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:  # already reported by drain
                log.debug("stage task ended with an error", exc_info=True)
        if self._lease_task is not None:
            self._lease_task.cancel()
            try:
                await asyncio.to_thread(self.lease.release)  # a standby takes over without waiting
            except Exception:  # the lease then expires on its own
                log.warning("lease %s not released", self.lease.name, exc_info=True)
        if self.producer is not None:
            await self.producer.stop()
        for client in self._own_clients:
            client.close()

    def check_stages(self) -> None:
        """Raise PipelineError if a stage has stopped."""
        for task in self._tasks:
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                if isinstance(exc, StageStopped):
                    raise PipelineError(str(exc))
                raise PipelineError(f"{task.get_name()} stopped: {describe(exc) if exc else 'cancelled'}")

    def health(self) -> tuple[bool, dict]:
        """(healthy, report) for /healthz: unhealthy once a stage has stopped; a stage riding out
        transient errors ("retrying") or waiting for the enrich lease ("standby") is still healthy."""
        stages: dict[str, dict] = {}
        for runner in self.runners:
            stages[runner.stage.name] = {"state": runner.state, **({"error": runner.error} if runner.error else {})}
        if self._standby is not None:
            stages[Stages.ENRICH] = {"state": "standby", "lease": self._standby}
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                name = task.get_name().removeprefix("stage-")
                stages[name] = {"state": "stopped", "error": stages.get(name, {}).get("error")
                                or describe(task.exception())}
        stopped = sorted(name for name, s in stages.items() if s["state"] == "stopped")
        status = "stopped" if stopped else "degraded" if any(s["state"] != "running" for s in stages.values()) \
            else "ok"
        return not stopped, {"status": status, "stages": stages, **({"stopped": stopped} if stopped else {})}

    async def _wait(self, runner: StageRunner, targets: OffsetTracker, deadline: float,
                    on_tick: Callable[[], None] | None) -> None:
        while not runner.caught_up(targets.ends):
            self.check_stages()
            if time.monotonic() > deadline:
                raise PipelineError(f"stage {runner.stage.name} did not catch up in time")
            if on_tick:
                on_tick()
            await asyncio.sleep(0.05)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Keep the stages running until `stop` is set; raise if a stage stops on its own."""
        while not stop.is_set():
            self.check_stages()
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass

    async def drain(self, produced: OffsetTracker, timeout_s: float = 3600,
                    on_tick: Callable[[], None] | None = None) -> None:
        """Wait until every stage has processed everything produced so far, stage after stage."""
        if not self.single_process:
            raise PipelineError("drain needs every stage in this process")
        deadline = time.monotonic() + timeout_s
        raw_sink, dead_sink, enrich, attribution, *rollup = self.runners
        await self._wait(raw_sink, produced, deadline, on_tick)
        await self._wait(dead_sink, produced, deadline, on_tick)
        await self._wait(enrich, self.raw_sink.forwarded, deadline, on_tick)
        await self._wait(attribution, self.enrich.emitted, deadline, on_tick)
        for runner in rollup:
            await self._wait(runner, self.enrich.dirty_emitted, deadline, on_tick)


STALLED_WORKERS_S = 30


async def wait_for_workers(bootstrap: str, topics, produced: OffsetTracker, *, timeout_s: float | None = None,
                           on_progress: Callable[[str, int], None] | None = None, poll_s: float = 0.5) -> None:
    """Wait until `leadflow worker` processes have processed everything produced so far, stage after
    stage, judged by their consumer groups' committed offsets: the sinks against `produced` (this
    process's own acknowledgements), then enrich and attribution against the end offsets of their
    inputs (which the stage before wrote before it committed). `on_progress(stage, records to go)`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    chain = [(Stages.WAREHOUSE_SINK, [topics.raw]), (Stages.DEADLETTER_SINK, [topics.deadletter]),
             (Stages.ENRICH, [topics.stored]), (Stages.ATTRIBUTION, [topics.persons_changed]),
             (Stages.ROLLUP, [topics.rollup_dirty])]
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await probe.start()
    try:
        for stage, names in chain:
            parts = [TopicPartition(t, p) for t in names for p in sorted(probe.partitions_for_topic(t) or ())]
            ends = {tp: produced.ends[tp] for tp in parts if tp in produced.ends}
            if stage in (Stages.ENRICH, Stages.ATTRIBUTION, Stages.ROLLUP):
                ends = {tp: end for tp, end in (await probe.end_offsets(parts)).items() if end}
            group = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=topics.group(stage), enable_auto_commit=False)
            await group.start()
            try:
                last, since = None, time.monotonic()
                while True:
                    committed = {tp: (await group.committed(tp)) or 0 for tp in ends}
                    left = sum(max(0, end - committed[tp]) for tp, end in ends.items())
                    if on_progress:
                        on_progress(stage, left)
                    if not left:
                        break
                    if left != last:
                        last, since = left, time.monotonic()
                    elif since is not None and time.monotonic() - since > STALLED_WORKERS_S:
                        since = None  # said once per stage
                        log.warning("no progress from the workers' %s stage for %d s (%d records to go): is a "
                                    "`leadflow worker --stage %s` running? Ctrl-C stops waiting; what is published "
                                    "stays in Kafka for the workers", stage, STALLED_WORKERS_S, left, stage)
                    if deadline is not None and time.monotonic() > deadline:
                        raise PipelineError(f"the workers' {stage} stage has {left:,} records to go after "
                                            f"{timeout_s:.0f} s: is a `leadflow worker --stage {stage}` running?")
                    await asyncio.sleep(poll_s)
            finally:
                await group.stop()
    finally:
        await probe.stop()
