"""One line of input in, an accepted event or a dead letter out.

Shared by the HTTP endpoint and `leadflow replay`, so both apply exactly the
same rules. Accepted events leave with identity values replaced by keyed
hashes; dead letters keep the original bytes.
"""
from __future__ import annotations

import base64
import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import orjson

from leadflow import __version__
from leadflow.config import Settings
from leadflow.privacy import IdentityHasher
from schemas import ContractContext, ContractError, validate_event
from schemas.fastpath import dump_valid

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
    raw: bytes  # the original bytes, cut to at most max_event_bytes
    raw_length: int  # length of the whole original
    raw_sha256: str  # of the whole original
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
            "raw_length": self.raw_length,
            "raw_sha256": self.raw_sha256,
            "processor": self.processor,
            "processor_version": __version__,
        })


def original_bytes(raw: bytes, limit: int | None = None) -> dict:
    """The DeadLetter fields that keep an input's original bytes: at most `limit` of them, with the
    whole input's length and SHA-256."""
    return {"raw": raw if limit is None else raw[:limit], "raw_length": len(raw),
            "raw_sha256": hashlib.sha256(raw).hexdigest()}


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
            return _clean(val[:limit])
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


def _bad_floats(value: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinite float in `value` (orjson parses neither, but a big
    integer literal becomes a float and a model can compute one), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        for k, v in value.items():
            found = _bad_floats(v, f"{path}.{k}" if path else str(k))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _bad_floats(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


Raw = bytes | Callable[[], bytes]  # an input's bytes, or how to get them when they are needed (rarely)


class Validator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.max_event_bytes = settings.max_event_bytes
        self.hasher = IdentityHasher(settings.identity_secret)
        self._ctx = ContractContext(
            reporting_currency=settings.reporting_currency,
            rates=dict(settings.rates),
            marketing_channels=settings.marketing_channels,
            conversation_channels=settings.conversation_channels,
            received_at=datetime.now(timezone.utc),
        )
        self._ctx_now, self._ctx_at, self._received_at = self._ctx, None, ""

    def _context(self, now: datetime) -> ContractContext:
        """The contract context at `now` (made once per instant: the inputs of one call share it)."""
        if self._ctx_at is not now:
            self._ctx_now, self._ctx_at = replace(self._ctx, received_at=now), now
            self._received_at = now.isoformat(timespec="milliseconds")
        return self._ctx_now

    def check(
        self, raw: bytes, *, origin: str, default_source: str, occurrences: InputOccurrences,
        received_at: datetime | None = None, key_source: str | None = None,
    ) -> AcceptedEvent | DeadLetter:
        now = received_at or datetime.now(timezone.utc)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._dead(raw, None, origin, default_source, occurrences, now, "not_json",
                              [("", f"not valid JSON: {exc}")])
        return self.check_value(obj, raw, origin=origin, default_source=default_source, occurrences=occurrences,
                                received_at=now, key_source=key_source)

    def check_value(
        self, obj: Any, raw: Raw, *, origin: str, default_source: str, occurrences: InputOccurrences,
        received_at: datetime | None = None, key_source: str | None = None,
    ) -> AcceptedEvent | DeadLetter:
        """Validate a parsed input. `key_source`: the source of the write key it came with: an event
        without a source gets it, an event with another source is rejected."""
        now = received_at or datetime.now(timezone.utc)
        if key_source is not None and isinstance(obj, dict):
            given = obj.get("source")
            if given is None:
                obj = {**obj, "source": key_source}
            elif given != key_source:
                shown = given if isinstance(given, str) else type(given).__name__
                return self._dead(raw, obj, origin, default_source, occurrences, now, "schema", [
                    ("source", f"source {shown[:64]!r} differs from the source of the write key ({key_source!r}); "
                               f"leave it out or send it with a key of that source")])
        ctx = self._context(now)
        data = dump_valid(obj, ctx)  # the common case, without pydantic; None: the full path decides
        if data is not None:
            try:
                accepted = self._encode(data, now)
            except ValueError:  # a lone surrogate in an identity value: the full path refuses it
                accepted = None
            if isinstance(accepted, AcceptedEvent):
                return accepted  # else not encodable: the full path says why, as it always did
        try:
            data = validate_event(obj, ctx).model_dump(mode="json", exclude_none=True)
        except ContractError as exc:
            return self._dead(raw, obj, origin, default_source, occurrences, now, "schema", list(exc.errors))
        except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:  # validation is total
            return self._dead(raw, obj, origin, default_source, occurrences, now, "schema",
                              [("", f"unusable value: {type(exc).__name__}: {str(exc)[:200]}")])
        accepted = self._encode(data, now)
        if isinstance(accepted, AcceptedEvent):
            return accepted
        return self._dead(raw, obj, origin, default_source, occurrences, now, "schema", accepted)

    def _encode(self, data: dict, now: datetime) -> AcceptedEvent | list[tuple[str, str]]:
        """The accepted event of a validated event's dump (identity hashed, received_at set), or
        the errors that keep it out."""
        hashed = self.hasher.hash_identity(data.get("identity"))
        if hashed:
            data["identity"] = hashed
        else:
            data.pop("identity", None)
        data["received_at"] = self._received_at if now is self._ctx_at else now.isoformat(timespec="milliseconds")
        try:
            value = orjson.dumps(data)
        except TypeError as exc:  # e.g. a lone surrogate in a string: not encodable as UTF-8
            return [("", f"not encodable as UTF-8 JSON: {exc}")]
        # orjson writes NaN and infinity as null, and the dump has no null otherwise (exclude_none)
        bad = _bad_floats(data) if b"null" in value else None
        if bad is not None:
            return [(bad, "not a finite number")]
        return AcceptedEvent(data["event_id"], data["type"], data["source"], partition_key(data), value)

    def too_large(self, raw: bytes, *, origin: str, default_source: str, occurrences: InputOccurrences,
                  limit: int) -> DeadLetter:
        return self._dead(raw, None, origin, default_source, occurrences, datetime.now(timezone.utc), "size",
                          [("", f"event of {len(raw)} bytes exceeds the {limit}-byte limit")])

    def _dead(self, raw: Raw, obj: Any, origin: str, default_source: str, occurrences: InputOccurrences,
              now: datetime, kind: str, errors: list[tuple[str, str]]) -> DeadLetter:
        if not isinstance(raw, bytes):
            raw = raw()
        return DeadLetter(
            dead_letter_id=occurrences.dead_letter_id(origin, raw),
            rejected_at=now,
            source=_str_field(obj, "source", 64) or default_source,
            origin=origin,
            event_id=_str_field(obj, "event_id", 128),
            event_type=_str_field(obj, "type", 64),
            error_kind=kind,
            errors=[(_clean(p), _clean(m)) for p, m in errors],
            **original_bytes(raw, self.max_event_bytes),
        )


def _clean(text: str) -> str:
    """An error text that encodes as UTF-8 (an error can quote a lone surrogate of the input)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
