"""Warehouse sinks for the ingest topics.

`RawEventSink` drops event_ids already stored (in the batch or in the
warehouse), inserts the rest into `raw_events` in one batch, then forwards
exactly those first-time events to the `stored` topic for enrichment. Offsets
are committed by the runner after both writes, so a crash replays the batch:
the warehouse check turns the replay into duplicates, never double rows.
"""
from __future__ import annotations

import base64
import hashlib
from collections import Counter
from datetime import datetime

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from clickhouse_connect.driver.client import Client

from leadflow import metrics
from leadflow.stream import OffsetTracker, in_stage_thread, send_all
from leadflow.topics import Stages, Topics
from leadflow.warehouse import insert_rows, stage_keys

RAW_COLUMNS = ["event_id", "type", "occurred_at", "received_at", "source", "identity_keys",
               "conversation_id", "call_id", "campaign_id", "channel", "payload"]
DEAD_LETTER_COLUMNS = ["dead_letter_id", "rejected_at", "source", "origin", "event_id", "event_type",
                       "error_kind", "errors", "raw_payload", "processor", "processor_version", "raw_length",
                       "raw_sha256"]


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def raw_row(event: dict, payload: bytes) -> tuple:
    identity = event.get("identity") or {}
    return (
        event["event_id"], event["type"], _ts(event["occurred_at"]), _ts(event["received_at"]), event["source"],
        sorted(identity.values()), event.get("conversation_id", ""), event.get("call_id", ""),
        event.get("campaign_id", ""), event.get("channel", ""), payload.decode("utf-8"),
    )


def existing_event_ids(client: Client, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    stage_keys(client, "ingest_event_ids", ids)
    rows = client.query("SELECT DISTINCT event_id FROM raw_events "
                        "WHERE event_id IN (SELECT key FROM ingest_event_ids)").result_rows
    return {r[0] for r in rows}


class RawEventSink:
    name = Stages.WAREHOUSE_SINK

    def __init__(self, client: Client, producer: AIOKafkaProducer, topics: Topics):
        self.group_id = topics.group(self.name)
        self.client = client
        self.producer = producer
        self.topics = [topics.raw]
        self.stored_topic = topics.stored
        self.forwarded = OffsetTracker()
        self.stored = Counter()      # by type
        self.duplicates = Counter()  # by type

    async def handle(self, records: list[ConsumerRecord]) -> None:
        forward = await in_stage_thread(self.store, records)
        await send_all(self.producer, self.stored_topic, forward, self.forwarded)

    def store(self, records: list[ConsumerRecord]) -> list[tuple[bytes, bytes]]:
        """Insert the batch's new events; returns the (key, value) messages to forward to enrich."""
        events = [(r, orjson.loads(r.value)) for r in records]
        known = existing_event_ids(self.client, list({e["event_id"] for _, e in events}))
        rows, forward, batch_dups = [], [], Counter()
        for record, event in events:
            eid = event["event_id"]
            if eid in known:
                batch_dups[event["type"]] += 1
                continue
            known.add(eid)
            rows.append(raw_row(event, record.value))
            forward.append((record.key, record.value))
        insert_rows(self.client, "raw_events", RAW_COLUMNS, rows)
        batch_stored = Counter(row[1] for row in rows)
        for event_type, n in batch_stored.items():
            metrics.EVENTS_STORED.labels(type=event_type).inc(n)
        for event_type, n in batch_dups.items():
            metrics.EVENTS_DUPLICATE.labels(type=event_type).inc(n)
        self.stored.update(batch_stored)
        self.duplicates.update(batch_dups)
        return forward


def dead_letter_row(message: dict) -> tuple:
    raw = base64.b64decode(message["raw_b64"])
    return (
        message["dead_letter_id"], _ts(message["rejected_at"]), message["source"], message["origin"],
        message["event_id"], message["event_type"], message["error_kind"],
        [tuple(e) for e in message["errors"]], raw, message["processor"], message["processor_version"],
        # messages written before 0020 carried the whole original
        message.get("raw_length", len(raw)), message.get("raw_sha256") or hashlib.sha256(raw).hexdigest(),
    )


class DeadLetterSink:
    name = Stages.DEADLETTER_SINK

    def __init__(self, client: Client, topics: Topics):
        self.group_id = topics.group(self.name)
        self.client = client
        self.topics = [topics.deadletter]
        self.stored = 0

    async def handle(self, records: list[ConsumerRecord]) -> None:
        await in_stage_thread(self.store, records)

    def store(self, records: list[ConsumerRecord]) -> None:
        rows = [dead_letter_row(orjson.loads(r.value)) for r in records]
        insert_rows(self.client, "dead_letters", DEAD_LETTER_COLUMNS, rows)
        metrics.DEAD_LETTERS_STORED.inc(len(rows))
        self.stored += len(rows)
