"""POST /v1/events on the real broker and chdb."""
from __future__ import annotations

import asyncio
import json

import aiohttp

from leadflow.config import load_settings
from leadflow.pipeline import Pipeline
from leadflow.serve import running_app

CLICK = {"type": "ad_click", "occurred_at": "2026-05-01T10:00:00Z", "source": "site",
         "identity": {"visitor_id": "v-1"}, "campaign_id": "c1", "channel": "search_ads"}


def click(i: int) -> dict:
    return {"event_id": f"h-{i}", **CLICK}


async def _scenario(settings, client):
    async with Pipeline(settings, settings.kafka_bootstrap, client) as pipe:
        async with running_app(settings, pipe, client, "127.0.0.1", 0) as (addr, publisher):
            base = f"http://{addr[0]}:{addr[1]}"
            async with aiohttp.ClientSession() as http:
                # JSON array: 2 valid, 1 repeated in the same request, 1 invalid
                body = [click(1), click(2), click(1), {**click(3), "channel": "tv"}]
                async with http.post(f"{base}/v1/events", json=body) as r:
                    first = await r.json()
                    first_status = r.status
                # JSON Lines: one sent before (accepted again: the warehouse sink drops the copy), one new,
                # one not JSON
                lines = "\n".join([json.dumps(click(2)), json.dumps(click(4)), "{oops"]) + "\n"
                async with http.post(f"{base}/v1/events", data=lines.encode()) as r:
                    second = await r.json()
                big = b"[" + b" " * (settings.max_body_bytes + 10) + b"]"
                async with http.post(f"{base}/v1/events", data=big) as r:
                    too_big = r.status
                async with http.get(f"{base}/healthz") as r:
                    health = (r.status, await r.json())
                async with http.get(f"{base}/metrics") as r:
                    metrics_text = await r.text()
            await pipe.drain(publisher.tracker)
    return first_status, first, second, too_big, health, metrics_text


def test_http_statuses_and_warehouse(settings, client):
    settings = load_settings(**{**settings.model_dump(), "max_body_bytes": 4096})
    first_status, first, second, too_big, health, metrics_text = asyncio.run(_scenario(settings, client))
    assert first_status == 207
    assert [e["status"] for e in first["events"]] == ["accepted", "accepted", "duplicate", "rejected"]
    assert (first["accepted"], first["duplicate"], first["rejected"]) == (2, 1, 1)
    assert first["events"][3]["errors"][0]["path"] == "channel"
    assert [e["status"] for e in second["events"]] == ["accepted", "accepted", "rejected"]
    assert second["events"][2]["event_id"] is None
    assert too_big == 413
    assert health[0] == 200 and health[1]["status"] == "ok"  # and every stage "running"
    assert {s["state"] for s in health[1]["stages"].values()} == {"running"} and len(health[1]["stages"]) == 4
    assert 'leadflow_events_accepted_total{source="site",type="ad_click"}' in metrics_text
    raw = client.query("SELECT groupArray(event_id) FROM (SELECT event_id FROM raw_events FINAL ORDER BY event_id)")
    assert raw.result_rows[0][0] == ["h-1", "h-2", "h-4"]
    dead = client.query("SELECT count(), groupArray(error_kind) FROM dead_letters FINAL").result_rows[0]
    assert dead[0] == 2 and sorted(dead[1]) == ["not_json", "schema"]
