"""The whole pipeline: `leadflow replay` in a child process, wall time and peak RSS per process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson

from leadflow.bench.rss import TreeSampler


def measure_pipeline(events_file: Path, warehouse_dir: Path, lines: int, *, rollups: bool) -> dict:
    """`rollups`: with the rollup stage (LEADFLOW_ROLLUPS) or without it. The caller's other
    LEADFLOW_* settings are left out, so a bench never writes into a configured production."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env["LEADFLOW_ROLLUPS"] = "true" if rollups else "false"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadflow.cli", "replay", str(events_file), "--warehouse", str(warehouse_dir),
         "--format", "json", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    status = proc.returncode
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"replay failed: {err.decode(errors='replace').strip()[-500:]}")
    summary = orjson.loads(out)
    return {
        "lines": lines,
        "rollups": rollups,
        "seconds": round(wall, 3),
        "events_per_s": round(lines / wall, 1),
        "seconds_inside_replay": summary["seconds"],
        # the pipeline process itself; the publishing child and the embedded broker are reported apart
        "peak_rss_mb": round(sampler.peaks.get("pipeline", 0.0), 1),
        "peak_rss_mb_by_process": {role: round(mb, 1) for role, mb in sorted(sampler.peaks.items())},
        "accepted": summary["accepted"], "duplicates": summary["duplicates"], "rejected": summary["rejected"],
    }
