"""End to end: a real Prometheus scrapes a running leadflow and ConversionRateDrop fires.

The ingest app and the whole pipeline run in this process on the shared broker and chdb
(as in test_http_ingest.py); a real Prometheus (Debian's `prometheus`) runs on loopback
with a config generated from deploy/prometheus/prometheus.yml and the shipped rule files,
where only the window lengths are shortened (1 hour -> 10 s, a week -> 20 s, 15 minutes
-> 4 s ...): the expressions are the shipped ones. Leads and deals are posted over HTTP
for two channels; after a normal phase, one channel's deals stop, and the test watches
/api/v1/alerts until ConversionRateDrop is firing for that channel only.
"""
from __future__ import annotations

import asyncio
import math
import re
import shutil
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
import yaml

from leadflow.pipeline import Pipeline
from leadflow.serve import running_app

ROOT = Path(__file__).resolve().parents[1]
PROM_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not installed (bash scripts/ensure-debian-package.sh prometheus promtool prometheus installs Debian's prometheus)")

DROP, STEADY = "search_ads", "social_ads"
NORMAL_PHASE_S = 25.0  # both channels convert 1 lead in 3
TICK_S = 0.5  # each tick: 3 leads per channel, and the deals of leads sent 2 ticks earlier
FIRE_DEADLINE_S = 45.0  # after the drop starts

# Durations in the rule files, shortened for the test: weeks become 20 s, the rest is divided by 360
# (1h -> 10s, 30m -> 5s, 15m -> 3s); nothing under 2 s (the scrape and evaluation interval is 1 s).
_DURATION = re.compile(r"(?P<pre>\[|offset |for: )(?P<d>(?:\d+[smhdw])+)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
WEEK_S = 20


def _seconds(text: str) -> int:
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", text))


def shorten(rules: str) -> str:
    def sub(m: re.Match) -> str:
        s = _seconds(m["d"])
        short = s // 604800 * WEEK_S if s % 604800 == 0 else max(2, math.ceil(s / 360))
        return f"{m['pre']}{short}s"
    return _DURATION.sub(sub, rules)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prometheus_config(tmp: Path, target: str) -> Path:
    """deploy/prometheus/prometheus.yml with 1 s intervals, the test target and shortened rule copies."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    files = []
    for name in config["rule_files"]:
        original = (PROM_DIR / name).read_text()
        short = shorten(original)
        # only durations differ from the shipped rules
        assert _DURATION.sub(r"\g<pre>D", short) == _DURATION.sub(r"\g<pre>D", original)
        (tmp / name).write_text(short)
        files.append(name)
    config["rule_files"] = files
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "leadflow"]
    job["static_configs"] = [{"targets": [target]}]
    job["scrape_interval"] = "1s"
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lead(channel: str, i: int) -> dict:
    return {"event_id": f"e2e-ld-{channel}-{i}", "type": "lead", "occurred_at": now_iso(), "source": "site",
            "identity": {"email": f"e2e-{channel}-{i}@example.org"}, "lead_id": f"L-{channel}-{i}",
            "channel": channel}


def deal(channel: str, i: int) -> dict:
    return {"event_id": f"e2e-dw-{channel}-{i}", "type": "deal_won", "occurred_at": now_iso(), "source": "crm",
            "identity": {"email": f"e2e-{channel}-{i}@example.org"}, "deal_id": f"D-{channel}-{i}",
            "revenue": "100.00", "currency": "USD"}


async def conversion_alerts(http: aiohttp.ClientSession, prom: str) -> dict[str, str]:
    async with http.get(f"{prom}/api/v1/alerts") as r:
        body = await r.json()
    return {a["labels"].get("channel", ""): a["state"] for a in body["data"]["alerts"]
            if a["labels"].get("alertname") == "ConversionRateDrop"}


async def _scenario(settings, client, tmp: Path) -> dict:
    async with Pipeline(settings, settings.kafka_bootstrap, client) as pipe:
        async with running_app(settings, pipe, client, "127.0.0.1", 0) as (addr, _publisher):
            app = f"http://127.0.0.1:{addr[1]}"
            port = free_port()
            prom = f"http://127.0.0.1:{port}"
            config = prometheus_config(tmp, f"127.0.0.1:{addr[1]}")
            log = (tmp / "prometheus.log").open("w")
            proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
            try:
                return await _feed(app, prom, proc)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
                log.close()


async def _feed(app: str, prom: str, proc: subprocess.Popen) -> dict:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for _ in range(100):  # Prometheus up and scraping leadflow
            assert proc.poll() is None, "prometheus exited"
            try:
                async with http.get(f"{prom}/api/v1/query", params={"query": 'up{job="leadflow"}'}) as r:
                    result = (await r.json())["data"]["result"] if r.status == 200 else []
                if result and result[0]["value"][1] == "1":
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        else:
            pytest.fail("prometheus did not come up and scrape leadflow")

        started = time.monotonic()
        drop_at = started + NORMAL_PHASE_S
        deadline = drop_at + FIRE_DEADLINE_S
        sent = {DROP: 0, STEADY: 0}
        due: list[tuple[int, str, int]] = []  # (tick, channel, lead number) deals to send
        tick = 0
        seen: dict[str, dict[str, float]] = {DROP: {}, STEADY: {}}
        while time.monotonic() < deadline:
            assert proc.poll() is None, "prometheus exited"
            now = time.monotonic()
            dropping = now >= drop_at
            batch = []
            for channel in (DROP, STEADY):
                for _ in range(3):
                    i = sent[channel]
                    sent[channel] += 1
                    batch.append(lead(channel, i))
                    if i % 3 == 0:
                        due.append((tick + 2, channel, i))
            ready = [d for d in due if d[0] <= tick]
            due = [d for d in due if d[0] > tick]
            batch += [deal(channel, i) for _, channel, i in ready if not (dropping and channel == DROP)]
            async with http.post(f"{app}/v1/events", json=batch) as r:
                assert r.status == 200, await r.text()
            for channel, state in (await conversion_alerts(http, prom)).items():
                if channel in seen:
                    seen[channel].setdefault(state, now - drop_at)
            if "firing" in seen[DROP]:
                break
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * TICK_S - time.monotonic()))
        return {"seen": seen, "total_s": time.monotonic() - started, "leads": dict(sent)}


def test_conversion_drop_fires_on_real_prometheus(settings, client, tmp_path):
    began = time.monotonic()
    result = asyncio.run(_scenario(settings, client, tmp_path))
    seen = result["seen"]
    log = (tmp_path / "prometheus.log").read_text()[-2000:]
    assert "firing" in seen[DROP], f"ConversionRateDrop never fired for {DROP}: {result}\n{log}"
    assert "pending" in seen[DROP] and seen[DROP]["pending"] <= seen[DROP]["firing"]
    assert seen[DROP]["pending"] > 0, "pending before the drop started"
    assert seen[STEADY] == {}, f"the steady channel alerted: {result}"
    print(f"\nConversionRateDrop({DROP}): pending {seen[DROP]['pending']:.1f} s and firing "
          f"{seen[DROP]['firing']:.1f} s after the drop; feed {result['total_s']:.1f} s; "
          f"test {time.monotonic() - began:.1f} s")
