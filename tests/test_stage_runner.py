"""The stage runner on the real broker and the real chdb engine: transient warehouse errors are
ridden out with backoff without committing past the last write, a poison record is isolated and
dead-lettered, a failed commit is survived, and a stage that gives up keeps its lag series."""
from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError
from prometheus_client import REGISTRY

from leadflow.broker import ensure_topics
from leadflow.stream import (OffsetTracker, RetryPolicy, StageRunner, StageStopped, in_stage_thread, send_all,
                             start_producer)
from leadflow.warehouse import insert_rows

FAST = RetryPolicy(give_up_s=30, initial_s=0.02, max_s=0.1)


class TableStage:
    """Writes each record's number to `runner_out` (idempotent: ReplacingMergeTree by place)."""

    def __init__(self, client, topic: str):
        self.name = f"rt-{uuid.uuid4().hex[:6]}"
        self.topics = [topic]
        self.group_id = f"{topic}-group"
        self.client = client
        self.handled: list[list[int]] = []

    async def handle(self, records) -> None:
        await in_stage_thread(self.store, records)

    def store(self, records) -> None:
        rows = [(r.partition, r.offset, orjson.loads(r.value)["n"]) for r in records]  # bad JSON: permanent
        insert_rows(self.client, "runner_out", ["partition", "offset", "n"], rows)
        self.handled.append([row[2] for row in rows])


def _table(client) -> None:
    client.command("CREATE TABLE IF NOT EXISTS runner_out (partition UInt32, offset UInt64, n Int64) "
                   "ENGINE = ReplacingMergeTree ORDER BY (partition, offset)")


async def _committed(bootstrap: str, group: str, tracker: OffsetTracker) -> dict:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in tracker.ends}
    finally:
        await consumer.stop()


async def _until(condition, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def _setup(bootstrap: str, client, messages, partitions: int = 2):
    topic = f"rt-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: partitions})
    _table(client)
    producer = await start_producer(bootstrap)
    tracker = OffsetTracker()
    await send_all(producer, topic, messages, tracker)
    await producer.stop()
    return topic, tracker


async def _run_to_end(bootstrap: str, client, messages, partitions: int = 1, **runner_options):
    """Produce `messages`, run a TableStage over them until it committed them all, stop it.
    Returns (stage, runner, committed offsets, produced ends)."""
    topic, tracker = await _setup(bootstrap, client, messages, partitions)
    stage = TableStage(client, topic)
    runner = StageRunner(bootstrap, stage, max_records=1000, max_wait_s=0.05, assign_all=True, retry=FAST,
                         **runner_options)
    task = asyncio.create_task(runner.run())
    try:
        await _until(lambda: runner.caught_up(tracker.ends))
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)
    return stage, runner, await _committed(bootstrap, stage.group_id, tracker), tracker


def _errors(stage: str) -> float:
    return REGISTRY.get_sample_value("leadflow_processing_errors_total", {"stage": stage}) or 0


def test_transient_outage_is_ridden_out_without_committing(broker, client):
    async def scenario():
        topic, tracker = await _setup(broker.bootstrap, client, [(str(i).encode(), orjson.dumps({"n": i}))
                                                                 for i in range(40)])
        client.command("RENAME TABLE runner_out TO runner_out_away")  # the warehouse loses the table
        stage = TableStage(client, topic)
        runner = StageRunner(broker.bootstrap, stage, max_records=1000, max_wait_s=0.05, assign_all=True, retry=FAST)
        task = asyncio.create_task(runner.run())
        try:
            await _until(lambda: _errors(stage.name) >= 5)  # five failed attempts, backing off
            assert runner.state == "retrying" and "UNKNOWN_TABLE" in runner.error
            committed_during = await _committed(broker.bootstrap, stage.group_id, tracker)
            client.command("RENAME TABLE runner_out_away TO runner_out")  # back
            await _until(lambda: runner.caught_up(tracker.ends))
            assert runner.state == "running" and runner.error is None
            committed_after = await _committed(broker.bootstrap, stage.group_id, tracker)
        finally:
            runner.stop()
            await asyncio.wait_for(task, 15)
        return committed_during, committed_after, tracker

    during, after, tracker = asyncio.run(scenario())
    assert set(during.values()) == {None}  # nothing committed while nothing was written
    assert after == tracker.ends
    assert client.query("SELECT count(), sum(n) FROM runner_out FINAL").result_rows == [(40, sum(range(40)))]


def test_poison_record_is_dead_lettered_and_the_rest_handled(broker, client):
    lines = [orjson.dumps({"n": i}) for i in range(10)]
    lines[4] = b"{not json"
    dead: list[tuple] = []

    async def dead_letter(stage, record, exc):
        dead.append((stage, record.offset, record.value, type(exc).__name__))

    stage, runner, committed, tracker = asyncio.run(
        _run_to_end(broker.bootstrap, client, [(b"one-key", v) for v in lines], dead_letter=dead_letter))
    assert dead == [(stage.name, 4, b"{not json", "JSONDecodeError")]
    assert runner.dead_lettered == 1 and committed == tracker.ends
    assert [n for batch in stage.handled for n in batch] == [0, 1, 2, 3, 5, 6, 7, 8, 9]  # in order
    assert client.query("SELECT groupArray(n) FROM (SELECT n FROM runner_out FINAL ORDER BY offset)"
                        ).result_rows == [([0, 1, 2, 3, 5, 6, 7, 8, 9],)]


def test_commit_failure_is_survived(broker, client, monkeypatch):
    """The broker's answer to a commit during a rebalance (CommitFailedError) is injected once:
    a rebalance cannot be provoked on demand on the embedded broker (it delays JoinGroup ~5 s)."""
    real_commit = AIOKafkaConsumer.commit
    failed = []

    async def commit_once_failing(self, offsets=None):
        if not failed:
            failed.append(offsets)
            raise CommitFailedError("the group rebalanced")
        return await real_commit(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", commit_once_failing)

    stage, _, committed, tracker = asyncio.run(
        _run_to_end(broker.bootstrap, client, [(b"k", orjson.dumps({"n": i})) for i in range(6)]))
    assert len(failed) == 1 and committed == tracker.ends
    assert stage.handled == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]  # redone from the last commit
    assert client.query("SELECT count(), sum(n) FROM runner_out FINAL").result_rows == [(6, 15)]


def test_giving_up_stops_the_stage_and_keeps_its_lag(broker, client):
    async def scenario():
        topic, tracker = await _setup(broker.bootstrap, client, [(b"k", orjson.dumps({"n": i})) for i in range(7)],
                                      partitions=1)
        client.command("RENAME TABLE runner_out TO runner_out_away")
        stage = TableStage(client, topic)
        runner = StageRunner(broker.bootstrap, stage, max_records=1000, max_wait_s=0.05, assign_all=True,
                             retry=RetryPolicy(give_up_s=0.5, initial_s=0.02, max_s=0.1))
        with pytest.raises(StageStopped, match=f"stage {stage.name} stopped: WarehouseError: .*UNKNOWN_TABLE"):
            await asyncio.wait_for(runner.run(), 30)
        return stage, runner, topic

    stage, runner, topic = asyncio.run(scenario())
    client.command("RENAME TABLE runner_out_away TO runner_out")
    assert runner.state == "stopped"
    assert REGISTRY.get_sample_value("leadflow_stage_up", {"stage": stage.name}) == 0
    assert REGISTRY.get_sample_value("leadflow_consumer_lag_messages", {"stage": stage.name, "topic": topic}) == 7
