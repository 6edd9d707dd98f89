"""`leadflow run`, `leadflow simulate` (file and --live) as people run them: real
subprocesses on the embedded default (their own broker, ./var/warehouse in a tmp dir).

`make run` itself simulates 30 days x 1000 visitors a day; these runs are smaller
so the suite stays fast; the code path is the same."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

LEADFLOW = [sys.executable, "-m", "leadflow.cli"]
SMALL = ["--days", "3", "--visitors-per-day", "80", "--seed", "5"]


def run(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return subprocess.run(LEADFLOW + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_run_twice_same_report(tmp_path):
    first = run(["run", *SMALL, "--metrics-port", "0", "--no-progress"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    url = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", out)
    assert url, out[:500]
    for part in ("simulated ", "replayed 1 file(s)", "Marketing by channel", "Service by operator",
                 "Worst hours of the week", "Estimated lost revenue", "ESTIMATE", "Dead letters",
                 "HTML report:", "dashboards:", "leadflow run finished in"):
        assert part in out, part
    report = tmp_path / "var" / "report.html"
    assert report.is_file() and str(report.resolve()) in out
    assert (tmp_path / "var" / "warehouse").is_dir()
    assert list((tmp_path / "var").glob("simulated-*.jsonl"))
    read = int(re.search(r"read\s+([\d,]+)", out).group(1).replace(",", ""))
    assert read > 300

    second = run(["run", *SMALL, "--metrics-port", "0", "--no-progress"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(r"accepted\s+0\n", second.stdout)
    assert "already in the warehouse" in second.stdout

    def body(text: str) -> str:
        return text[text.index("Marketing by channel"):text.index("Where to look next")]

    assert body(first.stdout) == body(second.stdout)

    fresh = run(["run", *SMALL, "--metrics-port", "0", "--no-progress", "--fresh"], tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "--fresh: removed" in fresh.stdout and body(fresh.stdout) == body(first.stdout)


def test_metrics_server_serves_leadflow_metrics():
    from leadflow import metrics  # noqa: F401  registers the pipeline metrics
    from leadflow.run import start_metrics

    server = start_metrics(0)
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", server.url)
        text = urllib.request.urlopen(server.url, timeout=10).read().decode()
        assert "leadflow_events_received_total" in text
    finally:
        server.stop()


def test_simulate_writes_a_deterministic_file(tmp_path):
    a = run(["simulate", "--days", "2", "--seed", "3", "--out", "a.jsonl"], tmp_path)
    b = run(["simulate", "--days", "2", "--seed", "3", "--out", "b.jsonl"], tmp_path)
    assert a.returncode == 0 and b.returncode == 0, a.stderr
    assert re.match(r"simulated [\d,]+ lines into a\.jsonl: [\d,]+ valid events, [\d,]+ exact duplicates, "
                    r"[\d,]+ invalid lines", a.stdout)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    c = run(["simulate", "--days", "2", "--seed", "4", "--out", "c.jsonl"], tmp_path)
    assert (tmp_path / "c.jsonl").read_bytes() != (tmp_path / "a.jsonl").read_bytes()
    assert c.returncode == 0


def test_simulate_bad_arguments_exit_2(tmp_path):
    (tmp_path / "a-file").write_text("")
    for args, fragment in ((["simulate"], "--out FILE is required"),
                           (["simulate", "--days", "0", "--out", "x"], "days must be >= 1"),
                           (["simulate", "--live", "--rate", "0"], "--rate must be > 0"),
                           (["simulate", "--out", "a-file/x.jsonl"], "cannot write")):
        res = run(args, tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        assert fragment in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_simulate_live_produces_through_the_pipeline(tmp_path):
    res = run(["simulate", "--live", "--rate", "400", "--duration", "2", "--days", "2",
               "--visitors-per-day", "200", "--metrics-port", "0"], tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert 200 <= result["read"] <= 1600, result
    assert result["stored"] > 0 and result["stored"] + result["duplicates"] + result["rejected"] >= result["read"] - 5
    assert (tmp_path / "var" / "warehouse").is_dir()
