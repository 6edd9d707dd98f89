"""The two topologies as real processes, for the fault suite and the production-topology test.

* `Production`: a standalone broker (Tansu; on moto's S3 server when `durable_broker`, so a
  killed broker restarted on its port keeps its log), the warehouse over ClickHouse's HTTP
  interface (tests/chdb_http_server.py), `leadflow serve --ingest-only` and `leadflow
  worker` processes per stage in consumer groups. Every process can be SIGKILLed and
  started again; more workers of a stage can join and leave.
* `Embedded`: `leadflow replay FILE` (every stage in one process, embedded broker, chdb
  warehouse directory), killed and run again.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from leadflow.broker import EmbeddedBroker, ensure_topics
from leadflow.topics import Topics
from tests.chdb_http_server import ChdbHttpServer

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "faults"
PREFIX = "faults"
PARTITIONS = 3
IDENTITY_SECRET = "leadflow-faults-secret-5b1e7d"  # not the development one: a broker is configured


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f}s")


class Process:
    """A leadflow command as a child process: start, SIGKILL, start again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None
        self.kills = 0
        self.exits: list[int] = []  # exit codes of the times it ended on its own (restarted by supervise)
        self.armed = False  # started with a LEADFLOW_FAULT_KILL_AT point
        self.self_kills = 0  # times it killed itself at that point

    def start(self, extra_env: dict[str, str] | None = None) -> "Process":
        self.armed = bool(extra_env and "LEADFLOW_FAULT_KILL_AT" in extra_env)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "leadflow.cli", *self.argv], cwd=ROOT,
                                         env={**self.env, **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        if self.alive:
            self.proc.kill()
            self.kills += 1
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


class S3Store:
    """moto's S3 server: the broker's storage, outliving the broker process."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.env = {"AWS_ENDPOINT": f"http://127.0.0.1:{self.port}", "AWS_ALLOW_HTTP": "true",
                    "AWS_ACCESS_KEY_ID": "faults", "AWS_SECRET_ACCESS_KEY": "faults", "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> "S3Store":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.port, 60, self.proc)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/tansu", method="PUT")  # create the bucket
        urllib.request.urlopen(req, timeout=10).close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Production:
    """Broker, warehouse, ingest and workers as separate processes (see the module docstring)."""

    STAGES = {"sink": ["warehouse-sink", "deadletter-sink"], "enrich": ["enrich"], "attribution": ["attribution"],
              "rollup": ["rollup"]}

    def __init__(self, root: Path, *, durable_broker: bool = False, batch_max_seconds: float = 0.2):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.s3 = S3Store(root / "s3.log") if durable_broker else None
        self.broker: EmbeddedBroker | None = None
        self.warehouse = ChdbHttpServer(root / "warehouse", log=root / "warehouse.log")
        self.ingest_port = free_port()
        self.batch_max_seconds = batch_max_seconds
        self.processes: dict[str, list[Process]] = {}
        self._serial = 0

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}/v1/events"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
        env.update(LEADFLOW_KAFKA_BOOTSTRAP=self.broker.bootstrap, LEADFLOW_CLICKHOUSE_URL=self.warehouse.url,
                   LEADFLOW_CLICKHOUSE_DATABASE=DATABASE, LEADFLOW_TOPIC_PREFIX=PREFIX,
                   LEADFLOW_TOPIC_PARTITIONS=str(PARTITIONS), LEADFLOW_BATCH_MAX_SECONDS=str(self.batch_max_seconds),
                   LEADFLOW_WAREHOUSE_DIR=str(self.root / "unused-embedded-warehouse"), PYTHONUNBUFFERED="1",
                   LEADFLOW_IDENTITY_SECRET=IDENTITY_SECRET)
        return env

    def start_broker(self, port: int | None = None) -> None:
        if self.s3 is not None:
            self.broker = EmbeddedBroker(self.root, port=port, storage_url="s3://tansu/", env=self.s3.env)
        else:
            self.broker = EmbeddedBroker(self.root, port=port)
        self.broker.start()

    def restart_broker(self) -> None:
        """SIGKILL the broker and start it again on the same port (durable storage keeps its log)."""
        port = self.broker.port
        self.broker.stop(kill=True)
        time.sleep(0.5)
        self.start_broker(port)

    def start(self, workers: dict[str, int] | None = None) -> "Production":
        if self.s3 is not None:
            self.s3.start()
        self.start_broker()
        self.warehouse.start()
        topics = Topics(PREFIX)
        asyncio.run(ensure_topics(self.broker.bootstrap, {t: PARTITIONS for t in topics.all()}))
        migrate = subprocess.run([sys.executable, "-m", "leadflow.cli", "migrate"], cwd=ROOT, env=self.env(),
                                 capture_output=True, text=True, timeout=300)
        if migrate.returncode != 0:
            raise RuntimeError(f"leadflow migrate failed: {migrate.stderr.strip()}")
        self.add("ingest")
        for role, n in (workers or {"sink": 1, "enrich": 1, "attribution": 1}).items():
            for _ in range(n):
                self.add(role)
        wait_port(self.ingest_port, 120, self.processes["ingest"][0].proc)
        return self

    def add(self, role: str) -> Process:
        """Start one more process of a role: `ingest` or a worker role of STAGES."""
        self._serial += 1
        if role == "ingest":
            argv = ["serve", "--ingest-only", "--no-auth", "--port", str(self.ingest_port)]  # loopback only
        else:
            argv = ["worker"] + [a for stage in self.STAGES[role] for a in ("--stage", stage)]
        proc = Process(f"{role}-{self._serial}", argv, self.env(), self.root / f"{role}-{self._serial}.log")
        self.processes.setdefault(role, []).append(proc.start())
        return proc

    def remove(self, role: str) -> None:
        """Stop (SIGTERM) the newest process of a role: it leaves its consumer group."""
        self.processes[role].pop().stop()

    def all_processes(self) -> list[Process]:
        return [p for procs in self.processes.values() for p in procs]

    def supervise(self) -> None:
        """Start again every process that ended on its own, as a supervisor (systemd, Kubernetes)
        would; each such exit is recorded on the process."""
        for proc in self.all_processes():
            if proc.proc is None or proc.alive:
                continue
            if proc.armed and proc.proc.returncode == -9:
                proc.self_kills += 1  # reached its fault point: back up without it
            else:
                proc.exits.append(proc.proc.returncode)
            proc.start()

    def exits(self) -> list[str]:
        return [f"{p.name} exited on its own with {code} (restarted)" for p in self.all_processes() for code in p.exits]

    def stop(self) -> None:
        for proc in self.all_processes():
            proc.stop()
        self.warehouse.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.s3 is not None:
            self.s3.stop()


def post(url: str, lines: list[bytes], timeout: float = 30.0) -> int | None:
    """POST JSON Lines; the HTTP status, or None when there was no answer (ingest down)."""
    req = urllib.request.Request(url, data=b"\n".join(lines) + b"\n", method="POST",
                                 headers={"Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def post_until_answered(url: str, lines: list[bytes], deadline: float, on_retry=None) -> int:
    """A client's retry loop: send the chunk again until ingest answers it (a 2xx for a stored
    chunk, 422 when every line is invalid); 5xx and no answer are retried (`on_retry(status)`)."""
    while time.monotonic() < deadline:
        status = post(url, lines)
        if status is not None and status < 500:
            return status
        if on_retry is not None:
            on_retry(status)
        time.sleep(0.2)
    raise TimeoutError("ingest did not answer a chunk in time")
