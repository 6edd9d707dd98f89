"""`leadflow replay` against shared Kafka and warehouse (processing by workers): it only publishes,
then waits until the workers' consumer groups have processed everything."""
from __future__ import annotations

import asyncio
import json

import pytest

from leadflow.config import ConfigError, load_settings
from leadflow.pipeline import ALL_STAGES, Pipeline
from leadflow.replay import replay
from tests.test_workers import EVENTS as WORKER_EVENTS

EVENTS = WORKER_EVENTS[:3]  # a click, a lead, a deal of one person


def test_replay_leaves_processing_to_the_workers(settings, client, tmp_path):
    settings = settings.model_copy(update={"processing": "workers", "lease_settle_seconds": 0.05})
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n{bad\n")

    async def scenario():
        workers = Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=ALL_STAGES)
        async with workers:
            summary = await replay(settings, [path], show_progress=False)
            # replay returned: the workers have it all, nothing left to wait for
            credits = client.query("SELECT channels, credits FROM attribution_credits FINAL "
                                   "WHERE model = 'linear'").result_rows
            dead = client.query("SELECT count() FROM dead_letters").result_rows
            workers.check_stages()
        return summary, credits, dead

    summary, credits, dead = asyncio.run(scenario())
    assert (summary.processed_by, summary.read, summary.accepted, summary.rejected) == ("workers", 4, 3, 1)
    assert credits == [(["display_ads", "email"], [0.5, 0.5])]
    assert dead == [(1,)]


def test_processing_mode_follows_the_deployment(monkeypatch):
    for key in ("LEADFLOW_KAFKA_BOOTSTRAP", "LEADFLOW_CLICKHOUSE_URL", "LEADFLOW_PROCESSING"):
        monkeypatch.delenv(key, raising=False)
    assert not load_settings().processing_by_workers  # embedded default: every stage in the command
    assert not load_settings(kafka_bootstrap="kafka:9092").processing_by_workers  # chdb: one process only
    assert load_settings(kafka_bootstrap="kafka:9092", clickhouse_url="http://ch:8123").processing_by_workers
    assert not load_settings(kafka_bootstrap="kafka:9092", clickhouse_url="http://ch:8123",
                             processing="here").processing_by_workers
    with pytest.raises(ConfigError, match="processing = workers needs a shared broker"):
        load_settings(processing="workers")
