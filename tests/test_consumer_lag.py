"""leadflow_consumer_lag_messages from a real StageRunner on the real broker."""
from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from leadflow.broker import ensure_topics
from leadflow.stream import OffsetTracker, StageRunner, send_all, start_producer


class SlowStage:
    name = "lag-test"

    def __init__(self, topic: str):
        self.topics = [topic]
        self.group_id = f"{topic}-group"
        self.gate = asyncio.Event()
        self.seen = 0

    async def handle(self, records) -> None:
        self.seen += len(records)
        if self.seen > 10:
            await self.gate.wait()


def lag(topic: str) -> float | None:
    return REGISTRY.get_sample_value("leadflow_consumer_lag_messages", {"stage": "lag-test", "topic": topic})


async def _scenario(bootstrap: str):
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 2})
    producer = await start_producer(bootstrap)
    stage = SlowStage(topic)
    runner = StageRunner(bootstrap, stage, max_records=10, max_wait_s=0.05, assign_all=True)
    task = asyncio.create_task(runner.run())
    observed = []
    try:
        tracker = OffsetTracker()
        await send_all(producer, topic, [(str(i % 7).encode(), b"x") for i in range(200)], tracker)
        for _ in range(200):  # the first batch is committed, the second blocks: lag is what is left
            value = lag(topic)
            if value:
                observed.append(value)
                break
            await asyncio.sleep(0.05)
        stage.gate.set()
        for _ in range(200):
            if runner.caught_up(tracker.ends) and lag(topic) == 0:
                break
            await asyncio.sleep(0.05)
        observed.append(lag(topic))
    finally:
        runner.stop()
        await asyncio.wait_for(task, 15)
        await producer.stop()
    return observed, lag(topic)


def test_consumer_lag_gauge(broker):
    observed, after_stop = asyncio.run(_scenario(broker.bootstrap))
    assert len(observed) == 2
    assert 0 < observed[0] <= 190  # behind by what the blocked stage has not committed
    assert observed[1] == 0  # caught up
    assert after_stop == 0  # the series outlives the runner (PipelineLag reads it after a stop)
