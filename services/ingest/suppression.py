"""Identity values erased by `leadflow forget` stay out: events that carry one (or belong to
one of the person's conversations or calls, whose other events carry no identity) are
dropped and counted (`leadflow_events_suppressed_total{stage,type}`), never produced or
stored; at ingest, so are new dead letters whose bytes hold one of the values.

The list lives in the warehouse (`suppressed_keys`, migration 0021) as digests of the keyed
hashes (leadflow.privacy.suppression_digest). Two places check it:

* ingest (`Suppression`, used by the Publisher): the digests in memory, reloaded in the
  background every few seconds, so a request never waits for the warehouse; when the
  warehouse cannot be read, the last known set stays;
* the warehouse sink and enrich (`drop_suppressed`): each batch against the table as it is
  now (a tiny table: one row per forgotten identity value), so a replayed old file, or an
  event produced before the forget, is not stored, and a retried batch decides the same.
"""
from __future__ import annotations

import base64
import logging
import threading
import time
import weakref
from collections import Counter
from typing import Any, Iterable, TypeVar

import orjson
from clickhouse_connect.driver.client import Client

from leadflow import metrics
from leadflow.privacy import IdentityHasher, hashes_in, suppression_digest
from leadflow.warehouse import stage_client

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0
_T = TypeVar("_T")


def load_digests(client: Client) -> frozenset[str]:
    return frozenset(row[0] for row in client.query("SELECT DISTINCT digest FROM suppressed_keys").result_rows)


def suppressed_names(event: dict[str, Any]) -> list[str]:
    """What of a (hashed) event the list can hold: its identity values, `conversation:<id>`, `call:<id>`."""
    names = list((event.get("identity") or {}).values())
    for field in ("conversation_id", "call_id"):
        if event.get(field):
            names.append(f"{field[:-3]}:{event[field]}")
    return names


def carries(event: dict[str, Any], digests: frozenset[str]) -> bool:
    """Whether the (hashed) event holds a suppressed identity value, conversation or call."""
    return bool(digests) and any(suppression_digest(name) in digests for name in suppressed_names(event))


def count_suppressed(stage: str, types: Iterable[str]) -> int:
    counts = Counter(types)
    for event_type, n in counts.items():
        label = event_type if event_type == "dead_letter" else metrics.type_label(event_type)
        metrics.EVENTS_SUPPRESSED.labels(stage=stage, type=label).inc(n)
    return sum(counts.values())


def bytes_carry(raw: bytes, digests: frozenset[str], hasher: IdentityHasher) -> bool:
    """Whether original bytes (a dead letter's) hold a suppressed identity value in a form we recognise."""
    return bool(digests) and any(suppression_digest(key) in digests for key in hashes_in(raw, hasher))


def drop_suppressed_dead_letters(client: Client, messages: list[dict], hasher: IdentityHasher) -> list[dict]:
    """The batch's dead-letter messages without those whose original bytes hold a suppressed value."""
    digests = load_digests(client)
    if not digests:
        return messages
    kept = [m for m in messages if not bytes_carry(base64.b64decode(m["raw_b64"]), digests, hasher)]
    count_suppressed("deadletter-sink", ["dead_letter"] * (len(messages) - len(kept)))
    return kept


def drop_suppressed(client: Client, events: list[tuple[_T, dict]], stage: str) -> tuple[list[tuple[_T, dict]], int]:
    """The batch's (record, event) pairs without those that carry a suppressed value, and how
    many were dropped (counted in the metric under `stage`)."""
    digests = load_digests(client)
    if not digests:
        return events, 0
    kept, dropped = [], []
    for pair in events:
        (dropped if carries(pair[1], digests) else kept).append(pair)
    return kept, count_suppressed(stage, (event["type"] for _, event in dropped))


class Suppression:
    """The suppressed digests in memory, for ingest. `digests` gives a fixed set (a replay's
    publishing process, which cannot open the embedded warehouse); `client` loads it and keeps
    it fresh from a daemon thread every `refresh_seconds` (the thread ends with this object)."""

    def __init__(self, digests: Iterable[str] = (), *, secret: str, client: Client | None = None,
                 refresh_seconds: float = REFRESH_SECONDS):
        self.digests = frozenset(digests)
        self.hasher = IdentityHasher(secret)  # for the values inside dead letters' bytes
        self.dropped = 0
        if client is not None:
            self.refresh(client)
            threading.Thread(target=_keep_fresh, args=(weakref.ref(self), client, refresh_seconds),
                             name="suppression-refresh", daemon=True).start()

    @classmethod
    def following(cls, client: Client | None, settings) -> "Suppression":
        """Kept fresh from the warehouse when there is one (its own session on a server: the
        thread must not share the request path's), else empty."""
        if client is None:
            return cls(secret=settings.identity_secret)
        return cls(secret=settings.identity_secret, client=stage_client(settings, client))

    def refresh(self, client: Client) -> None:
        try:
            self.digests = load_digests(client)
        except Exception as exc:  # keep the last known set; the next refresh tries again
            log.warning("suppression list not refreshed (keeping %d known): %s", len(self.digests), exc)

    def holds(self, result) -> bool:
        """Whether a validated line (services.ingest.validate: AcceptedEvent or DeadLetter) must be
        dropped; counts it when so."""
        if not self.digests:
            return False
        if hasattr(result, "raw"):  # a dead letter: the values as sent, somewhere in its bytes
            if not bytes_carry(result.raw, self.digests, self.hasher):
                return False
            self.dropped += count_suppressed("ingest", ("dead_letter",))
            return True
        if not carries(orjson.loads(result.value), self.digests):
            return False
        self.dropped += count_suppressed("ingest", (result.type,))
        return True


def _keep_fresh(ref: "weakref.ref[Suppression]", client: Client, seconds: float) -> None:
    while True:
        time.sleep(seconds)
        suppression = ref()
        if suppression is None:
            return
        suppression.refresh(client)
        del suppression
