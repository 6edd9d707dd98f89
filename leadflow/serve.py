"""`leadflow serve`: the HTTP ingest app (services/ingest/http.py) in front of a Pipeline.

`running_app` runs the app on host:port producing through its own producer (tests use it too);
`serve` wires it to the broker, the warehouse and the stages (or only the broker: `--ingest-only`)."""
from __future__ import annotations

import asyncio
import contextlib
import signal

from aiohttp import web

from leadflow import warehouse
from leadflow.broker import broker_for
from leadflow.config import Settings
from leadflow.pipeline import Pipeline, settle_gc
from leadflow.stream import start_producer
from services.ingest.http import _AppRunner, make_app
from services.ingest.keys import KeyStore
from services.ingest.publish import Publisher
from services.ingest.quota import Quotas, SharedQuotas
from services.ingest.suppression import Suppression
from services.ingest.validate import Validator


@contextlib.asynccontextmanager
async def running_app(settings: Settings, pipe: Pipeline, client, host: str, port: int, *,
                      keys: KeyStore | None = None, suppression: Suppression | None = None,
                      quotas: Quotas | SharedQuotas | None = None, reuse_port: bool = False):
    """The ingest app on host:port, producing through its own idempotent producer. `keys`: require
    write keys (refreshed in the background while the app runs, when the store has a warehouse
    client); None: no authentication. `suppression`, `quotas`: given by the process that owns
    them (several ingest processes on one port, `reuse_port`); by default this process's own."""
    producer = await start_producer(pipe.bootstrap, idempotent=True, linger_ms=settings.ingest_linger_ms)
    publisher = Publisher(Validator(settings), producer, pipe.topics, max_event_bytes=settings.max_event_bytes,
                          report_repeats=True, produce_timeout_s=settings.produce_timeout_s,
                          suppression=suppression or Suppression.following(client, settings))
    refresher = None
    if keys is not None and keys.client is not None:
        await asyncio.to_thread(keys.refresh)
        refresher = asyncio.create_task(keys.run(), name="ingest-keys")
    runner = _AppRunner(make_app(settings, publisher, keys, pipe.health, quotas=quotas), access_log=None,
                        header_timeout_s=settings.http_header_timeout_s,
                        keepalive_timeout=settings.http_header_timeout_s + 1)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    try:
        yield runner.addresses[0], publisher
    finally:
        await runner.cleanup()
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        await producer.stop()


async def serve(settings: Settings, ingest_only: bool = False, auth: bool = True) -> None:
    """HTTP ingest. Embedded default: every stage runs in this process behind it. `ingest_only`
    (production, with LEADFLOW_KAFKA_BOOTSTRAP): only validate and produce; `leadflow worker`
    processes run the stages. `auth`: require write keys (`--no-auth` only on loopback)."""
    client = warehouse.open_warehouse(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    keys = KeyStore(client, settings.keys_refresh_s) if auth else None
    with broker_for(settings) as bootstrap:
        async with (Pipeline(settings, bootstrap, client, single_process=False, stages=()) if ingest_only
                    else Pipeline(settings, bootstrap, client)) as pipe:
            async with running_app(settings, pipe, client, settings.http_host, settings.http_port,
                                   keys=keys) as (addr, _):
                how = (f"{len(keys.keys)} write key(s); `leadflow keys create --source NAME` adds one"
                       if keys is not None else "NO AUTHENTICATION")
                if ingest_only:  # (stages keep making and dropping big structures: no freeze there)
                    settle_gc()
                print(f"leadflow ingest listening on http://{addr[0]}:{addr[1]} (POST /v1/events, GET /metrics; "
                      f"{how})", flush=True)
                await pipe.run_until(stop)  # a stage that gives up ends serve with an error
