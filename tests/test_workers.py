"""Production topology on the real broker: ingest-only producers and stage workers in
consumer groups (subscription, not direct assignment) give the same facts as replay."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from leadflow.pipeline import Pipeline
from services.ingest.publish import Publisher
from services.ingest.validate import InputOccurrences, Validator

EVENTS = [
    {"event_id": "w-click", "type": "ad_click", "occurred_at": "2026-05-01T09:00:00Z", "source": "t",
     "identity": {"visitor_id": "v-w"}, "campaign_id": "c", "channel": "display_ads"},
    {"event_id": "w-lead", "type": "lead", "occurred_at": "2026-05-01T09:05:00Z", "source": "t",
     "identity": {"visitor_id": "v-w", "phone": "+1 202 555 0100"}, "lead_id": "L-w", "channel": "email"},
    {"event_id": "w-deal", "type": "deal_won", "occurred_at": "2026-05-02T09:00:00Z", "source": "t",
     "identity": {"phone": "+12025550100"}, "deal_id": "D-w", "revenue": "80", "currency": "USD"},
    {"event_id": "w-bad", "type": "lead", "occurred_at": "2026-05-01T09:00:00Z", "source": "t"},
]


async def _topology(settings, client):
    sinks = Pipeline(settings, settings.kafka_bootstrap, client, single_process=False,
                     stages=("warehouse-sink", "deadletter-sink"))
    processors = Pipeline(settings, settings.kafka_bootstrap, client, single_process=False,
                          stages=("enrich", "attribution"))
    ingest = Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=())
    async with ingest, sinks, processors:
        publisher = Publisher(Validator(settings), ingest.producer, ingest.topics,
                              max_event_bytes=settings.max_event_bytes)
        statuses = await publisher.publish([json.dumps(e).encode() for e in EVENTS], origin="t",
                                           default_source="t", occurrences=InputOccurrences())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = client.query("SELECT channels, credits FROM attribution_credits FINAL "
                                "WHERE model = 'linear'").result_rows
            dead = client.query("SELECT count() FROM dead_letters").result_rows[0][0]
            if rows and dead:
                return statuses, rows, dead
            await asyncio.sleep(0.2)
    raise AssertionError("workers did not produce credits in time")


def test_stage_workers_in_consumer_groups(settings, client):
    statuses, rows, dead = asyncio.run(_topology(settings, client))
    assert [s.status for s in statuses] == ["accepted", "accepted", "accepted", "rejected"]
    assert rows == [(["display_ads", "email"], [0.5, 0.5])]
    assert dead == 1


def test_worker_needs_a_shared_broker(tmp_path):
    res = subprocess.run([sys.executable, "-m", "leadflow.cli", "worker", "--stage", "enrich"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "LEADFLOW_KAFKA_BOOTSTRAP" in res.stderr
