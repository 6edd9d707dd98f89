"""A Mapping into the pipeline: its events through the Publisher (the same validation and
topics as `POST /v1/events`), its unmappable parts to the dead-letter topic with their
original bytes and reason.

An event the adapter built but the contract rejects (a lead without email or phone, a won deal
with no amount) becomes a dead letter of the *vendor's* bytes it came from, with the
contract's errors as the reason: what is kept is what the vendor sent.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import orjson

from leadflow.stream import send_all
from services.ingest.publish import Publisher, Status, record_ingest_metrics
from services.ingest.sources.base import DeadPart, Mapping
from services.ingest.validate import DeadLetter, InputOccurrences, describe_errors, original_bytes


@dataclass
class Delivery:
    events: list[Status] = field(default_factory=list)
    dead: list[DeadPart] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        statuses = Counter(s.status for s in self.events)
        return {"accepted": statuses["accepted"], "duplicate": statuses["duplicate"],
                "dead_letters": len(self.dead), "ignored": len(self.ignored)}

    def as_dict(self) -> dict:
        return {**self.counts(),
                "events": [{"event_id": s.event_id, "status": s.status} for s in self.events],
                "dead_letter_reasons": [d.reason for d in self.dead], "ignored_reasons": self.ignored}


CHUNK = 20_000  # events validated and produced at a time (a big export is not one batch)


async def deliver(publisher: Publisher, mapping: Mapping, *, source: str, origin: str,
                  on_progress: Callable[[int], None] | None = None) -> Delivery:
    """`on_progress(events handled so far)` after each chunk."""
    out = Delivery(dead=list(mapping.dead), ignored=list(mapping.ignored))
    lines = []
    for event, raw in mapping.events:
        line = orjson.dumps(event)
        checked = publisher.validator.check(line, origin=origin, default_source=source, occurrences=InputOccurrences())
        if isinstance(checked, DeadLetter):
            out.dead.append(DeadPart(raw, f"mapped {event.get('type')} rejected by the contract: "
                                          f"{describe_errors(checked.errors)}", "schema"))
        else:
            lines.append(line)
    occurrences = InputOccurrences()  # a retried delivery gives the same dead-letter ids (stored once)
    for start in range(0, len(lines), CHUNK):
        out.events += await publisher.publish(lines[start:start + CHUNK], origin=origin, default_source=source,
                                              occurrences=occurrences)
        if on_progress is not None:
            on_progress(len(out.events))
    if out.dead:
        await _dead_letters(publisher, out.dead, source=source, origin=origin, occurrences=occurrences)
    return out


async def _dead_letters(publisher: Publisher, parts: list[DeadPart], *, source: str, origin: str,
                        occurrences: InputOccurrences) -> None:
    now = datetime.now(timezone.utc)
    letters = [DeadLetter(dead_letter_id=occurrences.dead_letter_id(origin, part.raw), rejected_at=now, source=source,
                          origin=origin, event_id="", event_type="", error_kind=part.kind,
                          errors=[("", part.reason)], **original_bytes(part.raw, publisher.max_event_bytes))
               for part in parts]
    await send_all(publisher.producer, publisher.topics.deadletter,
                   [(d.dead_letter_id.encode(), d.to_message()) for d in letters], publisher.tracker)
    counts = Counter(("rejected", "unknown", source, d.error_kind) for d in letters)
    counts[("received", source)] += len(letters)
    record_ingest_metrics(counts)
    publisher.totals.read += len(letters)
    publisher.totals.rejected += len(letters)
    publisher.totals.reasons.update(part.reason for part in parts)
