"""`leadflow serve --ingest-only --processes N`: several ingest processes on one port
(SO_REUSEPORT). The write keys and their revocation reach every process, a key's quota is one
bucket in shared memory however the kernel spreads its connections, and the events reach the
broker. Real broker; the warehouse over ClickHouse's HTTP interface on the real engine
(tests/chdb_http_server.py), since the serving process and this test both use it."""
from __future__ import annotations

import asyncio
import http.client
import multiprocessing
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest

from leadflow.config import load_settings
from leadflow import warehouse
from leadflow.topics import topics_for
from services.ingest import keys as ingest_keys
from services.ingest.quota import SharedQuotas
from tests.test_ingest_security import topic_values


def _take(quotas: SharedQuotas, key_id: str, tries: int, results) -> None:
    results.put(sum(quotas.retry_after(key_id, 0.001, 100, 10) == 0 for _ in range(tries)))


def test_shared_quotas_are_one_bucket_across_processes():
    context = multiprocessing.get_context("spawn")
    quotas = SharedQuotas(context, processes=2)
    results = context.Queue()
    procs = [context.Process(target=_take, args=(quotas, "k1", 20, results)) for _ in range(2)]
    for p in procs:
        p.start()
    passed = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    # a burst of 100 events, 10 per request, a refill of 0.001 event/s: 10 requests pass in all
    # (per-process buckets would pass 20)
    assert sum(passed) == 10
    assert quotas.retry_after("k1", 0.001, 100, 10) >= 1  # and here too, the same bucket
    assert quotas.retry_after("k2", 0.001, 100, 10) == 0  # another key has its own


def test_a_full_table_falls_back_to_a_share_of_the_quota():
    quotas = SharedQuotas(multiprocessing.get_context("spawn"), processes=2, slots=1)
    assert sum(quotas.retry_after("a", 0.001, 100, 10) == 0 for _ in range(20)) == 10  # the one slot
    # no slot left for "b": a bucket of this process at half the quota
    assert sum(quotas.retry_after("b", 0.001, 100, 10) == 0 for _ in range(20)) == 5


def _listening_pids(port: int) -> set[int]:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(p) for p in re.findall(r"pid=(\d+)", out)}


def _connected_pids(port: int) -> set[int]:
    """The processes that hold the server side of established connections to the port."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    return {int(p) for p in re.findall(r"pid=(\d+)", out)}


async def _post_each_on_its_own_connection(url: str, key: str, bodies: list[bytes]) -> list[int]:
    """Each request on a new connection, so the kernel spreads them over the processes."""
    headers = {"Authorization": f"Bearer {key}"}
    statuses = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for body in bodies:
            async with http.post(url, data=body, headers=headers) as r:
                await r.read()
                statuses.append(r.status)
    return statuses


def _clicks(prefix: str, n: int, per: int) -> list[bytes]:
    return [orjson.dumps([{"event_id": f"{prefix}-{i}-{j}", "type": "ad_click", "occurred_at": "2026-05-01T10:00:00Z",
                           "identity": {"visitor_id": f"v-{i}"}, "campaign_id": "c1", "channel": "search_ads"}
                          for j in range(per)]) for i in range(n)]


def test_serve_processes_share_keys_quotas_and_the_port(settings, chdb_http, tmp_path):
    settings = load_settings(**{**settings.model_dump(), "clickhouse_url": chdb_http.url, "processing": "here"})
    client = warehouse.connect(settings)
    warehouse.migrate(client)
    good_record, good = ingest_keys.create_key(client, "site", 1_000_000, 1_000_000)
    _, tight = ingest_keys.create_key(client, "pbx", 0.001, 100)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")},
           "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "LEADFLOW_CLICKHOUSE_URL": chdb_http.url,
           "LEADFLOW_CLICKHOUSE_DATABASE": settings.clickhouse_database, "LEADFLOW_PROCESSING": "here",
           "LEADFLOW_IDENTITY_SECRET": settings.identity_secret, "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix,
           "LEADFLOW_TOPIC_PARTITIONS": str(settings.topic_partitions), "LEADFLOW_KEYS_REFRESH_S": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "leadflow.cli", "serve", "--ingest-only", "--processes", "2",
                             "--port", "0"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m and "2 processes" in line, proc.stderr.read() if proc.poll() is not None else line
        port = int(m[1])
        url = f"http://127.0.0.1:{port}/v1/events"
        listening = _listening_pids(port)
        assert len(listening) == 2 and proc.pid not in listening  # two ingest processes, not this one's parent

        # 16 connections at once: the kernel spreads them over both processes; one request on each
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(16)]
        for conn in connections:
            conn.connect()
        assert _connected_pids(port) == listening
        for conn, body in zip(connections, _clicks("ok", 16, 2)):
            conn.request("POST", "/v1/events", body=body, headers={"Authorization": f"Bearer {good}"})
            response = conn.getresponse()
            assert response.status == 200, response.read()
            response.read()
            conn.close()
        produced = [orjson.loads(v) for v in asyncio.run(topic_values(settings, topics_for(settings).raw))]
        assert len(produced) == 32 and {e["source"] for e in produced} == {"site"}
        # /metrics, whichever process a scrape reaches, counts the events of both
        for _ in range(6):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:  # a new connection each
                text = r.read().decode()
            assert 'leadflow_events_accepted_total{source="site",type="ad_click"} 32.0' in text, text[:2000]

        # 20 requests of 10 events against a burst of 100: 10 pass, wherever they land
        statuses = asyncio.run(_post_each_on_its_own_connection(url, tight, _clicks("q", 20, 10)))
        assert Counter(statuses) == {200: 10, 429: 10}

        # a revoked key is refused by every process within the refresh
        ingest_keys.revoke_key(client, good_record.key_id)
        deadline = time.monotonic() + 20
        while asyncio.run(_post_each_on_its_own_connection(url, good, _clicks("r", 1, 1))) != [403]:
            assert time.monotonic() < deadline, "the revocation did not arrive"
            time.sleep(0.2)
        time.sleep(0.5)
        assert asyncio.run(_post_each_on_its_own_connection(url, good, _clicks("s", 10, 1))) == [403] * 10
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read()
    assert not _listening_pids(port)
