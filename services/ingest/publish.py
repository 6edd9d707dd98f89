"""Validate a batch of input lines and produce them: valid ones to the raw topic,
invalid ones to the dead-letter topic. Used by the HTTP endpoint and by replay."""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from leadflow import metrics
from leadflow.stream import OffsetTracker, send_all
from leadflow.topics import Topics
from services.ingest.sink import existing_event_ids
from services.ingest.suppression import Suppression
from services.ingest.validate import AcceptedEvent, DeadLetter, InputOccurrences, Validator


@dataclass(slots=True)
class Status:
    index: int
    status: str  # accepted | duplicate | rejected
    event_id: str
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        out: dict = {"index": self.index, "status": self.status, "event_id": self.event_id or None}
        if self.errors:
            out["errors"] = [{"path": p, "message": m} for p, m in self.errors]
        return out


class RecentIds:
    """event_ids produced lately by this process (bounded), for answering `duplicate` at once."""

    def __init__(self, capacity: int = 1_000_000):
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


@dataclass
class PublishTotals:
    read: int = 0
    published: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)


def record_ingest_metrics(counts: Counter) -> None:
    """Apply ingest counts ((kind, labels...) -> n) to the Prometheus counters.

    Also used by a process that published through a child process (replay) to
    count what the child counted."""
    for key, n in counts.items():
        kind = key[0]
        if kind == "received":
            metrics.EVENTS_RECEIVED.labels(source=metrics.source_label(key[1])).inc(n)
        elif kind == "accepted":
            label = metrics.source_label(key[2])
            metrics.EVENTS_ACCEPTED.labels(type=key[1], source=label).inc(n)
            metrics.LAST_EVENT_TIME.labels(source=label).set_to_current_time()
        elif kind == "rejected":
            metrics.EVENTS_REJECTED.labels(type=key[1], source=metrics.source_label(key[2]), reason=key[3]).inc(n)


class Publisher:
    def __init__(self, validator: Validator, producer: AIOKafkaProducer, topics: Topics, *,
                 max_event_bytes: int, warehouse: Client | None = None, suppression: Suppression | None = None):
        self.validator = validator
        self.producer = producer
        self.topics = topics
        self.max_event_bytes = max_event_bytes
        self.warehouse = warehouse  # set: answer `duplicate` before producing (HTTP)
        self.suppression = suppression or Suppression.following(warehouse, validator.settings)  # erasure
        self.recent = RecentIds()
        self.tracker = OffsetTracker()
        self.totals = PublishTotals()
        self.metric_counts: Counter = Counter()  # what record_ingest_metrics was given, for another process

    async def publish(self, lines: list[bytes], *, origin: str, default_source: str,
                      occurrences: InputOccurrences) -> list[Status]:
        results: list[AcceptedEvent | DeadLetter] = []
        for raw in lines:
            if len(raw) > self.max_event_bytes:
                results.append(self.validator.too_large(raw, origin=origin, default_source=default_source,
                                                        occurrences=occurrences, limit=self.max_event_bytes))
            else:
                results.append(self.validator.check(raw, origin=origin, default_source=default_source,
                                                    occurrences=occurrences))
        known: set[str] = set()
        if self.warehouse is not None:
            ids = [r.event_id for r in results if isinstance(r, AcceptedEvent) and r.event_id not in self.recent]
            known = existing_event_ids(self.warehouse, ids)
        statuses: list[Status] = []
        raw_msgs, dead_msgs = [], []
        counts: Counter = Counter({("received", default_source): len(lines)})
        for i, res in enumerate(results):
            if self.suppression.holds(res):  # holds an identity value `leadflow forget` erased: dropped, counted
                statuses.append(Status(i, "suppressed", res.event_id))
            elif isinstance(res, DeadLetter):
                dead_msgs.append((res.dead_letter_id.encode(), res.to_message()))
                statuses.append(Status(i, "rejected", res.event_id, res.errors))
                counts[("rejected", metrics.type_label(res.event_type), res.source, res.error_kind)] += 1
                self._count_rejection(res)
            elif self.warehouse is not None and (res.event_id in self.recent or res.event_id in known):
                statuses.append(Status(i, "duplicate", res.event_id))
                metrics.EVENTS_DUPLICATE.labels(type=res.type).inc()
            else:
                raw_msgs.append((res.key, res.value))
                if self.warehouse is not None:
                    self.recent.add(res.event_id)
                statuses.append(Status(i, "accepted", res.event_id))
                counts[("accepted", res.type, res.source)] += 1
        record_ingest_metrics(counts)
        self.metric_counts.update(counts)
        await send_all(self.producer, self.topics.raw, raw_msgs, self.tracker)
        await send_all(self.producer, self.topics.deadletter, dead_msgs, self.tracker)
        self.totals.read += len(lines)
        self.totals.published += len(raw_msgs)
        return statuses

    def _count_rejection(self, dead: DeadLetter) -> None:
        self.totals.rejected += 1
        for _, message in dead.errors:
            self.totals.reasons[message] += 1
