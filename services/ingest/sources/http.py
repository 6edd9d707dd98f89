"""`POST /v1/sources/ADAPTER` (and `GET /v1/sources/meta-lead-ads`, Meta's subscription check).

Each route is authenticated by its vendor's own scheme on the raw bytes (no leadflow key), then
mapped and published. Answers: 200 with the counts (accepted, duplicate, dead_letters, ignored)
once everything is on the broker, including payloads that became dead letters (a vendor retries
anything else, and a retry would change nothing); 401/403 when the vendor's authentication
fails (nothing is kept); 404 for an adapter that does not exist or is not configured; 502 when a
vendor API look-up fails, 503 when the broker does not take the events (nothing is kept either
way, so the vendor's retry brings it again).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from prometheus_client import Counter

from leadflow.config import Settings
from services.ingest.publish import Publisher
from services.ingest.sources.api import VendorApi
from services.ingest.sources.base import AuthFailed, Mapping, SourceContext, SourceRequest, UpstreamFailed
from services.ingest.sources.deliver import deliver
from services.ingest.sources.registry import HTTP_ADAPTERS

log = logging.getLogger(__name__)
FORM = "application/x-www-form-urlencoded"
# a rotated secret or a moved URL refuses every delivery of a vendor: this shows it
REFUSED = Counter("leadflow_source_deliveries_refused_total",
                  "Vendor deliveries refused (authentication failed, vendor API look-up failed)", ["adapter", "status"])


def _error(status: int, message: str) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json")


class SourceRoutes:
    def __init__(self, settings: Settings, publisher: Publisher):
        self.settings = settings
        self.publisher = publisher
        self.api = VendorApi()

    def _adapter(self, request: web.Request):
        name = request.match_info["adapter"]
        adapter = HTTP_ADAPTERS.get(name)
        if adapter is None or name not in self.settings.sources:
            return name, None, None
        ctx = SourceContext(name, self.settings.sources[name], self.settings, datetime.now(timezone.utc), self.api)
        return name, adapter, ctx

    async def _request(self, request: web.Request) -> SourceRequest:
        body = await request.read()  # aiohttp enforces client_max_size while reading
        form = None
        if request.content_type == FORM:
            try:
                form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                form = []
        return SourceRequest(method=request.method, url=str(request.url), headers=request.headers, body=body,
                             query=request.query, form=form)

    async def post(self, request: web.Request) -> web.Response:
        name, adapter, ctx = self._adapter(request)
        if adapter is None:
            return _error(404, f"no source adapter {name!r} configured ([sources.{name}] in the config)")
        req = await self._request(request)
        try:
            adapter.authenticate(req, ctx)
        except AuthFailed as exc:
            log.warning("source %s: refused: %s", name, exc)
            REFUSED.labels(adapter=name, status=str(exc.status)).inc()
            return _error(exc.status, str(exc))
        try:
            mapping = await adapter.map_request(req, ctx)
        except UpstreamFailed as exc:
            log.warning("source %s: vendor API look-up failed: %s", name, exc)
            REFUSED.labels(adapter=name, status="502").inc()
            return _error(502, str(exc))
        except Exception as exc:  # an authenticated payload the adapter did not foresee: kept, not lost
            log.exception("source %s: adapter failed", name)
            mapping = Mapping()
            mapping.unmappable(req.body, f"{name} adapter failed on this payload: {type(exc).__name__}: {exc}")
        try:
            result = await deliver(self.publisher, mapping, source=ctx.source, origin=f"source:{name}")
        except Exception as exc:  # the broker did not take them: nothing is acknowledged, the vendor retries
            log.exception("source %s: publishing failed", name)
            return web.Response(body=orjson.dumps({"error": f"not stored, send again: {type(exc).__name__}: {exc}"}),
                                status=503, headers={"Retry-After": "5"}, content_type="application/json")
        return web.Response(body=orjson.dumps({"adapter": name, **result.as_dict()}), status=200,
                            content_type="application/json")

    async def get(self, request: web.Request) -> web.Response:
        name, adapter, ctx = self._adapter(request)
        if adapter is None or not hasattr(adapter, "challenge"):
            return _error(404, f"no source adapter {name!r} with a GET verification configured")
        req = await self._request(request)
        try:
            return web.Response(text=adapter.challenge(req, ctx), content_type="text/plain")
        except AuthFailed as exc:
            return _error(exc.status, str(exc))

    async def close(self, app: web.Application) -> None:
        await self.api.close()


def add_source_routes(app: web.Application, settings: Settings, publisher: Publisher) -> None:
    """The vendors' routes, authenticated by each vendor's scheme (not by leadflow keys)."""
    routes = SourceRoutes(settings, publisher)
    app.router.add_post("/v1/sources/{adapter}", routes.post)
    app.router.add_get("/v1/sources/{adapter}", routes.get)
    app.on_cleanup.append(routes.close)
