"""One identity writer per warehouse: the enrich lease with its fencing token, on the real chdb
engine and the real broker."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from leadflow.lease import Lease, LeaseLost
from leadflow.pipeline import Pipeline
from services.ingest.publish import Publisher
from services.ingest.validate import InputOccurrences, Validator


def test_lease_stands_by_fences_and_takes_over(client):
    first = Lease(client, "enrich", ttl_s=0.6, settle_s=0.02, holder="a")
    second = Lease(client, "enrich", ttl_s=0.6, settle_s=0.02, holder="b")
    assert first.try_acquire() is None and first.token == 1
    holding = second.try_acquire()
    assert (holding.holder, holding.token) == ("a", 1) and holding.remaining_s > 0  # stands by
    first.check()
    time.sleep(0.7)  # `a` stalls: its lease expires unrenewed
    assert second.try_acquire() is None and second.token == 2
    with pytest.raises(LeaseLost, match="no longer holds it: held by b .token 2."):
        first.check()  # fenced: `a` must not write any more
    second.check()
    second.release()
    assert first.try_acquire() is None and first.token == 3  # released: taken at once


EVENTS = [
    {"event_id": "l-lead", "type": "lead", "occurred_at": "2026-05-01T09:05:00Z", "source": "t",
     "identity": {"visitor_id": "v-l", "phone": "+1 202 555 0100"}, "lead_id": "L-l", "channel": "email"},
    {"event_id": "l-deal", "type": "deal_won", "occurred_at": "2026-05-02T09:00:00Z", "source": "t",
     "identity": {"phone": "+12025550100", "email": "l@example.com"}, "deal_id": "D-l", "revenue": "80",
     "currency": "USD"},
]


async def _until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_second_enrich_worker_stands_by_and_takes_over_with_the_graph(settings, client):
    settings = settings.model_copy(update={"enrich_lease_seconds": 1.5, "lease_settle_seconds": 0.05})

    def persons() -> dict:
        return dict(client.query("SELECT identity_key, person_id FROM persons").result_rows)

    async def scenario():
        sinks = Pipeline(settings, settings.kafka_bootstrap, client, single_process=False,
                         stages=("warehouse-sink", "deadletter-sink"))
        first = Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=("enrich",))
        second = Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=("enrich",))
        async with sinks:
            await first.__aenter__()
            await _until(lambda: first.enrich is not None)
            async with second:
                await _until(lambda: second.health()[1]["stages"].get("enrich", {}).get("state") == "standby")
                standby = second.health()
                publisher = Publisher(Validator(settings), sinks.producer, sinks.topics,
                                      max_event_bytes=settings.max_event_bytes)
                await publisher.publish([json.dumps(e).encode() for e in EVENTS], origin="t", default_source="t",
                                        occurrences=InputOccurrences())
                await _until(lambda: len(persons()) == 3)
                assert second.enrich is None  # it never wrote
                await first.__aexit__(None, None, None)  # the holder stops (and releases the lease)
                await _until(lambda: second.enrich is not None)
                graph = second.enrich.graph.persons_of(sorted(persons()))
                token = second.lease.token
        return standby, graph, token

    (healthy, report), graph, token = asyncio.run(scenario())
    assert healthy and report["status"] == "degraded"
    assert report["stages"]["enrich"]["state"] == "standby" and "token 1" in report["stages"]["enrich"]["lease"]
    assert graph == persons() and len(set(graph.values())) == 1  # the graph reloaded: one person, 3 values
    assert token == 2
