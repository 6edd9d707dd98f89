"""Per-key quotas of HTTP ingest: a token bucket of events (rate per second, burst).

`Quotas` keeps the buckets of one process. `SharedQuotas` keeps them in shared memory for
several ingest processes on one port (`serve --ingest-only --processes N`): every process
takes from the same bucket of a key, so a key's quota holds whichever process the kernel
hands its connections to."""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def take(tokens: float, updated: float, rate: float, burst: float, n: int, now: float) -> tuple[float, float]:
    """(tokens left, seconds to wait) after asking for `n` events at `now` from a bucket that held
    `tokens` at `updated`; a wait of 0 means they pass (and were taken).

    A request larger than the burst passes when the bucket is full and leaves it in debt, so the
    average stays at the rate."""
    tokens = min(burst, tokens + (now - updated) * rate)
    need = min(n, burst)
    if tokens >= need:
        return tokens - n, 0.0
    return tokens, (need - tokens) / rate


def whole_seconds(wait: float) -> int:
    return 0 if wait == 0 else max(1, math.ceil(wait))


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens (events) per second
    burst: float  # capacity
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def wait_for(self, n: int, now: float | None = None) -> float:
        """Seconds until `n` events may pass; 0 means they pass now (and are taken)."""
        now = time.monotonic() if now is None else now
        self.tokens, wait = take(self.tokens, self.updated, self.rate, self.burst, n, now)
        self.updated = now
        return wait


class Quotas:
    """One bucket per key id, following the key's rate and burst."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after(self, key_id: str, rate: float, burst: int, events: int) -> int:
        """0 when `events` may pass now (taken from the key's bucket), else whole seconds to wait (>= 1)."""
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[key_id] = TokenBucket(rate, float(burst))
        return whole_seconds(bucket.wait_for(events))


_FIELDS = 4  # per slot: rate, burst, tokens, updated (time.monotonic: one clock for every process)


class SharedQuotas:
    """The buckets of every key in shared memory (made before the ingest processes start, handed
    to each): a table of `slots` keys, found by a fingerprint of the key id, under one
    cross-process lock held for a few arithmetic operations. Past `slots` keys, or when the lock
    is not had within a second (a process died holding it), a key falls back to a bucket of this
    process at 1/`processes` of its quota."""

    def __init__(self, context, processes: int, slots: int = 1 << 16):
        self._lock = context.Lock()
        self._fingerprints = context.RawArray("q", slots)
        self._values = context.RawArray("d", slots * _FIELDS)
        self._slots = slots
        self._processes = processes
        self._where: dict[str, int] = {}  # key id -> slot, found once per process
        self._local = Quotas()

    def __getstate__(self) -> dict:
        return {k: v for k, v in ((s, getattr(self, s)) for s in
                ("_lock", "_fingerprints", "_values", "_slots", "_processes"))}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._where, self._local = {}, Quotas()

    def _slot(self, key_id: str) -> int | None:
        """The key's slot (the lock held), claimed when it has none; None when the table is full."""
        slot = self._where.get(key_id)
        if slot is not None:
            return slot
        fingerprint = int.from_bytes(hashlib.sha256(key_id.encode()).digest()[:8], "big", signed=True) or 1
        start = fingerprint % self._slots
        for i in range(self._slots):
            slot = (start + i) % self._slots
            held = self._fingerprints[slot]
            if held == 0:
                self._fingerprints[slot] = fingerprint
                self._values[slot * _FIELDS:(slot + 1) * _FIELDS] = [0.0, 0.0, 0.0, 0.0]
            if held in (0, fingerprint):
                self._where[key_id] = slot
                return slot
        return None

    def retry_after(self, key_id: str, rate: float, burst: int, events: int) -> int:
        """As Quotas.retry_after, across the processes."""
        if not self._lock.acquire(timeout=1.0):
            log.warning("shared quota table busy for 1 s: key %s checked against 1/%d of its quota here",
                        key_id, self._processes)
            return self._local.retry_after(key_id, rate / self._processes, max(1, burst // self._processes), events)
        try:
            slot = self._slot(key_id)
            if slot is None:
                return self._local.retry_after(key_id, rate / self._processes, max(1, burst // self._processes),
                                               events)
            at = slot * _FIELDS
            values = self._values
            now = time.monotonic()
            if values[at] != rate or values[at + 1] != burst:  # new key, or its quota changed: a full bucket
                values[at], values[at + 1], values[at + 2], values[at + 3] = rate, float(burst), float(burst), now
            tokens, wait = take(values[at + 2], values[at + 3], rate, float(burst), events, now)
            values[at + 2], values[at + 3] = tokens, now
        finally:
            self._lock.release()
        return whole_seconds(wait)
