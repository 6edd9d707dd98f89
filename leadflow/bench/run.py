"""Run every benchmark on the same simulated events, print the figures, write JSON."""
from __future__ import annotations

import asyncio
import platform
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

from leadflow import warehouse
from leadflow.bench.ceiling import load_topic, measure_ceiling
from leadflow.bench.freshness import measure_freshness
from leadflow.bench.naive import MISSING as NAIVE_MISSING, faust_available, measure_naive
from leadflow.bench.pipeline import measure_pipeline
from leadflow.bench.queries import measure_queries, render_queries
from leadflow.broker import EmbeddedBroker
from leadflow.config import load_settings
from leadflow.simulator import config_for_lines, write_jsonl
from leadflow.table import render

TARGETS = {
    "pipeline_events_per_s": 10_000, "pipeline_vs_naive": 3.0, "pipeline_vs_ceiling_goal": 0.3,
    "freshness_p99_s": 2.0, "query_ms": 200, "peak_rss_mb_at_10M": 1536,
}


def events_file(workdir: Path, lines: int, seed: int) -> Path:
    path = workdir / f"events-{lines}-s{seed}.jsonl"
    if not path.exists():
        write_jsonl(config_for_lines(lines, days=30, seed=seed), path)
    return path


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def query_warehouse(workdir: Path, size: int, seed: int) -> tuple[Path, dict | None]:
    """A warehouse holding `size` simulated events, replayed once (rollups on, as dashboards read
    them) and kept for later runs. Returns it and the figures of that replay when it happened now
    (the peak RSS at 10M)."""
    directory = workdir / f"warehouse-{size}"
    marker = directory / ".complete"
    replayed = None
    if not marker.exists():
        shutil.rmtree(directory, ignore_errors=True)
        replayed = measure_pipeline(events_file(workdir, size, seed + 1), directory, size, rollups=True)
        marker.write_text(orjson.dumps(replayed).decode() + "\n")
    return directory, replayed


def run_bench(workdir: Path, events: int, naive_events: int, query_sizes: list[int], fresh_seconds: float,
              fresh_rate: int, seed: int = 7, log=print) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"commit": _git_commit(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                     "targets": TARGETS}
    path = events_file(workdir, events, seed)
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]

    for key, rollups in (("pipeline", False), ("pipeline_rollups", True)):
        log(f"pipeline: replaying {len(lines):,} lines end to end, rollups {'on' if rollups else 'off'} ...")
        shutil.rmtree(workdir / "pipeline", ignore_errors=True)
        results[key] = measure_pipeline(path, workdir / "pipeline", len(lines), rollups=rollups)

    engine = load_settings(warehouse_dir=workdir / "engine")
    shutil.rmtree(workdir / "engine", ignore_errors=True)
    client = warehouse.connect(engine)
    warehouse.migrate(client)
    with EmbeddedBroker() as broker:
        tag = str(int(time.time()))
        log("ceiling: bare consume -> decode -> insert ...")
        asyncio.run(load_topic(broker.bootstrap, f"ceiling-{tag}", lines))
        results["ceiling"] = asyncio.run(measure_ceiling(broker.bootstrap, client, f"ceiling-{tag}", len(lines)))
        sample = lines[:naive_events]
        if faust_available():
            log(f"naive: per-event Faust agent on {len(sample):,} lines ...")
            asyncio.run(load_topic(broker.bootstrap, f"naive-{tag}", sample))
            results["naive"] = asyncio.run(measure_naive(broker.bootstrap, client, engine, f"naive-{tag}", len(sample)))
        else:
            log(NAIVE_MISSING)
            results["naive"] = None

    p, c, n = results["pipeline"], results["ceiling"], results["naive"]
    results["ratios"] = {"pipeline_vs_ceiling": round(p["events_per_s"] / c["events_per_s"], 3),
                         "pipeline_vs_naive": round(p["events_per_s"] / n["events_per_s"], 2) if n else None}

    if fresh_seconds > 0:
        log(f"freshness: {fresh_rate} events/s for {fresh_seconds:.0f} s ...")
        fresh_dir = workdir / "freshness"
        shutil.rmtree(fresh_dir, ignore_errors=True)
        live = [line for line in events_file(workdir, int(fresh_rate * fresh_seconds * 1.2) + 1000, seed + 2)
                .read_bytes().split(b"\n") if line.strip()]
        results["freshness"] = asyncio.run(measure_freshness(load_settings(warehouse_dir=fresh_dir), live,
                                                             rate=fresh_rate, seconds=fresh_seconds))
    results["queries"] = {}
    for size in query_sizes:
        log(f"queries: KPI groupings over {size:,} events (replayed once, kept in {workdir}) ...")
        directory, replayed = query_warehouse(workdir, size, seed)
        results["queries"][str(size)] = measure_queries(load_settings(warehouse_dir=directory))
        if replayed is not None:
            results["queries"][str(size)]["replay"] = replayed
    return results


def render_results(r: dict) -> str:
    p, c, n, pr = r["pipeline"], r["ceiling"], r["naive"], r.get("pipeline_rollups")
    rows = [
        ["pipeline (replay end to end)", f"{p['lines']:,}", f"{p['events_per_s']:,.0f}", f"{p['peak_rss_mb']:,.0f} MiB",
         f">= {TARGETS['pipeline_events_per_s']:,}/s"],
        *([["pipeline, rollups on", f"{pr['lines']:,}", f"{pr['events_per_s']:,.0f}", f"{pr['peak_rss_mb']:,.0f} MiB",
            f"{pr['events_per_s'] / p['events_per_s'] - 1:+.1%} vs off (<= 10% slower)"]] if pr else []),
        ["ceiling (consume+decode+insert)", f"{c['lines']:,}", f"{c['events_per_s']:,.0f}", "", ""],
        ["naive (per-event Faust agent)", f"{n['lines']:,}", f"{n['events_per_s']:,.0f}", "", ""] if n else
        ["naive (per-event Faust agent)", "-", "not run: faust-streaming missing (make bench installs it)", "", ""],
    ]
    out = [render(["measure", "events", "events/s", "peak RSS", "target"], rows, right=[False, True, True, True, False])]
    ratio = r["ratios"]
    out.append(f"\npipeline/ceiling = {ratio['pipeline_vs_ceiling']:.2f} (goal >= {TARGETS['pipeline_vs_ceiling_goal']})"
               + (f"   pipeline/naive = {ratio['pipeline_vs_naive']:.1f}x (target >= {TARGETS['pipeline_vs_naive']}x)"
                  if n else f"\n{NAIVE_MISSING}"))
    if "freshness" in r:
        f = r["freshness"]
        out.append(f"freshness at {f['rate_per_s']}/s for {f['seconds']:.0f}s: p50 {f['p50_s']} s, p99 {f['p99_s']} s "
                   f"in the facts; p50 {f.get('rollups_p50_s')} s, p99 {f.get('rollups_p99_s')} s in the rollups "
                   f"(target p99 <= {TARGETS['freshness_p99_s']} s); the stage thread busy "
                   f"{f.get('stage_thread_busy', 0):.0%} of the run")
    for q in r["queries"].values():
        out.extend(render_queries(q, TARGETS["query_ms"]))
        if "replay" in q:
            rp = q["replay"]
            by = ", ".join(f"{role} {mb:,.0f}" for role, mb in rp["peak_rss_mb_by_process"].items())
            out.append(f"  its replay: {rp['lines']:,} lines at {rp['events_per_s']:,.0f}/s, peak RSS of the pipeline "
                       f"process {rp['peak_rss_mb']:,.0f} MiB (target <= {TARGETS['peak_rss_mb_at_10M']:,} at 10M; "
                       f"by process, MiB: {by})")
    return "\n".join(out)


def save(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
