"""The command line as people and scripts use it: real subprocesses, embedded default."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leadflow.bench.rss import child_pids
from leadflow.cli import SAMPLE_FILE

LEADFLOW = [sys.executable, "-m", "leadflow.cli"]


def run(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    full_env.update(env or {})
    return subprocess.run(LEADFLOW + args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, fragment", [
    (["replay", "no-such-file.jsonl"], "file not found: no-such-file.jsonl"),
    (["replay"], "the following arguments are required: FILE"),
    (["replay", "x.jsonl", "--format", "yaml"], "invalid choice: 'yaml'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["deadletters", "--limit", "0"], "--limit must be at least 1"),
    (["deadletters", "--config", "missing.toml"], "config file not found: missing.toml"),
    (["serve", "--processes", "2"], "--processes needs --ingest-only"),
    (["serve", "--processes", "0"], "--processes must be between 1 and 64, not 0"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, fragment):
    res = run(args, tmp_path)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert fragment in lines[0]
    assert "Traceback" not in res.stderr


def test_bad_config_values_exit_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('topic_partitions = "many"\n')
    res = run(["deadletters", "--config", str(cfg)], tmp_path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "topic_partitions" in res.stderr
    res = run(["deadletters"], tmp_path, env={"LEADFLOW_REPORTING_CURRENCY": "dollars"})
    assert res.returncode == 2 and "reporting_currency" in res.stderr and res.stderr.count("\n") == 1


def test_replay_sample_on_embedded_default_then_deadletters(tmp_path):
    res = run(["replay", str(SAMPLE_FILE), "--format", "json", "--no-progress"], tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    # the sample: 16 valid contract examples, 2 repeats, 7 invalid lines
    assert (summary["read"], summary["accepted"], summary["duplicates"], summary["rejected"]) == (25, 16, 2, 7)
    assert (tmp_path / "var" / "warehouse").is_dir()

    res = run(["deadletters", "--format", "json"], tmp_path)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == 7
    assert {r["raw"] for r in rows} >= {"not json"}
    assert all(r["errors"] and r["errors"][0]["message"] for r in rows)
    table = run(["deadletters"], tmp_path).stdout
    assert "7 dead letter(s)" in table and "score must be between 0 and 10" in table

    again = json.loads(run(["replay", str(SAMPLE_FILE), "--format", "json", "--no-progress"], tmp_path).stdout)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 18, 7)
    assert len(json.loads(run(["deadletters", "--format", "json"], tmp_path).stdout)) == 7


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def _start_serve(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    proc = subprocess.Popen(LEADFLOW + ["serve", "--port", "0"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, proc.stderr.read() if proc.poll() is not None else line
    brokers = [c for c in child_pids(proc.pid) if "tansu" in Path(f"/proc/{c}/cmdline").read_text()]
    assert len(brokers) == 1
    return proc, brokers[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_broker_left_behind(tmp_path, sig):
    proc, broker_pid = _start_serve(tmp_path)
    assert _alive(broker_pid)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(broker_pid), f"broker {broker_pid} survived {sig.name}"
    if sig != signal.SIGKILL:
        assert proc.returncode == 0
