"""Keyed hashing of identity values: no raw email or phone reaches the warehouse."""
from __future__ import annotations

import hashlib
import hmac

from schemas import IDENTITY_KEYS

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
