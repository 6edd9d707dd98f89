"""`leadflow serve --ingest-only --processes N`: N ingest processes on one port (SO_REUSEPORT).

One event loop validates and produces on one core; a host with more cores runs several. The
kernel spreads the port's connections over the processes; each has its own producer. This
process stays the one that holds the warehouse (the embedded one opens in one process only):
it checks the identity secret and the topics as `serve` does, reads the write keys and the
suppression list, and hands every change to the ingest processes through a pipe each. The
keys' quotas are token buckets in shared memory (services.ingest.quota.SharedQuotas), so a key
gets its quota once, not once per process, and the metrics are prometheus_client's
multiprocess files, so /metrics, whichever process answers, counts for all. An ingest
process that exits ends `serve` with an error; SIGTERM or SIGINT here stops them all.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass

import uvloop

from leadflow import warehouse
from leadflow.broker import broker_for
from leadflow.config import Settings
from leadflow.pipeline import Pipeline, settle_gc
from leadflow.secret_guard import redact
from leadflow.topics import Topics, topics_for
from services.ingest.keys import KeyStore
from services.ingest.quota import SharedQuotas
from services.ingest.suppression import Suppression

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0


class ServeError(RuntimeError):
    """An ingest process did not start, or stopped on its own."""


@dataclass(frozen=True)
class _NoStages:
    """What the ingest app needs of a pipeline, in an ingest process that runs no stage."""

    bootstrap: str
    topics: Topics

    def health(self) -> tuple[bool, dict]:
        return True, {"status": "ok", "stages": {}}


def _reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to host:port with SO_REUSEPORT: port 0 becomes one free port
    that every ingest process then binds too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _ingest_process(settings: Settings, bootstrap: str, auth: bool, quotas: SharedQuotas, updates, ready) -> None:
    """One ingest process (the target of multiprocessing's spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the parent, which stops us
    keys = KeyStore(None, settings.keys_refresh_s) if auth else None
    suppression = Suppression(secret=settings.identity_secret)
    uvloop.run(_serve_one(settings, bootstrap, keys, suppression, quotas, updates, ready))


async def _serve_one(settings, bootstrap, keys, suppression, quotas, updates, ready) -> None:
    from leadflow.serve import running_app

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def apply(snapshot) -> None:
        known, digests = snapshot
        if keys is not None:
            keys.keys = known
        suppression.digests = digests

    apply(await loop.run_in_executor(None, updates.recv))

    def follow() -> None:  # the parent's changes, until it goes away
        while True:
            try:
                snapshot = updates.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(stop.set)
                return
            loop.call_soon_threadsafe(apply, snapshot)

    threading.Thread(target=follow, name="ingest-updates", daemon=True).start()
    async with running_app(settings, _NoStages(bootstrap, topics_for(settings)), None, settings.http_host,
                           settings.http_port, keys=keys, suppression=suppression, quotas=quotas, reuse_port=True):
        settle_gc()
        ready.put(os.getpid())
        await stop.wait()


def serve_processes(settings: Settings, processes: int, auth: bool = True) -> None:
    """Run `processes` ingest processes on settings.http_host:http_port until SIGTERM/SIGINT."""
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    client = warehouse.open_warehouse(settings)
    reserved = _reserve_port(settings.http_host, settings.http_port)
    port = reserved.getsockname()[1]
    settings = settings.model_copy(update={"http_port": port})
    keys = KeyStore(client, settings.keys_refresh_s) if auth else None
    with broker_for(settings) as bootstrap:
        # the checks `serve` makes before anything is written: the identity secret, the topics
        asyncio.run(_check(settings, bootstrap, client))
        if keys is not None:
            keys.refresh()
        suppression = Suppression.following(client, settings)
        # counters in files shared by the ingest processes (prometheus_client's multiprocess mode, read
        # when prometheus_client is imported, so set before they start): /metrics sums them all
        metrics_dir = tempfile.mkdtemp(prefix="leadflow-ingest-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        context = multiprocessing.get_context("spawn")
        quotas = SharedQuotas(context, processes)
        ready = context.Queue()
        children, pipes = [], []
        try:
            for i in range(processes):
                reader, writer = context.Pipe(duplex=False)
                child = context.Process(target=_ingest_process, name=f"leadflow-ingest-{i}",
                                        args=(settings, bootstrap, auth, quotas, reader, ready))
                child.start()
                reader.close()
                snapshot = (dict(keys.keys) if keys is not None else {}, suppression.digests)
                writer.send(snapshot)
                children.append(child)
                pipes.append(writer)
            _wait_ready(children, ready, stopping)
            if stopping.is_set():  # stopped while starting
                return
            how = (f"{len(keys.keys)} write key(s); `leadflow keys create --source NAME` adds one"
                   if keys is not None else "NO AUTHENTICATION")
            print(f"leadflow ingest listening on http://{settings.http_host}:{port} (POST /v1/events, GET /metrics; "
                  f"{how}; {processes} processes)", flush=True)
            _supervise(settings, children, pipes, keys, suppression, snapshot, stopping)
        finally:
            for writer in pipes:
                writer.close()
            _stop(children)
            reserved.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)


async def _check(settings: Settings, bootstrap: str, client) -> None:
    async with Pipeline(settings, bootstrap, client, single_process=False, stages=()):
        pass


def _wait_ready(children, ready, stopping: threading.Event) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    started = 0
    while started < len(children):
        if stopping.is_set():
            return
        for child in children:
            if child.exitcode is not None:
                raise ServeError(f"ingest process {child.name} exited at start with code {child.exitcode}")
        if time.monotonic() > deadline:
            raise ServeError(f"the ingest processes did not start within {START_TIMEOUT_S:.0f} s")
        with contextlib.suppress(Exception):
            ready.get(timeout=0.2)
            started += 1


def _supervise(settings, children, pipes, keys, suppression, snapshot, stopping: threading.Event) -> None:
    """Until stopped: hand the ingest processes every change of the keys or the suppression list;
    an ingest process that exits is an error."""
    next_keys = time.monotonic() + settings.keys_refresh_s
    while not stopping.wait(0.2):
        for child in children:
            if child.exitcode is not None:
                raise ServeError(f"ingest process {child.name} stopped with code {child.exitcode}")
        if keys is not None and time.monotonic() >= next_keys:
            next_keys = time.monotonic() + settings.keys_refresh_s
            try:
                keys.refresh()
            except Exception as exc:  # warehouse down: the last keys known stay in force
                log.warning("ingest keys not reloaded (keeping the %d known): %s", len(keys.keys),
                            redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)
        current = (dict(keys.keys) if keys is not None else {}, suppression.digests)
        if current != snapshot:
            snapshot = current
            for writer in pipes:
                writer.send(snapshot)


def _stop(children) -> None:
    for child in children:
        if child.exitcode is None:
            child.terminate()
    deadline = time.monotonic() + 20
    for child in children:
        child.join(max(0.1, deadline - time.monotonic()))
        if child.exitcode is None:
            child.kill()
            child.join()
