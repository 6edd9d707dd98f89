"""`leadflow bench --ingest`: the HTTP ingest load figure, with write keys and quotas on.

`leadflow serve --ingest-only` runs against a standalone broker (a Tansu process of its own),
as one process and then as one process per CPU (`--processes`); the load generator
(leadflow.bench.ingest_load, a lean keep-alive client) runs in another process. It finds the
sustained requests/s with 20 events per request (closed loop), then measures p50/p99 latency at
70% of that rate (open loop, latency from when each request was due), and the server's requests
per CPU-second (all its processes, from /proc), the figure least moved by other work on the
machine. The same for the embedded `leadflow serve` (broker and every stage in the one process).
A second key flooding at ten times its quota beside a normal one, on the several-process server
(quotas in shared memory), gives the quota isolation figure. The machine's CPU is shared: the
figures vary from run to run.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import orjson

from leadflow.bench.ingest_load import merge
from leadflow.broker import EmbeddedBroker
from leadflow.table import render

TARGET_RPS, TARGET_P99_MS = 1_700, 50.0
BENCH_RATE = 1_000_000  # events/s of the bench key: quotas are checked, never hit


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "leadflow.cli", *args]


def create_key(env: dict, source: str, rate: float, burst: int) -> str:
    out = subprocess.run(_cli("keys", "create", "--source", source, "--rate", str(rate), "--burst", str(burst)),
                         env=env, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


@contextlib.contextmanager
def serving(env: dict, cwd: Path, *extra: str) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(_cli("serve", "--port", "0", *extra), env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://[\d.]+:\d+)", line)
        if not m:
            raise RuntimeError(f"leadflow serve did not start: {line!r}")
        yield f"{m[1]}/v1/events", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def load(url: str, key: str, mode: str, rate: float, seconds: float, connections: int = 32,
         generators: int = 1) -> dict:
    """Run `generators` load generator processes side by side, the connections and the rate split
    between them; their figures merged."""
    procs = [subprocess.Popen([sys.executable, "-m", "leadflow.bench.ingest_load", url, key, mode,
                               str(rate / generators), str(seconds), str(max(1, connections // generators)),
                               "--latencies"], stdout=subprocess.PIPE, text=True) for _ in range(generators)]
    results = []
    for proc in procs:
        out = proc.communicate()[0]
        if proc.returncode != 0:
            raise RuntimeError(f"the load generator failed with code {proc.returncode}")
        results.append(orjson.loads(out.strip().splitlines()[-1]))
    return merge(results)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its child processes (threads included), from /proc."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def measure(url: str, pid: int, key: str, seconds: float, log: Callable[[str], None]) -> dict:
    load(url, key, "max", 0, 2)  # warm up
    cpu_before = cpu_seconds(pid)
    top = load(url, key, "max", 0, seconds)
    cpu = cpu_seconds(pid) - cpu_before
    # the server's processes, all of them: requests per CPU-second hardly depends on what else runs
    top["server_cpu_s"] = round(cpu, 2)
    top["requests_per_server_cpu_s"] = round(top["ok"] / cpu) if cpu else None
    log(f"  sustained {top['requests_per_s']:,.0f} requests/s ({top['events_per_s']:,} events/s), "
        f"statuses {top['statuses']}; server CPU {cpu:.1f} s = {top['requests_per_server_cpu_s']} requests "
        f"per CPU-second")
    rate = max(1, round(top["requests_per_s"] * 0.7))
    at70 = load(url, key, "rate", rate, seconds, connections=256)
    log(f"  at {rate:,} requests/s: p50 {at70['p50_ms']} ms, p99 {at70['p99_ms']} ms, statuses {at70['statuses']}")
    return {"sustained": top, "at_70_percent": {**at70, "rate": rate}}


def quota_isolation(url: str, keys: dict[str, str], seconds: float, log: Callable[[str], None]) -> dict:
    """A calm key at 100 requests/s alone, then beside a key flooding at ten times its quota."""
    calm, flood = keys["calm"], keys["flood"]
    solo = load(url, calm, "rate", 100, seconds, connections=64)
    with ThreadPoolExecutor(1) as pool:
        flooding = pool.submit(load, url, flood, "rate", 100, seconds, 64)
        together = load(url, calm, "rate", 100, seconds, connections=64)
        flooded = flooding.result()
    log(f"  calm key alone p99 {solo['p99_ms']} ms; beside a flood at 10x its quota p99 {together['p99_ms']} ms "
        f"(calm statuses {together['statuses']}, flood statuses {flooded['statuses']})")
    return {"calm_alone": solo, "calm_beside_flood": together, "flood": flooded}


def run_ingest_bench(workdir: Path, seconds: float, log: Callable[[str], None] = print) -> int:
    base = (workdir / "ingest").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    results: dict = {"cpus": os.cpu_count(), "events_per_request": 20, "seconds_per_step": seconds}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env["LEADFLOW_IDENTITY_SECRET"] = secrets.token_urlsafe(32)
    with EmbeddedBroker(log_dir=base / "log") as broker:
        ingest_env = {**env, "LEADFLOW_KAFKA_BOOTSTRAP": broker.bootstrap,
                      "LEADFLOW_WAREHOUSE_DIR": str(base / "wh-ingest-only")}
        key = create_key(ingest_env, "bench", BENCH_RATE, BENCH_RATE)
        quota_keys = {"calm": create_key(ingest_env, "bench-calm", BENCH_RATE, BENCH_RATE),
                      # 10 requests/s of 20 events; flooded at 100 requests/s
                      "flood": create_key(ingest_env, "bench-flood", 200, 200)}
        log("serve --ingest-only (one process), standalone broker, keys and quotas on:")
        with serving(ingest_env, base, "--ingest-only") as (url, pid):
            results["ingest_only"] = measure(url, pid, key, seconds, log)
        processes = os.cpu_count() or 1
        results["processes"] = processes
        log(f"serve --ingest-only --processes {processes} (SO_REUSEPORT, quotas shared), standalone broker:")
        with serving(ingest_env, base, "--ingest-only", "--processes", str(processes)) as (url, pid):
            results["ingest_processes"] = measure(url, pid, key, seconds, log)
            results["quota_isolation"] = quota_isolation(url, quota_keys, seconds, log)
    embedded_env = {**env, "LEADFLOW_WAREHOUSE_DIR": str(base / "wh-embedded")}
    key = create_key(embedded_env, "bench", BENCH_RATE, BENCH_RATE)
    log("embedded serve (broker and every stage in the process), keys and quotas on:")
    with serving(embedded_env, base) as (url, pid):
        results["embedded"] = measure(url, pid, key, seconds, log)
    out = workdir / "bench-ingest.json"
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    rows = []
    for name, label in (("ingest_only", "serve --ingest-only"),
                        ("ingest_processes", f"serve --ingest-only --processes {results['processes']}"),
                        ("embedded", "serve (embedded)")):
        r = results[name]
        rows.append([label, f"{r['sustained']['requests_per_s']:,.0f}", f"{r['sustained']['events_per_s']:,}",
                     f"{r['sustained']['requests_per_server_cpu_s']:,}", f"{r['at_70_percent']['rate']:,}",
                     r["at_70_percent"]["p50_ms"], r["at_70_percent"]["p99_ms"]])
    print(render(["server", "requests/s", "events/s", "req per CPU-s", "at 70%: req/s", "p50 ms", "p99 ms"], rows,
                 right=[False, True, True, True, True, True, True]))
    q = results["quota_isolation"]
    print(f"quota isolation: calm key p99 {q['calm_alone']['p99_ms']} ms alone, "
          f"{q['calm_beside_flood']['p99_ms']} ms beside a key at 10x its quota "
          f"(calm 429s: {q['calm_beside_flood']['statuses'].get('429', 0)}, "
          f"flood 429s: {q['flood']['statuses'].get('429', 0)})")
    print(f"targets (serve --ingest-only --processes {results['processes']}): >= {TARGET_RPS:,} requests/s, p99 <= {TARGET_P99_MS:g} ms at 70%; "
          f"{os.cpu_count()} CPUs shared with other work: figures vary between runs")
    print(f"\nfigures saved to {out}")
    return 0
