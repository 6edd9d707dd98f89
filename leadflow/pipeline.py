"""The stages of one leadflow process, wired together, and a way to wait for them.

Embedded runs (`replay`, `run`, `serve`) start every stage in one process,
because chdb is an in-process engine. In production each stage runs as its
own consumer group in as many workers as the topic has partitions.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Callable

import orjson
from clickhouse_connect.driver.client import Client

from leadflow import warehouse
from leadflow.broker import ensure_topics
from leadflow.config import Settings
from leadflow.stream import OffsetTracker, StageRunner, send_all, start_producer
from leadflow.topics import Stages, topics_for
from services.attribution.stage import AttributionStage
from services.enrich.stage import EnrichStage
from services.ingest.sink import DeadLetterSink, RawEventSink
from services.ingest.validate import partition_key

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


class PipelineError(RuntimeError):
    """A stage stopped, or the pipeline did not finish in time."""


ALL_STAGES = (Stages.WAREHOUSE_SINK, Stages.DEADLETTER_SINK, Stages.ENRICH, Stages.ATTRIBUTION)


class Pipeline:
    def __init__(self, settings: Settings, bootstrap: str, client: Client, single_process: bool = True,
                 stages: tuple[str, ...] = ALL_STAGES, identity_graph=None):
        """`single_process`: this process is the only consumer of the topics and runs every stage
        (embedded runs, replay, serve); it takes all partitions directly and resumes unfinished work.
        False for workers (`leadflow worker`) that run some `stages` in consumer groups shared with
        other workers. `identity_graph`: the graph of a single-process pipeline this process just
        drained on the same warehouse (a replay in segments); it is taken over instead of loaded,
        and nothing is left unfinished to resume."""
        if single_process and tuple(stages) != ALL_STAGES:
            raise ValueError("a single-process pipeline runs every stage")
        unknown = set(stages) - set(ALL_STAGES)
        if unknown:
            raise ValueError(f"unknown stage(s): {', '.join(sorted(unknown))}; one of {', '.join(ALL_STAGES)}")
        self.stages = tuple(stages)
        self.single_process = single_process
        self.identity_graph = identity_graph
        self.settings = settings
        self.bootstrap = bootstrap
        self.client = client
        self.topics = topics_for(settings)
        self.producer = None
        self.runners: list[StageRunner] = []
        self._tasks: list[asyncio.Task] = []
        self._own_clients: list[Client] = []

    async def __aenter__(self) -> "Pipeline":
        tune_gc()
        await ensure_topics(self.bootstrap, {t: self.settings.topic_partitions for t in self.topics.all()})
        self.producer = await start_producer(self.bootstrap)
        # stages do their batch work off the event loop (leadflow.stream.in_stage_thread): a server
        # client gets a session per stage, chdb's is shared (it serializes calls with a lock)
        client = self._stage_client
        build = {
            Stages.WAREHOUSE_SINK: lambda: RawEventSink(client(), self.producer, self.topics),
            Stages.DEADLETTER_SINK: lambda: DeadLetterSink(client(), self.topics, self.settings.identity_secret),
            Stages.ENRICH: lambda: EnrichStage(client(), self.producer, self.topics, self.settings,
                                               self.identity_graph),
            Stages.ATTRIBUTION: lambda: AttributionStage(client(), self.topics, self.settings),
        }
        built = {name: build[name]() for name in self.stages}
        self.raw_sink = built.get(Stages.WAREHOUSE_SINK)
        self.dead_sink = built.get(Stages.DEADLETTER_SINK)
        self.enrich = built.get(Stages.ENRICH)
        self.attribution = built.get(Stages.ATTRIBUTION)
        if self.single_process and self.identity_graph is None:
            await self._resume()
        for stage in built.values():
            runner = StageRunner(self.bootstrap, stage, max_records=self.settings.batch_max_rows,
                                 max_wait_s=self.settings.batch_max_seconds, assign_all=self.single_process)
            self.runners.append(runner)
            self._tasks.append(asyncio.create_task(runner.run(), name=f"stage-{stage.name}"))
        return self

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
        if messages or people:
            log.warning("resumed unfinished work: %d stored events, %d people", len(messages), len(people))

    async def __aexit__(self, *exc: object) -> None:
        for runner in self.runners:
            runner.stop()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, timeout=15)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:  # already reported by drain
                log.debug("stage task ended with an error", exc_info=True)
        if self.producer is not None:
            await self.producer.stop()
        for client in self._own_clients:
            client.close()

    def check_stages(self) -> None:
        """Raise PipelineError if a stage has stopped."""
        for task in self._tasks:
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                raise PipelineError(f"{task.get_name()} stopped: {exc!r}")

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
        raw_sink, dead_sink, enrich, attribution = self.runners
        await self._wait(raw_sink, produced, deadline, on_tick)
        await self._wait(dead_sink, produced, deadline, on_tick)
        await self._wait(enrich, self.raw_sink.forwarded, deadline, on_tick)
        await self._wait(attribution, self.enrich.emitted, deadline, on_tick)
