"""The whole pipeline: `leadflow replay` in a child process, wall time and peak RSS."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson


def measure_pipeline(events_file: Path, warehouse_dir: Path, lines: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadflow.cli", "replay", str(events_file), "--warehouse", str(warehouse_dir),
         "--format", "json", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"replay failed: {err.decode(errors='replace').strip()[-500:]}")
    summary = orjson.loads(out)
    return {
        "lines": lines,
        "seconds": round(wall, 3),
        "events_per_s": round(lines / wall, 1),
        "seconds_inside_replay": summary["seconds"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "accepted": summary["accepted"], "duplicates": summary["duplicates"], "rejected": summary["rejected"],
    }
