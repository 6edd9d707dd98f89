"""A writer lease with a fencing token, kept in the warehouse (table `stage_leases`, 0015).

The enrich stage holds the identity graph in memory and is the single writer of
`person_keys`: two enrich stages on one warehouse would each write their own graph. So an
enrich stage that shares its warehouse with other processes first takes the lease 'enrich':

- claim: when nobody holds it (no row, or the holder's lease expired), write a claim for the
  next token, wait `settle_s` for concurrent claims to become visible, and read who won (the
  earliest claim of the highest token; ties: the smaller holder id);
- stand by: while another holder's lease runs, wait and try again when it expires;
- renew every third of the lease time; release (expire now) on a clean stop;
- fence: before writing a batch, check that this holder still has the highest token; if not,
  `LeaseLost` stops the stage (its process exits non-zero; restarted, it stands by).

ClickHouse has no compare-and-set, so the claim is decided by reading after writing; times are the
warehouse's own (now64), so the holders' clocks do not matter.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from aiokafka import ConsumerRecord
from clickhouse_connect.driver.client import Client

from leadflow.stream import Stage, StageFatal, is_transient

log = logging.getLogger(__name__)

_CURRENT_SQL = (
    "SELECT token, holder, dateDiff('millisecond', now64(3), argMax(expires_at, written_at)) AS remaining_ms "
    "FROM stage_leases WHERE name = {name:String} GROUP BY token, holder "
    "ORDER BY token DESC, min(written_at) ASC, holder ASC LIMIT 1"
)
_WRITE_SQL = (
    "INSERT INTO stage_leases (name, token, holder, expires_at) "
    "SELECT {name:String}, {token:UInt64}, {holder:String}, now64(3) + toIntervalMillisecond({ms:Int64})"
)


class LeaseLost(StageFatal):
    """Another holder took the lease: this one must not write any more."""


@dataclass(frozen=True)
class Holding:
    token: int
    holder: str
    remaining_s: float  # until the lease expires (<= 0: expired)

    def describe(self) -> str:
        if self.remaining_s > 0:
            return f"held by {self.holder} (token {self.token}) for {self.remaining_s:.1f} s more unless renewed"
        return f"last held by {self.holder} (token {self.token}), expired"


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """The lease `name` for this process (blocking calls: run them off the event loop)."""

    def __init__(self, client: Client, name: str, *, ttl_s: float, settle_s: float, holder: str | None = None):
        self.client = client
        self.name = name
        self.ttl_s = ttl_s
        self.settle_s = settle_s
        self.holder = holder or holder_id()
        self.token: int | None = None
        # renew (keep) and check (FencedStage) run in different threads: a server session admits
        # one query at a time (clickhouse-connect raises "concurrent queries within the same session")
        self._client_lock = threading.Lock()

    def current(self) -> Holding | None:
        with self._client_lock:
            rows = self.client.query(_CURRENT_SQL, parameters={"name": self.name}).result_rows
        if not rows:
            return None
        token, holder, remaining_ms = rows[0]
        return Holding(int(token), holder, remaining_ms / 1000)

    def _write(self, token: int, ttl_s: float) -> None:
        with self._client_lock:
            self.client.command(_WRITE_SQL, parameters={"name": self.name, "token": token, "holder": self.holder,
                                                         "ms": int(ttl_s * 1000)})

    def try_acquire(self) -> Holding | None:
        """Take the lease if nobody holds it. Returns None when taken, else who holds it."""
        now = self.current()
        if now is not None and now.remaining_s > 0 and not self._mine(now):
            return now
        token = now.token if now is not None and self._mine(now) else (now.token if now else 0) + 1
        self._write(token, self.ttl_s)
        time.sleep(self.settle_s)
        won = self.current()
        if won is not None and won.token == token and won.holder == self.holder:
            self.token = token
            log.warning("lease %s taken by %s (token %d)", self.name, self.holder, token)
            return None
        return won

    def _mine(self, holding: Holding) -> bool:
        return holding.holder == self.holder and holding.token == self.token

    async def acquire(self, on_standby: Callable[[Holding], None] | None = None, poll_s: float | None = None) -> None:
        """Take the lease, standing by while another holder keeps it."""
        poll = poll_s if poll_s is not None else max(0.05, self.ttl_s / 3)
        announced = None
        while True:
            try:
                other = await asyncio.to_thread(self.try_acquire)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("lease %s: cannot reach the warehouse, trying again: %s", self.name, exc)
                await asyncio.sleep(poll)
                continue
            if other is None:
                return
            if announced != (other.holder, other.token):
                announced = (other.holder, other.token)
                log.warning("lease %s: standing by, %s", self.name, other.describe())
                if on_standby is not None:
                    on_standby(other)
            await asyncio.sleep(min(poll, max(0.05, other.remaining_s)))

    def check(self) -> None:
        """Fencing: raise LeaseLost unless this holder still has the highest token."""
        now = self.current()
        if self.token is None or now is None or not self._mine(now):
            raise LeaseLost(f"lease {self.name}: this process ({self.holder}, token {self.token}) no longer holds "
                            f"it: {now.describe() if now else 'no holder'}; it stopped writing")

    def renew(self) -> None:
        if self.token is not None:
            self._write(self.token, self.ttl_s)

    def release(self) -> None:
        """Expire now, if still the holder: a standby takes over at its next try."""
        if self.token is not None and self._mine(self.current() or Holding(0, "", 0)):
            self._write(self.token, 0)
        self.token = None

    async def keep(self) -> None:
        """Renew every third of the lease time until cancelled (a failed renewal is retried next time;
        the fencing check before each batch is what stops a holder that lost the lease)."""
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await asyncio.to_thread(self.renew)
            except Exception as exc:  # the warehouse may be away for a while
                log.warning("lease %s: renewal failed: %s", self.name, exc)


class FencedStage:
    """A stage that checks its lease before each batch it writes."""

    def __init__(self, stage: Stage, lease: Lease):
        self.inner = stage
        self.lease = lease
        self.name = stage.name
        self.group_id = stage.group_id
        self.topics = stage.topics

    async def handle(self, records: list[ConsumerRecord]) -> None:
        await asyncio.to_thread(self.lease.check)
        await self.inner.handle(records)
