"""Warehouse sinks for the ingest topics.

`RawEventSink` drops event_ids already stored (in the batch or in the
warehouse), inserts the rest into `raw_events` in one batch, then forwards them
to the `stored` topic for enrichment. Offsets are committed by the runner after
both writes, so a crash replays the batch.

A retry is a replay: each stored row keeps the Kafka record it came from
(migration 0013), so a retried or redelivered record finds its own row, counts
as accepted (not a duplicate) and is forwarded again unless enrich has it already
(`enriched_events`); a record whose event_id is stored from another record is a
duplicate. The counters and metrics move once the batch is stored and forwarded.
"""
from __future__ import annotations

import base64
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
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
# the Kafka record a stored row came from (migration 0013)
ORIGIN_COLUMNS = ["origin_topic", "origin_partition", "origin_offset", "origin_timestamp"]
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


def origin_of(record: ConsumerRecord) -> tuple[str, int, int, int]:
    return (record.topic, record.partition, record.offset, record.timestamp)


def stored_origins(client: Client, ids: list[str]) -> dict[str, set[tuple]]:
    """event_id -> the origins of its stored rows, for these event ids (staged as ingest_event_ids)."""
    stage_keys(client, "ingest_event_ids", ids)
    rows = client.query(f"SELECT event_id, {', '.join(ORIGIN_COLUMNS)} FROM raw_events "
                        "WHERE event_id IN (SELECT key FROM ingest_event_ids)").result_rows
    out: dict[str, set[tuple]] = defaultdict(set)
    for event_id, *origin in rows:
        out[event_id].add(tuple(origin))
    return out


def enriched_ids(client: Client, ids: list[str]) -> set[str]:
    """Which of these event ids enrich has processed."""
    stage_keys(client, "ingest_event_ids", ids)
    return {r[0] for r in client.query("SELECT DISTINCT event_id FROM enriched_events "
                                       "WHERE event_id IN (SELECT key FROM ingest_event_ids)").result_rows}


@dataclass
class Stored:
    """One batch as stored: the messages to forward to enrich, accepted and duplicates by type."""

    forward: list[tuple[bytes, bytes]]
    accepted: Counter
    duplicates: Counter


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
        batch = await in_stage_thread(self.store, records)
        await send_all(self.producer, self.stored_topic, batch.forward, self.forwarded)
        for event_type, n in batch.accepted.items():  # counted once the batch is fully written
            metrics.EVENTS_STORED.labels(type=event_type).inc(n)
        for event_type, n in batch.duplicates.items():
            metrics.EVENTS_DUPLICATE.labels(type=event_type).inc(n)
        self.stored.update(batch.accepted)
        self.duplicates.update(batch.duplicates)

    def store(self, records: list[ConsumerRecord]) -> Stored:
        """Insert the batch's new events; returns what to forward to enrich and the counts."""
        events = [(r, orjson.loads(r.value)) for r in records]
        stored = stored_origins(self.client, list({e["event_id"] for _, e in events}))
        rows, forward, accepted, duplicates = [], [], Counter(), Counter()
        seen: set[str] = set()
        own: list[tuple[str, ConsumerRecord]] = []  # records stored by an earlier attempt of this batch
        for record, event in events:
            eid, origin = event["event_id"], origin_of(record)
            if eid in seen or (eid in stored and origin not in stored[eid]):
                duplicates[event["type"]] += 1
                continue
            seen.add(eid)
            accepted[event["type"]] += 1
            if eid in stored:
                own.append((eid, record))
            else:
                rows.append((*raw_row(event, record.value), *origin))
                forward.append((record.key, record.value))
        insert_rows(self.client, "raw_events", RAW_COLUMNS + ORIGIN_COLUMNS, rows)
        if own:
            done = enriched_ids(self.client, [eid for eid, _ in own])
            forward += [(r.key, r.value) for eid, r in own if eid not in done]
        return Stored(forward, accepted, duplicates)


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
