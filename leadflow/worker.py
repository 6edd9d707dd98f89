"""`leadflow worker --stage ...`: stages as long-running consumer-group members (production).

Each stage is one consumer group; run as many workers of a stage as its input
topic has partitions. The enrich stage keeps the identity graph in memory and
is its single writer: run exactly one enrich worker (it restarts from the
warehouse). Sinks and attribution scale out.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from leadflow import warehouse
from leadflow.config import ConfigError, Settings
from leadflow.pipeline import Pipeline

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, stages: tuple[str, ...], metrics_port: int | None = None,
                     stop: asyncio.Event | None = None) -> None:
    if not settings.kafka_bootstrap:
        raise ConfigError("leadflow worker joins shared consumer groups: set LEADFLOW_KAFKA_BOOTSTRAP "
                          "(and LEADFLOW_CLICKHOUSE_URL); the embedded default runs every stage in "
                          "`leadflow replay` / `leadflow serve`")
    client = warehouse.open_warehouse(settings)
    if metrics_port is not None:
        start_http_server(metrics_port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    async with Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=stages) as pipe:
        log.warning("worker running stage(s) %s against %s", ", ".join(stages), settings.kafka_bootstrap)
        await pipe.run_until(stop)
