"""Validate a batch of input lines and produce them: valid ones to the raw topic,
invalid ones to the dead-letter topic. Used by the HTTP endpoint and by replay."""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from aiokafka import AIOKafkaProducer

from leadflow import metrics
from leadflow.stream import OffsetTracker, send_all
from leadflow.topics import Topics
from services.ingest.suppression import Suppression
from services.ingest.validate import AcceptedEvent, DeadLetter, InputOccurrences, Validator


@dataclass(slots=True)
class Status:
    index: int
    status: str  # accepted | duplicate | rejected
    event_id: str
    errors: Sequence[tuple[str, str]] = ()  # (path, message) of a rejected one; no list made per event

    def as_dict(self) -> dict:
        out: dict = {"index": self.index, "status": self.status, "event_id": self.event_id or None}
        if self.errors:
            out["errors"] = [{"path": p, "message": m} for p, m in self.errors]
        return out


@dataclass(slots=True)
class Parsed:
    """An input already parsed (an element of a JSON array): its value, and how to get its bytes."""
    value: Any
    raw: Callable[[], bytes]


class PublishError(RuntimeError):
    """The broker did not acknowledge the events in time: nothing of the request may be reported stored."""


@dataclass
class PublishTotals:
    read: int = 0
    published: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)


_children: dict[tuple, tuple] = {}  # (kind, labels...) -> its counters' children: labels() costs per call


def _metric_children(key: tuple) -> tuple:
    children = _children.get(key)
    if children is None:
        kind = key[0]
        if kind == "received":
            children = (metrics.EVENTS_RECEIVED.labels(source=metrics.source_label(key[1])),)
        elif kind == "accepted":
            label = metrics.source_label(key[2])
            children = (metrics.EVENTS_ACCEPTED.labels(type=key[1], source=label),
                        metrics.LAST_EVENT_TIME.labels(source=label))
        else:
            children = (metrics.EVENTS_REJECTED.labels(type=key[1], source=metrics.source_label(key[2]),
                                                       reason=key[3]),)
        if len(_children) < 10_000:  # label values are bounded (metrics.source_label); so is this
            _children[key] = children
    return children


def record_ingest_metrics(counts: Counter) -> None:
    """Apply ingest counts ((kind, labels...) -> n) to the Prometheus counters.

    Also used by a process that published through a child process (replay) to
    count what the child counted."""
    for key, n in counts.items():
        if key[0] not in ("received", "accepted", "rejected"):
            continue
        children = _metric_children(key)
        children[0].inc(n)
        if len(children) > 1:
            children[1].set_to_current_time()


class GroupSender:
    """Produces the messages of concurrent callers together: while one send is with the broker,
    the next callers' messages gather and go as one batch per partition when it returns.

    aiokafka sends one record batch per partition per produce request, so a batch per HTTP request
    would cap ingest at one request per broker round trip and partition (~80 requests/s measured
    on the embedded broker); gathered, a round trip carries every request that came meanwhile."""

    def __init__(self, producer: AIOKafkaProducer, tracker: OffsetTracker):
        self.producer = producer
        self.tracker = tracker
        self._waiting: list[tuple[list[tuple[str, list]], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def send(self, parts: list[tuple[str, list]]) -> None:
        """Produce each (topic, messages) of `parts`; returns once the broker has all of them."""
        if not any(messages for _, messages in parts):
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((parts, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="ingest-group-send")
        await future

    async def _flush(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            by_topic: dict[str, list] = {}
            for parts, _ in group:
                for topic, messages in parts:
                    by_topic.setdefault(topic, []).extend(messages)
            try:
                await asyncio.gather(*(send_all(self.producer, topic, messages, self.tracker)
                                       for topic, messages in by_topic.items()))
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in group:
                if not future.done():
                    future.set_result(None)


class Publisher:
    """Validates inputs and produces them; the broker's acknowledgement is the only `accepted`.

    Nothing here asks the warehouse: duplicates are dropped by the warehouse sink (by event_id),
    so ingest keeps accepting while the warehouse is down and a client's retry after a failure
    always lands. `report_repeats`: an event_id repeated within one call is answered `duplicate`
    (HTTP) instead of being produced twice."""

    def __init__(self, validator: Validator, producer: AIOKafkaProducer, topics: Topics, *,
                 max_event_bytes: int, report_repeats: bool = False, produce_timeout_s: float | None = None,
                 suppression: Suppression | None = None):
        self.validator = validator
        self.producer = producer
        self.topics = topics
        self.max_event_bytes = max_event_bytes
        self.report_repeats = report_repeats
        self.produce_timeout_s = produce_timeout_s
        self.sender = GroupSender(producer, OffsetTracker())
        # erased identity values (`leadflow forget`): HTTP passes a list kept fresh from the warehouse
        self.suppression = suppression or Suppression(secret=validator.settings.identity_secret)
        self.totals = PublishTotals()
        self.metric_counts: Counter = Counter()  # what record_ingest_metrics was given, for another process

    @property
    def tracker(self) -> OffsetTracker:
        """The offsets the broker acknowledged (a replay in segments starts a new one per segment)."""
        return self.sender.tracker

    @tracker.setter
    def tracker(self, tracker: OffsetTracker) -> None:
        self.sender.tracker = tracker

    def _validate(self, item: bytes | Parsed, origin: str, default_source: str, occurrences: InputOccurrences,
                  key_source: str | None, now: datetime) -> AcceptedEvent | DeadLetter:
        if isinstance(item, Parsed):
            return self.validator.check_value(item.value, item.raw, origin=origin, default_source=default_source,
                                              occurrences=occurrences, key_source=key_source, received_at=now)
        if len(item) > self.max_event_bytes:
            return self.validator.too_large(item, origin=origin, default_source=default_source,
                                            occurrences=occurrences, limit=self.max_event_bytes)
        return self.validator.check(item, origin=origin, default_source=default_source, occurrences=occurrences,
                                    key_source=key_source, received_at=now)

    async def publish(self, lines: Sequence[bytes | Parsed], *, origin: str, default_source: str,
                      occurrences: InputOccurrences, key_source: str | None = None) -> list[Status]:
        """Validate `lines` and produce them; returns a status per line once the broker has them all.
        Raises PublishError when the broker does not acknowledge them within `produce_timeout_s`."""
        now = datetime.now(timezone.utc)  # one received_at per call
        results = [self._validate(item, origin, default_source, occurrences, key_source, now) for item in lines]
        # every path (HTTP, replay, simulate --live) passes here with the validated events: the place for
        # checks on accepted events that need no warehouse query per request
        statuses: list[Status] = []
        raw_msgs, dead_msgs = [], []
        seen: set[str] = set()
        counts: Counter = Counter({("received", default_source): len(lines)})
        repeats: Counter = Counter()
        holds = self.suppression.holds if self.suppression.digests else None
        for i, res in enumerate(results):
            if holds is not None and holds(res):  # holds an identity value `leadflow forget` erased: dropped, counted
                statuses.append(Status(i, "suppressed", res.event_id))
            elif isinstance(res, DeadLetter):
                dead_msgs.append((res.dead_letter_id.encode(), res.to_message()))
                statuses.append(Status(i, "rejected", res.event_id, res.errors))
                counts[("rejected", metrics.type_label(res.event_type), res.source, res.error_kind)] += 1
            elif self.report_repeats and res.event_id in seen:
                statuses.append(Status(i, "duplicate", res.event_id))
                repeats[res.type] += 1
            else:
                seen.add(res.event_id)
                raw_msgs.append((res.key, res.value))
                statuses.append(Status(i, "accepted", res.event_id))
                counts[("accepted", res.type, res.source)] += 1
        try:
            async with asyncio.timeout(self.produce_timeout_s):  # no task of its own, unlike wait_for
                await self.sender.send([(self.topics.raw, raw_msgs), (self.topics.deadletter, dead_msgs)])
        except Exception as exc:  # any failure: the caller must not report these stored
            metrics.PROCESSING_ERRORS.labels(stage="ingest").inc()
            raise PublishError(f"the broker did not take the events: {type(exc).__name__}: {exc}") from exc
        record_ingest_metrics(counts)
        for event_type, n in repeats.items():
            metrics.EVENTS_DUPLICATE.labels(type=event_type).inc(n)
        self.metric_counts.update(counts)
        self.totals.read += len(lines)
        self.totals.published += len(raw_msgs)
        for res, status in zip(results, statuses):
            if status.status == "rejected":
                self._count_rejection(res)
        return statuses

    def _count_rejection(self, dead: DeadLetter) -> None:
        self.totals.rejected += 1
        for _, message in dead.errors:
            self.totals.reasons[message] += 1
