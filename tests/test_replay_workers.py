"""`leadflow replay` against shared Kafka and warehouse (processing by workers): it only publishes,
then waits until the workers' consumer groups have processed everything."""
from __future__ import annotations

import asyncio
import json

from leadflow.pipeline import ALL_STAGES, Pipeline
from services.ingest.replay import replay
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
