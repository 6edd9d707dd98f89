"""Keyed hashing of identity values: no raw email or phone reaches the warehouse."""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Iterator

import orjson

from schemas import IDENTITY_KEYS
from schemas.identity import normalize_email, normalize_phone

# repeat values (a visitor chatting) skip the HMAC; ~300 bytes per entry, so bounded
CACHE_SIZE = 100_000


class IdentityHasher:
    """HMAC-SHA256 of ``kind:normalised value`` with the configured secret.

    The kind is part of the message, so an email and a visitor id that happen
    to be the same string never collide. Output: ``kind:hex`` (the kind stays
    readable so people can tell which identifier linked two events).
    """

    def __init__(self, secret: str):
        self._key = secret.encode("utf-8")
        self._cache: dict[tuple[str, str], str] = {}

    def hash(self, kind: str, value: str) -> str:
        cached = self._cache.get((kind, value))
        if cached is not None:
            return cached
        digest = hmac.new(self._key, f"{kind}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
        out = f"{kind}:{digest[:32]}"
        if len(self._cache) >= CACHE_SIZE:  # start over: recent values are the ones that repeat
            self._cache.clear()
        self._cache[(kind, value)] = out
        return out

    def hash_identity(self, identity: dict[str, str] | None) -> dict[str, str]:
        if not identity:
            return {}
        return {k: self.hash(k, v) for k, v in identity.items() if k in IDENTITY_KEYS and v}


def suppression_digest(identity_key: str) -> str:
    """What the suppression list (`suppressed_keys`, migration 0021) keeps of a forgotten identity
    value: SHA-256 of its keyed hash. The list never holds the keyed hash itself, so no table
    joins it to a fact, yet an event carrying the value is recognised (its hash gives the same
    digest)."""
    return hashlib.sha256(b"leadflow-suppressed\0" + identity_key.encode("utf-8")).hexdigest()


# Identity values as people send them, inside bytes that may not even be an event (dead letters):
# email-looking runs, phone-looking runs, words.
_EMAIL = re.compile(r"[^\s\"'<>,;:()\[\]{}\\]+@[^\s\"'<>,;:()\[\]{}\\]+")
_PHONE = re.compile(r"\+?[0-9][0-9\s\-().\/]{5,}[0-9]")
_WORD = re.compile(r"[^\s\"'<>,;()\[\]{}\\]{3,200}")


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield str(obj)  # a crm id or a phone sent as a number


def value_candidates(raw: bytes) -> set[str]:
    """Every string of these bytes that could be an identity value as it was sent: each string of
    the JSON document (when they parse) and every email-looking run, phone-looking run and word
    of the text and of those strings."""
    found: set[str] = set()
    try:
        found.update(_strings(orjson.loads(raw)))
    except orjson.JSONDecodeError:
        pass
    for source in [raw.decode("utf-8", "replace"), *found]:
        for pattern in (_EMAIL, _PHONE, _WORD):
            found.update(m.group(0) for m in pattern.finditer(source))
    return {s for s in found if s}


def hashes_in(raw: bytes, hasher: IdentityHasher) -> set[str]:
    """The keyed hashes of every value of `raw` (value_candidates) under each identity kind it is
    valid for, normalised as ingest does (schemas.identity): what a dead letter's bytes would
    have become had they been a valid event."""
    out: set[str] = set()
    for value in value_candidates(raw):
        out.add(hasher.hash("visitor_id", value))
        out.add(hasher.hash("crm_contact_id", value))
        for kind, normalize in (("email", normalize_email), ("phone", normalize_phone)):
            try:
                out.add(hasher.hash(kind, normalize(value)))
            except ValueError:
                pass
    return out
