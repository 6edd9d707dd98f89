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

* `sigkill-<role>` (production; role = ingest, sink, enrich, attribution, rollup): SIGKILL a
  process of that role at random moments (seeded; 20, short: 1), then start it again;
  about half of the worker restarts are armed to kill themselves exactly between a
  batch's warehouse write and its offset commit (LEADFLOW_FAULT_KILL_AT=STAGE:after-write:N,
  leadflow/faults.py), counted as faults when they fire;
* `embedded-sigkill`: SIGKILL `leadflow replay` at random moments and at after-write
  points of random stages, then replay the same file again;
* `broker-restart` (production): SIGKILL the broker (Tansu on moto's S3 server) mid-stream
  and start it again on its port: every event answered 2xx must reach the warehouse;
* `warehouse-down` (production): stop the ClickHouse HTTP server under load for 60 s
  (short: 10 s): ingest keeps answering 2xx (checked), nothing is dead-lettered for it,
  then the lag drains;
* `rebalance` (production): sink and attribution workers added and removed ten times
  (short: once) while the events flow;
* `poison-record`: in-process, on the embedded engine, with the stage runner's poison
  handling (tests/faults/test_faults.py); a transient error in each write of each stage,
  before and after it: tests/test_retry_replay.py.

A process that exits on its own is started again (as an orchestrator would) and reported
under its kind's line. Lag is not sampled: that no offset was committed past the last
write shows as 0 events lost after the outage.

Output: one line per kind, `kind: runs N, faults injected N, events lost N, cells
different N, dead letters off N`, then a summary line; exit status 1 when anything was
lost or different. The short version (`--short`, and `make test`) runs a production run carrying
the SIGKILLs of the sink and enrich and every outage kind, and an embedded run (PROFILES).
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
        self.notes.extend(m.exits)

    @property
    def ok(self) -> bool:
        return self.runs > 0 and not (self.lost or self.cells_different or self.dead_letters_off)

    def line(self) -> str:
        return (f"{self.kind}: runs {self.runs}, faults injected {self.faults}, events lost {self.lost}, "
                f"cells different {self.cells_different}, dead letters off {self.dead_letters_off}")


@dataclass
class Window:
    """A fault kind injected over chunks [start, end) of a run's feed."""
    kind: str
    inject: object  # (topo, i, n) -> faults injected, with i and n local to the window
    start: int = 0
    end: int | None = None
    faults: int = 0
    unanswered: int = 0


def production_run(root: Path, data: Input, windows: list[Window], *, durable_broker: bool = False,
                   pause: float = 0.05, settle_s: float = 300) -> Measure:
    """One production run: start, feed while each window's injector runs before the chunks of its
    window, settle, measure. Faults and unanswered chunks are counted per window."""
    topo = Production(root, durable_broker=durable_broker)
    t0 = time.monotonic()
    try:
        topo.start()
        t_started = time.monotonic()
        current: list[Window | None] = [None]

        def on_chunk(i, n):
            current[0] = None
            for w in windows:
                end = n if w.end is None else min(w.end, n)
                if w.start <= i < end:
                    w.faults += w.inject(topo, i - w.start, end - w.start) or 0
                    current[0] = w

        deadline = time.monotonic() + 900
        unanswered = [0]
        chunks = [data.lines[i:i + CHUNK] for i in range(0, len(data.lines), CHUNK)]
        for i, chunk in enumerate(chunks):
            topo.supervise()
            on_chunk(i, len(chunks))

            def retried(status, w=current[0]):
                unanswered[0] += 1
                if w is not None:
                    w.unanswered += 1

            post_until_answered(topo.ingest_url, chunk, deadline, on_retry=retried)
            time.sleep(pause)
        t_fed = time.monotonic()
        settings = settings_for(topo.warehouse.url, DATABASE)
        client = http_client(topo.warehouse.url, DATABASE)
        try:
            m = settle_and_measure(client, settings, data, timeout=settle_s, tick=topo.supervise)
        finally:
            client.close()
        for w in windows:
            if w.kind.startswith("sigkill-"):
                w.faults += sum(p.self_kills for p in topo.processes.get(w.kind[len("sigkill-"):], []))
        m.exits = topo.exits()
        m.unanswered = unanswered[0]
        m.timings.update({"start": t_started - t0, "feed": t_fed - t_started, "settle+compare": time.monotonic() - t_fed})
        return m
    finally:
        topo.stop()


def sigkill(role: str, kills: int, rng: random.Random):
    """SIGKILL the first `role` process at `kills` random chunks of the window and start it again;
    about every other worker restart is set to kill itself between a coming batch's warehouse write
    and its offset commit (LEADFLOW_FAULT_KILL_AT); those self-kills count as faults too."""
    stage_of = {"sink": "*", "enrich": "enrich", "attribution": "attribution", "rollup": "rollup"}
    moments: list[int] = []

    def inject(topo: Production, i: int, n: int) -> int:
        if i == 0:
            moments[:] = sorted(rng.choices(range(n), k=kills)) if n < kills else sorted(rng.sample(range(n), kills))
        proc = topo.processes[role][0]
        for _ in range(moments.count(i)):
            proc.kill()
            env = None
            if role != "ingest" and rng.random() < 0.5:
                env = {"LEADFLOW_FAULT_KILL_AT": f"{stage_of[role]}:after-write:{rng.randint(1, 3)}"}
            proc.start(env)
        return moments.count(i)

    return inject


def broker_restart(restarts: int, rng: random.Random):
    moments: list[int] = []

    def inject(topo: Production, i: int, n: int) -> int:
        if i == 0:
            moments[:] = rng.sample(range(n), min(restarts, n))
        if i in moments:
            topo.restart_broker()
            return 1
        return 0

    return inject


def warehouse_down(outage_s: float):
    """Stop the warehouse at the window's first chunk and start it again at its last: the chunks
    between are spread over `outage_s` seconds, so ingest takes events all through the outage."""
    state = {"down_at": None}

    def inject(topo: Production, i: int, n: int) -> int:
        if i == 0:
            topo.warehouse.stop()
            state["down_at"] = time.monotonic()
            return 1
        if state["down_at"] is None:
            return 0
        left = outage_s - (time.monotonic() - state["down_at"])
        if i == n - 1:
            time.sleep(max(0.0, left))
            topo.warehouse.start()
            state["down_at"] = None
        else:
            time.sleep(max(0.0, left / (n - 1 - i)))
        return 0

    return inject


def rebalance(cycles: int):
    """Add a sink and an attribution worker, then remove them (SIGTERM: they leave their groups),
    `cycles` times, spread over the window."""
    state = {"added": False}

    def inject(topo: Production, i: int, n: int) -> int:
        actions = [k * n // (2 * cycles) for k in range(2 * cycles)].count(i)  # every one < n
        done = 0
        for _ in range(actions):
            if not state["added"]:
                topo.add("sink")
                topo.add("attribution")
            else:
                topo.remove("sink")
                topo.remove("attribution")
                done += 1
            state["added"] = not state["added"]
        return done

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


PRODUCTION_KINDS = ["sigkill-ingest", "sigkill-sink", "sigkill-enrich", "sigkill-attribution", "broker-restart",
                    "warehouse-down", "rebalance"]
KINDS = PRODUCTION_KINDS + ["embedded-sigkill"]
# full (make faults): each kind in runs of its own: 20 SIGKILLs per process role, a 60 s outage, ten
# rebalances, faults about 4 s apart. short (make test): one SIGKILL of the sink and of enrich, a
# 10 s outage, one rebalance cycle, half the visitors, faults about 2 s apart, and the kinds
# grouped into two runs (one window of the feed per kind).
PROFILES = {
    "full": dict(kills=20, restarts=2, outage=60.0, cycles=10, spacing=4.0, groups=[[k] for k in KINDS]),
    # make test: one production run carrying the kinds of the two workers that write the most (the
    # warehouse sink, enrich with the identity graph) and every outage kind, and one embedded run;
    # the SIGKILLs of ingest, attribution and rollup run alone in the full version
    "short": dict(kills=1, restarts=1, outage=10.0, cycles=1, spacing=2.0, groups=[
        ["sigkill-sink", "sigkill-enrich", "broker-restart", "warehouse-down", "rebalance"],
        ["embedded-sigkill"]]),
}


def window(kind: str, profile: dict, rng: random.Random) -> Window:
    if kind.startswith("sigkill-"):
        return Window(kind, sigkill(kind[len("sigkill-"):], profile["kills"], rng))
    if kind == "broker-restart":
        return Window(kind, broker_restart(profile["restarts"], rng))
    if kind == "warehouse-down":
        return Window(kind, warehouse_down(profile["outage"]))
    if kind == "rebalance":
        return Window(kind, rebalance(profile["cycles"]))
    raise ValueError(f"unknown production fault kind {kind}")


def _faults_planned(kind: str, profile: dict) -> int:
    if kind.startswith("sigkill-"):
        return profile["kills"]
    return profile["cycles"] * 2 if kind == "rebalance" else profile["restarts"] if kind == "broker-restart" else 1


def _failed(result: "KindResult", data: Input, exc: Exception) -> None:
    result.runs += 1
    result.lost += len(data.valid_ids)
    result.notes.append(f"run failed: {exc!r}")


def run_group(kinds: list[str], profile: dict, data: Input, work: Path, seed: int, runs: int = 1) -> list[KindResult]:
    """`runs` runs, each from nothing, carrying `kinds` one after another (each in its own window
    of the feed; a loss in a run counts against every kind it carried)."""
    results = [KindResult(kind) for kind in kinds]
    for r in range(runs):
        rng = random.Random(f"{seed}-{'+'.join(kinds)}-{r}")
        root = work / f"{'+'.join(kinds)}-{r}"
        if kinds == ["embedded-sigkill"]:
            try:
                faults, m = embedded_run(root, data, profile["kills"], rng)
                results[0].add(faults, m)
            except Exception as exc:  # noqa: BLE001 - a run that cannot finish is a failed run, reported
                _failed(results[0], data, exc)
            continue
        n_chunks = -(-len(data.lines) // CHUNK)
        size = max(1, n_chunks // len(kinds))
        windows = []
        for k, kind in enumerate(kinds):
            w = window(kind, profile, rng)
            w.start, w.end = k * size, (k + 1) * size if k < len(kinds) - 1 else None
            windows.append(w)
        # the feed is spread so that faults come about `spacing` seconds apart
        pause = max(0.05, profile["spacing"] * sum(_faults_planned(k, profile) for k in kinds) / n_chunks)
        try:
            m = production_run(root, data, windows, durable_broker="broker-restart" in kinds, pause=pause)
        except Exception as exc:  # noqa: BLE001
            for res in results:
                _failed(res, data, exc)
            continue
        for res, w in zip(results, windows):
            res.add(w.faults, m)
            if w.kind == "warehouse-down" and w.unanswered:  # ingest must not need the warehouse
                res.notes.append(f"ingest did not answer {w.unanswered} time(s) during the warehouse outage")
                res.lost += w.unanswered
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="leadflow fault suite")
    parser.add_argument("--short", action="store_true", help="the short version (make test)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    parser.add_argument("--runs", type=int, default=None, help="runs per kind (full version)")
    parser.add_argument("--kills", type=int, default=None, help="faults per run (SIGKILL kinds)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=3, help="simulated days of input")
    parser.add_argument("--visitors", type=int, default=None, help="simulated visitors a day (300; short: 150)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    profile = dict(PROFILES["short" if args.short else "full"])
    args.visitors = args.visitors or (150 if args.short else 300)
    if args.kills:
        profile["kills"] = args.kills
    data = simulated_input(days=args.days, visitors_per_day=args.visitors, seed=11)
    work = Path(tempfile.mkdtemp(prefix="leadflow-faults-"))
    print(f"fault suite ({'short' if args.short else 'full'}): {len(data.lines)} lines, "
          f"{len(data.valid_ids)} valid events, {data.invalid} invalid; logs in {work}", flush=True)
    results: list[KindResult] = []
    started = time.monotonic()

    def report(res: KindResult, t0: float) -> None:
        results.append(res)
        print(res.line() + f" ({time.monotonic() - t0:.0f} s)", flush=True)
        for note in res.notes[:3]:
            print(f"  {note[:600]}", flush=True)

    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown fault kind(s): {', '.join(sorted(unknown))}")
    for group in profile["groups"]:
        group = [k for k in group if k in kinds]
        if group:
            t0 = time.monotonic()
            for res in run_group(group, profile, data, work, args.seed, runs=args.runs or 1):
                report(res, t0)
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
