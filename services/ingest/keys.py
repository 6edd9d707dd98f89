"""Write keys of HTTP ingest (`leadflow keys`, contract v1.1 section 5).

A key reads `lfk_<key_id>_<secret>`. The warehouse keeps its id, source, quota and the
SHA-256 of the whole key, never the key. Ingest checks a key against an in-memory copy
of the table (`KeyStore`), reloaded in the background: no warehouse query per request,
and while the warehouse is down the last keys known stay in force.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from clickhouse_connect.driver.client import Client

from leadflow.secret_guard import redact

log = logging.getLogger(__name__)

_KEY = re.compile(r"^lfk_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")
_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
KEY_COLUMNS = ["key_id", "source", "key_sha256", "rate", "burst", "created_at", "revoked_at", "version"]


class KeyArgumentError(ValueError):
    """A `leadflow keys` argument that cannot be used."""


@dataclass(frozen=True, slots=True)
class IngestKey:
    key_id: str
    source: str
    key_sha256: str
    rate: float  # events per second
    burst: int  # events
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "source": self.source, "rate": self.rate, "burst": self.burst,
                "created_at": _iso(self.created_at), "revoked_at": _iso(self.revoked_at) if self.revoked_at else None}


def _iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _version() -> int:
    return time.time_ns()


def create_key(client: Client, source: str, rate: float, burst: int | None) -> tuple[IngestKey, str]:
    """Store a new key for `source`; returns its record and the key (shown once, never stored)."""
    if not _SOURCE.match(source):
        raise KeyArgumentError(f"--source must be 1-64 letters, digits or _.:- (got {source!r})")
    if not (rate > 0 and math.isfinite(rate)):
        raise KeyArgumentError("--rate must be > 0 events per second (a finite number)")
    burst = burst if burst is not None else max(100, int(rate * 2))
    if burst < 1:
        raise KeyArgumentError("--burst must be at least 1 event")
    key_id = secrets.token_hex(8)
    key = f"lfk_{key_id}_{secrets.token_urlsafe(32)}"
    record = IngestKey(key_id, source, key_digest(key), float(rate), int(burst), datetime.now(timezone.utc), None)
    _insert(client, record)
    return record, key


def _insert(client: Client, record: IngestKey) -> None:
    client.insert("ingest_keys", [(record.key_id, record.source, record.key_sha256, record.rate, record.burst,
                                   record.created_at, record.revoked_at, _version())], column_names=KEY_COLUMNS)


def load_keys(client: Client) -> dict[str, IngestKey]:
    rows = client.query(
        "SELECT key_id, source, key_sha256, rate, burst, created_at, revoked_at FROM ingest_keys FINAL "
        "ORDER BY created_at, key_id").result_rows
    return {row[0]: IngestKey(*row) for row in rows}


def revoke_key(client: Client, key_id: str) -> IngestKey:
    keys = load_keys(client)
    if key_id not in keys:
        raise KeyArgumentError(f"no key with id {key_id!r} (see `leadflow keys list`)")
    record = keys[key_id]
    if record.revoked:
        return record
    revoked = IngestKey(record.key_id, record.source, record.key_sha256, record.rate, record.burst,
                        record.created_at, datetime.now(timezone.utc))
    _insert(client, revoked)
    return revoked


class KeyStore:
    """The keys ingest accepts, in memory; `run()` reloads them every `refresh_s` seconds."""

    def __init__(self, client: Client, refresh_s: float):
        self.client = client
        self.refresh_s = refresh_s
        self.keys: dict[str, IngestKey] = {}
        self.loaded_at: float | None = None

    def refresh(self) -> None:
        self.keys = load_keys(self.client)
        self.loaded_at = time.monotonic()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:  # warehouse down: keep the last keys known
                log.warning("ingest keys not reloaded (keeping the %d known): %s", len(self.keys),
                            redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)

    def lookup(self, presented: str) -> IngestKey | None:
        """The key record `presented` matches (revoked ones too), or None. Compared in constant time."""
        m = _KEY.match(presented)
        record = self.keys.get(m["id"]) if m else None
        if record is None:
            key_digest(presented)  # same work whether or not the id exists
            return None
        return record if hmac.compare_digest(key_digest(presented), record.key_sha256) else None
