"""HTTP ingest: `POST /v1/events`, `GET /healthz`, `GET /metrics`.

The body is a JSON array of events or JSON Lines. Each event gets a status in
the response: accepted (the broker has it), duplicate (its event_id came earlier
in the same request), or rejected (with every error; the original bytes go to
the dead-letter topic). The answer comes only after the broker acknowledged
every event of the request: a broker that fails or is too slow gets the client a
503 with Retry-After and nothing is reported stored, so the retry lands (the
warehouse sink drops event_ids it already has).

With write keys (`leadflow keys`; `serve` without `--no-auth`), a request needs
one (HTTP Basic with the key as user name and an empty password, or Bearer):
none or unknown 401, revoked 403, over the key's quota 429 with Retry-After.
Limits: `max_body_bytes` (413, checked before the body is read),
`max_events_per_request` (413), header and body read timeouts (408).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import os

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from leadflow.config import Settings
from services.ingest.body import BodyRefused, read_body, split_body
from services.ingest.keys import IngestKey, KeyStore
from services.ingest.publish import PublishError, Publisher
from services.ingest.quota import Quotas
from services.ingest.sources.http import add_source_routes
from services.ingest.validate import InputOccurrences

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("publisher", Publisher)
SETTINGS = web.AppKey("settings", Settings)
HEALTH = web.AppKey("health", object)  # () -> (healthy, report): Pipeline.health
KEYS = web.AppKey("keys", KeyStore)  # absent: no authentication (--no-auth, in-process callers)
QUOTAS = web.AppKey("quotas", object)  # Quotas or SharedQuotas: retry_after(key_id, rate, burst, events)
BIG_BODIES = web.AppKey("big_bodies", asyncio.Semaphore)
METRICS = web.AppKey("metrics", object)  # the prometheus_client registry /metrics shows

BROKER_RETRY_AFTER_S = 5
# Bodies over this size (or of unknown size) are read and processed two at a time, so many
# large hostile requests at once cost two bodies of memory, not all of them.
BIG_BODY_BYTES = 256 * 1024
BIG_BODIES_AT_ONCE = 2


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json",
                        headers=headers)


def presented_key(request: web.Request) -> str | None:
    """The key of `Authorization: Bearer KEY` or `Basic base64(KEY:)`, else None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user if sep and not password and user else None
    return None


_UNAUTHORIZED = {"WWW-Authenticate": 'Basic realm="leadflow ingest", charset="UTF-8"'}


def authenticate(request: web.Request) -> IngestKey | None | web.Response:
    """The request's key, None without authentication, or the 401/403 answer."""
    store = request.app.get(KEYS)
    if store is None:
        return None
    key = presented_key(request)
    if key is None:
        return _error(401, "a write key is required: HTTP Basic with the key as user name and an empty "
                           "password, or Authorization: Bearer KEY", _UNAUTHORIZED)
    record = store.lookup(key)
    if record is None:
        return _error(401, "unknown write key", _UNAUTHORIZED)
    if record.revoked:
        return _error(403, f"write key {record.key_id} is revoked")
    return record


async def post_events(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    auth = authenticate(request)
    if isinstance(auth, web.Response):
        return auth
    quotas = request.app[QUOTAS]
    if auth is not None:
        wait = quotas.retry_after(auth.key_id, auth.rate, auth.burst, 0)
        if wait:
            return _error(429, f"over the quota of write key {auth.key_id} ({auth.rate:g} events/s)",
                          {"Retry-After": str(wait)})
    gate = None
    if request.content_length is None or request.content_length > BIG_BODY_BYTES:
        try:
            await asyncio.wait_for(request.app[BIG_BODIES].acquire(), timeout=settings.http_body_timeout_s)
        except asyncio.TimeoutError:
            return _error(503, "too many large requests at once", {"Retry-After": "1"})
        gate = request.app[BIG_BODIES]
    try:
        try:
            body = await read_body(request, settings.max_body_bytes, settings.http_body_timeout_s)
            lines = split_body(body, settings.max_events_per_request, settings.max_event_bytes)
        except BodyRefused as refused:
            response = _error(refused.status, refused.message, refused.headers)
            if refused.status in (408, 413):
                response.force_close()  # the rest of the body is not read
            return response
        del body
        if auth is not None:
            wait = quotas.retry_after(auth.key_id, auth.rate, auth.burst, len(lines))
            if wait:
                return _error(429, f"over the quota of write key {auth.key_id} ({auth.rate:g} events/s, "
                                   f"burst {auth.burst})", {"Retry-After": str(wait)})
            source, key_source = auth.source, auth.source
        else:
            source, key_source = request.headers.get("X-Leadflow-Source", "http"), None
        try:
            statuses = await request.app[PUBLISHER].publish(lines, origin="http", default_source=source,
                                                            occurrences=InputOccurrences(), key_source=key_source)
        except PublishError as exc:
            log.warning("ingest answered 503: %s", exc)
            return _error(503, "the broker did not acknowledge the events; nothing was stored: retry",
                          {"Retry-After": str(BROKER_RETRY_AFTER_S)})
    finally:
        if gate is not None:
            gate.release()
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "suppressed": 0}
    for s in statuses:
        counts[s.status] += 1
    payload = {"received": len(statuses), **counts, "events": [s.as_dict() for s in statuses]}
    status = 200 if counts["rejected"] == 0 else 207 if counts["rejected"] < len(statuses) else 422
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    health = request.app.get(HEALTH)
    if health is None:
        return web.json_response({"status": "ok"})
    healthy, report = health()
    return web.json_response(report, status=200 if healthy else 503)


def _metrics_registry():
    """The default registry, or, in ingest processes that share a port (`serve --processes`, with
    PROMETHEUS_MULTIPROC_DIR), one that sums every process's metrics: whichever process a scrape
    reaches answers for all of them."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


async def metrics_endpoint(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest(request.app[METRICS]))
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


def make_app(settings: Settings, publisher: Publisher, keys: KeyStore | None = None,
             health=None, quotas=None) -> web.Application:
    """`keys`: the write keys requests must carry; None serves without authentication. `health`:
    () -> (healthy, report) for /healthz (Pipeline.health). `quotas`: the keys' buckets
    (services.ingest.quota: SharedQuotas when several processes serve one port), else this app's."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[PUBLISHER] = publisher
    if keys is not None:
        app[KEYS] = keys
    if health is not None:
        app[HEALTH] = health
    app[QUOTAS] = quotas if quotas is not None else Quotas()
    app[BIG_BODIES] = asyncio.Semaphore(BIG_BODIES_AT_ONCE)
    app[METRICS] = _metrics_registry()
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
    add_source_routes(app, settings, publisher)  # vendors' webhooks, each authenticated by its vendor's scheme
    return app


class _TimedRequestHandler(RequestHandler):
    """aiohttp's connection handler, where a connection that has not sent its first request head
    within the header timeout gets 408 and is closed (aiohttp itself only closes it after the
    keep-alive timeout, set to the header timeout + 1 s: it also bounds the heads that follow)."""

    def __init__(self, *args, header_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = self._loop.call_later(self._header_timeout_s, self._header_deadline)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self._request_count == 0 and self.transport is not None and not self._force_close:
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            self.force_close()
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is not None and self._request_count:  # the first head is in
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


class _TimedServer(web.Server):
    def __init__(self, *args, header_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s

    def __call__(self) -> RequestHandler:
        return _TimedRequestHandler(self, loop=self._loop, header_timeout_s=self._header_timeout_s, **self._kwargs)


class _AppRunner(web.AppRunner):
    def __init__(self, app: web.Application, *, header_timeout_s: float, **kwargs):
        super().__init__(app, **kwargs)
        self._header_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        timed = _TimedServer(server.request_handler, request_factory=server.request_factory,
                             handler_cancellation=server.handler_cancellation, loop=server._loop,
                             header_timeout_s=self._header_timeout_s, **server._kwargs)
        return timed


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
