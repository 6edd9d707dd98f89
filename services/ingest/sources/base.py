"""What every source adapter shares: the request it is given, what it gives back, the vendor
authentication helpers and the small conversions (ids, times, numbers) the mappings use.

An adapter maps a vendor's payload to contract events (docs/contract/events.md). It returns a
`Mapping`: the events, the parts it could not map (each becomes a dead letter with the
original bytes and the reason) and the parts it leaves out on purpose (counted, not stored).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Mapping as MappingType

import orjson

from leadflow.config import Settings, SourceSettings

MAX_EVENT_ID = 128
UTC = timezone.utc


class AuthFailed(Exception):
    """The vendor's authentication did not hold: nothing of the request is kept."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


class Unmappable(Exception):
    """A payload (or a part of one) that cannot become a contract event: a dead letter."""


class UpstreamFailed(Exception):
    """A vendor API look-up failed: the delivery is refused (5xx) so the vendor retries it."""


@dataclass(slots=True)
class DeadPart:
    raw: bytes      # the vendor's original bytes of this part (a row, a record, the whole body)
    reason: str
    kind: str = "unmappable"  # error_kind of the dead letter: unmappable | test_lead


@dataclass
class Mapping:
    """What an adapter made of a payload. Each event keeps the vendor bytes it came from: an
    event the contract still rejects becomes a dead letter of those bytes, not of the mapping."""

    events: list[tuple[dict, bytes]] = field(default_factory=list)
    dead: list[DeadPart] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # what was left out on purpose, and why

    def event(self, event: dict, raw: bytes) -> None:
        self.events.append((event, raw))

    def unmappable(self, raw: bytes, reason: str, kind: str = "unmappable") -> None:
        self.dead.append(DeadPart(raw, reason, kind))

    def ignore(self, why: str) -> None:
        self.ignored.append(why)


@dataclass(slots=True)
class SourceRequest:
    """One HTTP delivery as the adapter sees it: raw bytes first, parsed by the adapter only
    after its vendor's authentication held."""

    method: str
    url: str                 # the URL as this server received it (scheme://host/path?query)
    headers: MappingType[str, str]
    body: bytes
    query: MappingType[str, str]
    form: list[tuple[str, str]] | None = None  # form-encoded bodies, parsed by the route


@dataclass
class SourceContext:
    """What a mapping may read besides the payload: its adapter's table of the config, the
    settings, the clock and (for adapters that look records up) a vendor API client."""

    name: str
    config: SourceSettings
    settings: Settings
    now: datetime
    api: Any = None  # services.ingest.sources.api.VendorApi for adapters that fetch

    @property
    def source(self) -> str:
        return self.config.source_name or self.name


@dataclass(frozen=True)
class FileOptions:
    """What `leadflow import` knows about a file besides its bytes."""

    reported_at: datetime        # when the vendor produced it (the file's modification time)
    timezone: str | None = None  # `--timezone`: the zone of times written without an offset


# ------------------------------------------------------------------ authentication helpers
def hmac_digest(secret: str, message: bytes, algo=hashlib.sha256) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, algo).digest()


def same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time comparison of two secrets or signatures."""
    a = a.encode("utf-8") if isinstance(a, str) else a
    b = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(a, b)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def require_secret(ctx_config: SourceSettings, name: str) -> str:
    if not ctx_config.secret:
        raise AuthFailed(f"{name}: no secret configured ([sources.{name}] secret)")
    return ctx_config.secret


def check_fresh(timestamp_s: float, now: float | None, max_age_s: float, what: str) -> None:
    now = time.time() if now is None else now
    if abs(now - timestamp_s) > max_age_s:
        raise AuthFailed(f"{what} is {abs(now - timestamp_s):.0f} s away from now (at most {max_age_s:.0f} s)")


# ------------------------------------------------------------------ conversions
def event_id(adapter: str, *parts: Any) -> str:
    """The contract event_id of a vendor record: the adapter's name and the vendor's own ids,
    so a retried delivery gives the same id (a duplicate). Too long: hashed, still stable."""
    text = ":".join([adapter, *(str(p) for p in parts)])
    if len(text) <= MAX_EVENT_ID:
        return text
    return f"{adapter}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def iso(dt: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as the contract wants it."""
    if dt.tzinfo is None:
        raise Unmappable(f"time {dt} has no offset")
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_unix(value: Any, unit: float = 1.0) -> str:
    try:
        seconds = float(value) / unit
    except (TypeError, ValueError):
        raise Unmappable(f"not a unix time: {value!r}") from None
    return iso(datetime.fromtimestamp(seconds, UTC))


def from_text_time(value: Any) -> str:
    """Vendor time strings: ISO 8601 with `Z`, `+00:00` or `+0000`, and `2020-03-03 13:05:57 UTC`."""
    if not isinstance(value, str) or not value.strip():
        raise Unmappable(f"not a time: {value!r}")
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":" and text[-4:].isdigit():
        text = text[:-2] + ":" + text[-2:]  # +0000 -> +00:00
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise Unmappable(f"not an ISO 8601 time: {value!r}") from None
    if dt.tzinfo is None:
        raise Unmappable(f"time without offset: {value!r}")
    return iso(dt)


def from_rfc2822(value: Any) -> str:
    try:
        return iso(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        raise Unmappable(f"not an RFC 2822 time: {value!r}") from None


def decimal_text(value: Any, what: str) -> str:
    """A money amount as a decimal string (`1,234.56` and `"12.5"` accepted)."""
    text = str(value).replace(",", "").strip() if value is not None else ""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise Unmappable(f"{what} is not a number: {value!r}") from None
    if not number.is_finite():
        raise Unmappable(f"{what} is not a number: {value!r}")
    return format(number, "f")


def count_int(value: Any, what: str) -> int | None:
    if value is None or str(value).strip() in ("", "--"):
        return None
    try:
        return int(str(value).replace(",", "").strip())
    except ValueError:
        raise Unmappable(f"{what} is not a whole number: {value!r}") from None


def load_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Unmappable(f"not JSON: {exc}") from None


def describe(exc: Exception) -> str:
    """Why a mapping failed, in one line (a missing key says which)."""
    if isinstance(exc, KeyError):
        return f"field {exc.args[0]!r} missing"
    if isinstance(exc, Unmappable):
        return str(exc)
    return f"unexpected shape ({type(exc).__name__}: {exc})"


def identity(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}
