"""Per-key quotas of HTTP ingest: a token bucket of events (rate per second, burst)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens (events) per second
    burst: float  # capacity
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, n: int, now: float | None = None) -> float:
        """Seconds until `n` events may pass; 0 means they pass now (and are taken).

        A request larger than the burst passes when the bucket is full and leaves it in debt,
        so the average stays at the rate."""
        now = time.monotonic() if now is None else now
        self._refill(now)
        need = min(n, self.burst)
        if self.tokens >= need:
            self.tokens -= n
            return 0.0
        return (need - self.tokens) / self.rate


class Quotas:
    """One bucket per key id, following the key's rate and burst."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after(self, key_id: str, rate: float, burst: int, events: int) -> int:
        """0 when `events` may pass now (taken from the key's bucket), else whole seconds to wait (>= 1)."""
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            bucket = self._buckets[key_id] = TokenBucket(rate, float(burst))
        wait = bucket.wait_for(events)
        return 0 if wait == 0 else max(1, math.ceil(wait))
