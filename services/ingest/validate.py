"""One line of input in, an accepted event or a dead letter out.

Shared by the HTTP endpoint and `leadflow replay`, so both apply exactly the
same rules. Accepted events leave with identity values replaced by keyed
hashes; dead letters keep the original bytes.
"""
from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable

import orjson

from leadflow import __version__
from leadflow.config import Settings
from leadflow.privacy import IdentityHasher
from schemas import ContractContext, ContractError, validate_event

PROCESSOR = "leadflow-ingest"
_KEY_PRIORITY = ("crm_contact_id", "email", "phone", "visitor_id")


@dataclass(slots=True)
class AcceptedEvent:
    event_id: str
    type: str
    source: str
    key: bytes
    value: bytes  # JSON of the validated event, identity hashed


@dataclass(slots=True)
class DeadLetter:
    dead_letter_id: str
    rejected_at: datetime
    source: str
    origin: str
    event_id: str
    event_type: str
    error_kind: str  # not_json | schema | size | processing (a stage could not handle it)
    errors: list[tuple[str, str]]
    raw: bytes
    processor: str = PROCESSOR

    def to_message(self) -> bytes:
        return orjson.dumps({
            "dead_letter_id": self.dead_letter_id,
            "rejected_at": self.rejected_at.isoformat(),
            "source": self.source,
            "origin": self.origin,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "error_kind": self.error_kind,
            "errors": self.errors,
            "raw_b64": base64.b64encode(self.raw).decode("ascii"),
            "processor": self.processor,
            "processor_version": __version__,
        })


def describe_errors(errors: Iterable[tuple[str, str]]) -> str:
    """Errors as one readable line: `path: message; path: message`."""
    return "; ".join(f"{path}: {message}" if path else message for path, message in errors)


@dataclass
class InputOccurrences:
    """Numbers repeated bad lines within one input, so each keeps its own dead letter.

    The id hashes the origin (file name, `http`) with the bytes: the same file
    replayed twice gives the same ids, which the table deduplicates.
    """

    seen: Counter[str] = field(default_factory=Counter)

    def dead_letter_id(self, origin: str, raw: bytes) -> str:
        digest = hashlib.sha256(origin.encode() + b"\0" + raw).hexdigest()
        self.seen[digest] += 1
        return f"{digest}#{self.seen[digest]}"


def _str_field(obj: Any, name: str, limit: int) -> str:
    if isinstance(obj, dict):
        val = obj.get(name)
        if isinstance(val, str):
            return val[:limit]
    return ""


def partition_key(event: dict[str, Any]) -> bytes:
    """Events of one conversation, or of one person, share a key (and so keep their order)."""
    conv = event.get("conversation_id")
    if conv:
        return f"conversation:{conv}".encode()
    identity = event.get("identity") or {}
    for kind in _KEY_PRIORITY:
        if identity.get(kind):
            return identity[kind].encode()
    if event.get("campaign_id"):
        return f"campaign:{event['campaign_id']}".encode()
    return f"event:{event['event_id']}".encode()


class Validator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.hasher = IdentityHasher(settings.identity_secret)
        self._ctx = ContractContext(
            reporting_currency=settings.reporting_currency,
            rates=dict(settings.rates),
            marketing_channels=settings.marketing_channels,
            conversation_channels=settings.conversation_channels,
            received_at=datetime.now(timezone.utc),
        )

    def check(
        self, raw: bytes, *, origin: str, default_source: str, occurrences: InputOccurrences,
        received_at: datetime | None = None,
    ) -> AcceptedEvent | DeadLetter:
        now = received_at or datetime.now(timezone.utc)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._dead(raw, None, origin, default_source, occurrences, now, "not_json",
                              [("", f"not valid JSON: {exc}")])
        try:
            event = validate_event(obj, replace(self._ctx, received_at=now))
        except ContractError as exc:
            return self._dead(raw, obj, origin, default_source, occurrences, now, "schema", list(exc.errors))
        data = event.model_dump(mode="json", exclude_none=True)
        hashed = self.hasher.hash_identity(data.get("identity"))
        if hashed:
            data["identity"] = hashed
        else:
            data.pop("identity", None)
        data["received_at"] = now.isoformat(timespec="milliseconds")
        return AcceptedEvent(event.event_id, event.type, event.source, partition_key(data), orjson.dumps(data))

    def too_large(self, raw: bytes, *, origin: str, default_source: str, occurrences: InputOccurrences,
                  limit: int) -> DeadLetter:
        return self._dead(raw, None, origin, default_source, occurrences, datetime.now(timezone.utc), "size",
                          [("", f"event of {len(raw)} bytes exceeds the {limit}-byte limit")])

    def _dead(self, raw: bytes, obj: Any, origin: str, default_source: str, occurrences: InputOccurrences,
              now: datetime, kind: str, errors: list[tuple[str, str]]) -> DeadLetter:
        return DeadLetter(
            dead_letter_id=occurrences.dead_letter_id(origin, raw),
            rejected_at=now,
            source=_str_field(obj, "source", 64) or default_source,
            origin=origin,
            event_id=_str_field(obj, "event_id", 128),
            event_type=_str_field(obj, "type", 64),
            error_kind=kind,
            errors=errors,
            raw=raw,
        )
