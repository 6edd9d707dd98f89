"""`leadflow replay` against shared Kafka and warehouse (processing by workers): it only publishes,
then waits until the workers' consumer groups have processed everything."""
from __future__ import annotations

import asyncio
import json

from leadflow.pipeline import ALL_STAGES, Pipeline
from services.ingest.replay import replay

EVENTS = [
    {"event_id": "r-click", "type": "ad_click", "occurred_at": "2026-05-01T09:00:00Z", "source": "t",
     "identity": {"visitor_id": "v-r"}, "campaign_id": "c", "channel": "display_ads"},
    {"event_id": "r-lead", "type": "lead", "occurred_at": "2026-05-01T09:05:00Z", "source": "t",
     "identity": {"visitor_id": "v-r", "phone": "+1 202 555 0100"}, "lead_id": "L-r", "channel": "email"},
    {"event_id": "r-deal", "type": "deal_won", "occurred_at": "2026-05-02T09:00:00Z", "source": "t",
     "identity": {"phone": "+12025550100"}, "deal_id": "D-r", "revenue": "80", "currency": "USD"},
]


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
