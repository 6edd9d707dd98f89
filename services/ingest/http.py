"""HTTP ingest: `POST /v1/events`, `GET /healthz`, `GET /metrics`.

The body is a JSON array of events or JSON Lines. Each event gets a status in
the response: accepted (produced to the raw topic), duplicate (its event_id is
already stored or was just accepted), or rejected (with every error; the
original bytes go to the dead-letter topic). Bodies over `max_body_bytes` get
413 and nothing of them is processed.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from leadflow import warehouse
from leadflow.broker import broker_for
from leadflow.config import Settings
from leadflow.pipeline import Pipeline
from services.ingest.publish import Publisher
from services.ingest.validate import InputOccurrences, Validator

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("publisher", Publisher)
SETTINGS = web.AppKey("settings", Settings)
HEALTH = web.AppKey("health", object)  # () -> (healthy, report): Pipeline.health


def split_body(body: bytes) -> list[bytes]:
    """A JSON array becomes one item per element; anything else is JSON Lines."""
    stripped = body.strip()
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return [stripped]  # rejected as not JSON, bytes kept
        if isinstance(items, list):
            return [orjson.dumps(item) for item in items]
    return [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]


async def post_events(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.read()  # aiohttp enforces client_max_size while reading
    lines = split_body(body)
    source = request.headers.get("X-Leadflow-Source", "http")
    statuses = await request.app[PUBLISHER].publish(lines, origin="http", default_source=source,
                                                    occurrences=InputOccurrences())
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
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


async def metrics_endpoint(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest())
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


def make_app(settings: Settings, publisher: Publisher, health=None) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[PUBLISHER] = publisher
    if health is not None:
        app[HEALTH] = health
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app


@contextlib.asynccontextmanager
async def running_app(settings: Settings, pipe: Pipeline, client, host: str, port: int):
    publisher = Publisher(Validator(settings), pipe.producer, pipe.topics, max_event_bytes=settings.max_event_bytes,
                          warehouse=client)
    runner = web.AppRunner(make_app(settings, publisher, pipe.health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield runner.addresses[0], publisher
    finally:
        await runner.cleanup()


async def serve(settings: Settings, ingest_only: bool = False) -> None:
    """HTTP ingest. Embedded default: every stage runs in this process behind it. `ingest_only`
    (production, with LEADFLOW_KAFKA_BOOTSTRAP): only validate and produce; `leadflow worker`
    processes run the stages."""
    client = warehouse.open_warehouse(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with broker_for(settings) as bootstrap:
        async with (Pipeline(settings, bootstrap, client, single_process=False, stages=()) if ingest_only
                    else Pipeline(settings, bootstrap, client)) as pipe:
            async with running_app(settings, pipe, client, settings.http_host, settings.http_port) as (addr, _):
                print(f"leadflow ingest listening on http://{addr[0]}:{addr[1]} (POST /v1/events, GET /metrics)",
                      flush=True)
                await pipe.run_until(stop)  # a stage that gives up ends serve with an error
