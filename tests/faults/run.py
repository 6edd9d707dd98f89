"""The fault suite: crashes, outages and rebalances while events flow, every run checked
against the independent reference (tests/reference/kpis.py).

    make faults                          # the full suite (python -m tests.faults.run)
    python -m tests.faults.run --short   # the short version (also run by `make test`)
    python -m tests.faults.run --kinds sigkill-enrich,warehouse-down --runs 3

Each run starts a topology from nothing, sends a simulated business (~1,200 lines with
exact duplicates, late events and invalid lines) the way a client would (chunks of JSON
Lines posted to ingest, each sent again until ingest answers it; `leadflow replay` in
the embedded topology, run again after a crash), injects its faults while the events
flow, waits until the pipeline has settled and then measures (tests/faults/measure.py):
events lost (valid events answered by ingest and missing from the warehouse), KPI cells
different from the reference (4 groupings x 5 models x 2 periods, read with the KPI SQL
from what the pipeline wrote) and dead letters off (stored minus expected).

Fault kinds (production: separate processes, tests/faults/harness.py; embedded: one
`leadflow replay` process with its own broker and chdb warehouse):

* `sigkill-<role>` (production; role = ingest, sink, enrich, attribution): SIGKILL a
  process of that role at random moments (seeded), then start it again; half of the
  worker kills land exactly between a batch's warehouse write and its offset commit
  (LEADFLOW_FAULT_KILL_AT=STAGE:after-write:N, leadflow/faults.py);
* `embedded-sigkill`: SIGKILL `leadflow replay` at random moments and at after-write
  points of random stages, then replay the same file again;
* `broker-restart` (production): SIGKILL the broker (Tansu on moto's S3 server) mid-stream
  and start it again on its port: every event answered 2xx must reach the warehouse;
* `warehouse-down` (production): stop the ClickHouse HTTP server under load for 60 s
  (short: 10 s): ingest keeps answering 2xx (checked), nothing is dead-lettered for it,
  then the lag drains;
* `rebalance` (production): sink and attribution workers added and removed ten times
  (short: three) while the events flow;
* `transient-write` and `poison-record`: in-process, on the embedded engine, with the
  stage runner's retry and poison handling (tests/faults/test_faults.py).

Output: one line per kind, `kind: runs N, faults injected N, events lost N, cells
different N`, then a summary line; exit status 1 when anything was lost or different.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.harness import DATABASE, ROOT, Production, post_until_answered
from tests.faults.measure import Input, Measure, http_client, settings_for, settle_and_measure, simulated_input

CHUNK = 40  # lines per POST


@dataclass
class KindResult:
    kind: str
    runs: int = 0
    faults: int = 0
    lost: int = 0
    cells_different: int = 0
    dead_letters_off: int = 0
    cells: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, faults: int, m: Measure) -> None:
        self.runs += 1
        self.faults += faults
        self.lost += m.lost
        self.cells_different += m.cells_different
        self.dead_letters_off += abs(m.dead_letters_off)
        self.cells += m.cells
        if m.detail or not m.settled:
            self.notes.append(m.detail)

    @property
    def ok(self) -> bool:
        return self.runs > 0 and not (self.lost or self.cells_different or self.dead_letters_off)

    def line(self) -> str:
        return (f"{self.kind}: runs {self.runs}, faults injected {self.faults}, events lost {self.lost}, "
                f"cells different {self.cells_different}, dead letters off {self.dead_letters_off}")


def feed(topo: Production, data: Input, pause: float, on_chunk=None, timeout: float = 600) -> None:
    """Post the input in chunks, each until answered; `on_chunk(i)` runs before chunk i."""
    deadline = time.monotonic() + timeout
    chunks = [data.lines[i:i + CHUNK] for i in range(0, len(data.lines), CHUNK)]
    for i, chunk in enumerate(chunks):
        if on_chunk is not None:
            on_chunk(i, len(chunks))
        post_until_answered(topo.ingest_url, chunk, deadline)
        time.sleep(pause)


def production_run(root: Path, data: Input, inject, *, durable_broker: bool = False, pause: float = 0.05,
                   settle_s: float = 300) -> tuple[int, Measure]:
    """One production run: start, feed while `inject(topo, i, n)` injects faults before chunk i,
    settle, measure. Returns (faults injected, measure)."""
    topo = Production(root, durable_broker=durable_broker)
    injected = [0]
    try:
        topo.start()

        def on_chunk(i, n):
            injected[0] += inject(topo, i, n) or 0

        feed(topo, data, pause, on_chunk)
        settings = settings_for(topo.warehouse.url, DATABASE)
        client = http_client(topo.warehouse.url, DATABASE)
        try:
            return injected[0], settle_and_measure(client, settings, data, timeout=settle_s)
        finally:
            client.close()
    finally:
        topo.stop()


def _kill_moments(rng: random.Random, n_chunks: int, kills: int) -> set[int]:
    return set(rng.sample(range(1, n_chunks), min(kills, n_chunks - 1)))


def kind_sigkill(role: str, kills: int, rng: random.Random):
    """SIGKILL a `role` process at `kills` random chunks (worker kills alternate between a random
    moment and the after-write point of the process's next batches), and start it again."""
    stage_of = {"sink": "*", "enrich": "enrich", "attribution": "attribution"}
    n_chunks = None
    moments: set[int] = set()

    def inject(topo: Production, i: int, n: int) -> int:
        nonlocal n_chunks, moments
        if n_chunks is None:
            n_chunks, moments = n, _kill_moments(rng, n, kills)
        if i not in moments:
            return 0
        proc = topo.processes[role][0]
        proc.kill()
        env = None
        if role != "ingest" and rng.random() < 0.5:
            env = {"LEADFLOW_FAULT_KILL_AT": f"{stage_of[role]}:after-write:{rng.randint(1, 3)}"}
        proc.start(env)
        return 1

    return inject


def kind_broker_restart(restarts: int, rng: random.Random):
    moments: set[int] = set()

    def inject(topo: Production, i: int, n: int) -> int:
        nonlocal moments
        if not moments:
            moments = _kill_moments(rng, n, restarts)
        if i in moments:
            topo.restart_broker()
            return 1
        return 0

    return inject


def kind_warehouse_down(outage_s: float):
    """Stop the warehouse under load; keep feeding; ingest must answer 2xx all along."""
    state = {"down_at": None, "done": False}

    def inject(topo: Production, i: int, n: int) -> int:
        if state["done"]:
            return 0
        if state["down_at"] is None and i == n // 4:
            topo.warehouse.stop()
            state["down_at"] = time.monotonic()
            return 1
        if state["down_at"] is not None and time.monotonic() - state["down_at"] >= outage_s:
            topo.warehouse.start()
            state["done"] = True
        elif state["down_at"] is not None and i == n - 1:  # the input ran out first: wait out the outage
            time.sleep(max(0.0, outage_s - (time.monotonic() - state["down_at"])))
            topo.warehouse.start()
            state["done"] = True
        return 0

    return inject, state


def kind_rebalance(cycles: int):
    """Add a sink and an attribution worker, then remove them again, `cycles` times over the feed."""
    state = {"added": False, "cycles": 0}

    def inject(topo: Production, i: int, n: int) -> int:
        every = max(1, n // (2 * cycles + 1))
        if i == 0 or i % every or state["cycles"] >= cycles:
            return 0
        if not state["added"]:
            topo.add("sink")
            topo.add("attribution")
            state["added"] = True
            return 0
        topo.remove("sink")
        topo.remove("attribution")
        state["added"] = False
        state["cycles"] += 1
        return 1

    return inject


def embedded_run(root: Path, data: Input, kills: int, rng: random.Random) -> tuple[int, Measure]:
    """`leadflow replay` of the input, SIGKILLed at random moments or after-write points and run
    again until one run completes; then measured on its chdb warehouse (in a child process: one
    chdb engine path per process)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "input.jsonl"
    path.write_bytes(b"\n".join(data.lines) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(LEADFLOW_CLICKHOUSE_DATABASE=DATABASE, LEADFLOW_BATCH_MAX_SECONDS="0.2", LEADFLOW_BATCH_MAX_ROWS="200")
    argv = [sys.executable, "-m", "leadflow.cli", "replay", str(path), "--warehouse", str(root / "warehouse"),
            "--no-progress", "--format", "json"]
    injected = 0
    for attempt in range(kills + 1):
        run_env = dict(env)
        last = attempt == kills
        with open(root / "replay.log", "ab") as log:
            if not last and attempt % 2 == 1:
                stage = rng.choice(["warehouse-sink", "deadletter-sink", "enrich", "attribution", "*"])
                run_env["LEADFLOW_FAULT_KILL_AT"] = f"{stage}:after-write:{rng.randint(1, 3)}"
                proc = subprocess.run(argv, cwd=ROOT, env=run_env, stdout=log, stderr=subprocess.STDOUT, timeout=600)
                injected += proc.returncode == -9
                continue
            proc = subprocess.Popen(argv, cwd=ROOT, env=run_env, stdout=log, stderr=subprocess.STDOUT)
            if not last:
                time.sleep(rng.uniform(2.0, 8.0))
                if proc.poll() is None:
                    proc.kill()
                    injected += 1
            proc.wait(timeout=600)
            if last and proc.returncode != 0:
                raise RuntimeError(f"the final replay failed with {proc.returncode} (see {root / 'replay.log'})")
    out = subprocess.run([sys.executable, "-m", "tests.faults.embedded_measure", str(root / "warehouse"),
                          str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"embedded measure failed: {out.stderr[-2000:]}")
    import json

    return injected, Measure(**json.loads(out.stdout.strip().splitlines()[-1]))


PROFILES = {  # (runs per kind, faults per run, outage seconds, rebalance cycles)
    "short": dict(runs=1, kills=2, outage=10.0, cycles=3),
    "full": dict(runs=1, kills=20, outage=60.0, cycles=10),
}
KINDS = ["sigkill-ingest", "sigkill-sink", "sigkill-enrich", "sigkill-attribution", "embedded-sigkill",
         "broker-restart", "warehouse-down", "rebalance"]


def run_kind(kind: str, profile: dict, data: Input, work: Path, seed: int) -> KindResult:
    result = KindResult(kind)
    for r in range(profile["runs"]):
        rng = random.Random(f"{seed}-{kind}-{r}")
        root = work / f"{kind}-{r}"
        try:
            if kind.startswith("sigkill-"):
                faults, m = production_run(root, data, kind_sigkill(kind[len("sigkill-"):], profile["kills"], rng))
            elif kind == "embedded-sigkill":
                faults, m = embedded_run(root, data, profile["kills"], rng)
            elif kind == "broker-restart":
                faults, m = production_run(root, data, kind_broker_restart(max(1, profile["kills"] // 10), rng),
                                           durable_broker=True)
            elif kind == "warehouse-down":
                inject, state = kind_warehouse_down(profile["outage"])
                faults, m = production_run(root, data, inject, pause=0.3)
            elif kind == "rebalance":
                faults, m = production_run(root, data, kind_rebalance(profile["cycles"]), pause=0.3)
            else:
                raise ValueError(f"unknown fault kind {kind}")
        except Exception as exc:  # noqa: BLE001 - a run that cannot finish is a failed run, reported
            result.runs += 1
            result.lost += len(data.valid_ids)
            result.notes.append(f"run {r} failed: {exc!r}")
            continue
        result.add(faults, m)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="leadflow fault suite")
    parser.add_argument("--short", action="store_true", help="the short version (make test)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    parser.add_argument("--runs", type=int, default=None, help="runs per kind")
    parser.add_argument("--kills", type=int, default=None, help="faults per run (SIGKILL kinds)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    profile = dict(PROFILES["short" if args.short else "full"])
    if args.runs:
        profile["runs"] = args.runs
    if args.kills:
        profile["kills"] = args.kills
    data = simulated_input(days=3, visitors_per_day=300, seed=11)
    work = Path(tempfile.mkdtemp(prefix="leadflow-faults-"))
    print(f"fault suite ({'short' if args.short else 'full'}): {len(data.lines)} lines, "
          f"{len(data.valid_ids)} valid events, {data.invalid} invalid; logs in {work}", flush=True)
    results = []
    started = time.monotonic()
    for kind in [k for k in args.kinds.split(",") if k]:
        t0 = time.monotonic()
        res = run_kind(kind, profile, data, work, args.seed)
        results.append(res)
        print(res.line() + f" ({time.monotonic() - t0:.0f} s)", flush=True)
        for note in res.notes[:3]:
            print(f"  {note[:600]}", flush=True)
    ok = all(r.ok for r in results)
    print(f"summary: kinds {len(results)}, runs {sum(r.runs for r in results)}, faults injected "
          f"{sum(r.faults for r in results)}, events lost {sum(r.lost for r in results)}, cells different "
          f"{sum(r.cells_different for r in results)} of {sum(r.cells for r in results)}, dead letters off "
          f"{sum(r.dead_letters_off for r in results)}, {time.monotonic() - started:.0f} s: "
          f"{'ok' if ok else 'FAILED'}", flush=True)
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
