"""`make bench` reports the peak RSS of the pipeline process apart from the
embedded broker and the publishing child (ru_maxrss would mix them)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from leadflow import warehouse
from leadflow.bench.pipeline import measure_pipeline
from leadflow.config import load_settings
from leadflow.bench.rss import TreeSampler
from leadflow.simulator import config_for_lines, write_jsonl
from services.rollup import refresh as rollups


def test_the_sampler_counts_a_child_apart_from_its_parent():
    # the parent holds ~40 MiB, its child ~200 MiB: the parent's peak must not include the child's
    script = textwrap.dedent("""
        import subprocess, sys, time
        ballast = bytearray(40 << 20)
        child = subprocess.Popen([sys.executable, "-c",
            "import time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"])
        ballast[::4096] = b"x" * len(ballast[::4096])
        child.wait()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    with TreeSampler(proc.pid, interval=0.05) as sampler:
        proc.wait()
    assert 40 <= sampler.peaks["pipeline"] < 150
    assert sampler.peaks["other"] >= 200


def test_a_replay_reports_its_own_peak_and_the_broker_apart(tmp_path):
    events = tmp_path / "events.jsonl"
    write_jsonl(config_for_lines(3000, days=2, seed=3), events)
    lines = sum(1 for line in events.read_bytes().splitlines() if line.strip())
    result = measure_pipeline(events, tmp_path / "wh", lines, rollups=True)
    assert result["accepted"] + result["duplicates"] + result["rejected"] == lines
    by = result["peak_rss_mb_by_process"]
    assert result["peak_rss_mb"] == by["pipeline"] > 100  # chdb alone maps ~300 MiB
    assert by["broker"] > 0
    # the replay ran with the rollup stage (the bench's query warehouses need no rebuild after it)
    settings = load_settings(warehouse_dir=tmp_path / "wh", rollups=True)
    client = warehouse.connect(settings)
    try:
        assert rollups.current(client, settings)
        assert client.query("SELECT count() FROM rollup_channels").result_rows[0][0] > 0
    finally:
        client.close()
