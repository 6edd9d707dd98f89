"""HTTP ingest security and failure handling (issue 13 item 2, issue 14): write keys, quotas,
limits, timeouts, a broker or warehouse that fails, secrets. Real broker, real chdb."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import socket
import time

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import generate_latest

from leadflow.config import DEV_IDENTITY_SECRET, ConfigError, load_settings
from leadflow.pipeline import Pipeline
from leadflow.secret_guard import SecretMismatch, check_fingerprint, check_identity_secret, redact
from services.ingest import keys as ingest_keys
from leadflow.serve import running_app

CLICK = {"type": "ad_click", "occurred_at": "2026-05-01T10:00:00Z", "identity": {"visitor_id": "v-1"},
         "campaign_id": "c1", "channel": "search_ads"}


def click(i: int, **extra) -> dict:
    return {"event_id": f"s-{i}", **CLICK, **extra}


def with_(settings, **changes):
    return load_settings(**{**settings.model_dump(), **changes})


def secret_part(key: str) -> str:
    """The random part of `lfk_<16 hex id>_<secret>` (the secret may itself hold `_`)."""
    assert len(key) == len("lfk_") + 16 + 1 + 43
    return key[len("lfk_") + 17:]


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def basic(key: str, password: str = "") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()}


@contextlib.asynccontextmanager
async def ingest(settings, client, *, stages: bool = True, auth: bool = True):
    """The ingest app on a free loopback port, with every stage behind it (or none)."""
    store = ingest_keys.KeyStore(client, settings.keys_refresh_s) if auth else None
    pipe_cm = (Pipeline(settings, settings.kafka_bootstrap, client) if stages
               else Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=()))
    async with pipe_cm as pipe:
        async with running_app(settings, pipe, client, "127.0.0.1", 0, keys=store) as (addr, publisher):
            async with aiohttp.ClientSession() as http:
                yield f"http://{addr[0]}:{addr[1]}", http, pipe, publisher


async def post(http, url, body, headers=None):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(f"{url}/v1/events", data=data, headers=headers or {}) as r:
        return r.status, dict(r.headers), await r.read()


async def topic_values(settings, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        out = []
        while True:
            batch = await consumer.getmany(timeout_ms=1500)
            if not batch:
                return out
            out += [r.value for part in batch.values() for r in part]
    finally:
        await consumer.stop()


def all_tables_text(client) -> str:
    """Every row of every table of the test's database, as text."""
    tables = [r[0] for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                         "AND engine NOT LIKE '%View%'").result_rows]
    return "\n".join(client.raw_query(f"SELECT * FROM `{t}` FORMAT TSVRaw").decode("utf-8", "replace")
                     for t in tables)


# -- keys ------------------------------------------------------------------------------------------


def test_keys_authenticate_set_the_source_and_never_leak(settings, client, caplog):
    settings = with_(settings, keys_refresh_s=0.2)
    record, key = ingest_keys.create_key(client, "site", 1000, 5000)
    _, other_key = ingest_keys.create_key(client, "crm", 1000, 5000)
    caplog.set_level(logging.DEBUG)

    async def scenario():
        async with ingest(settings, client) as (url, http, pipe, publisher):
            out = {
                "none": await post(http, url, [click(1)]),
                "unknown": await post(http, url, [click(1)], bearer(key[:-1] + ("A" if key[-1] != "A" else "B"))),
                "garbage": await post(http, url, [click(1)], {"Authorization": "Basic !!!"}),
                "password": await post(http, url, [click(1)], basic(key, "x")),
                "basic": await post(http, url, [click(1)], basic(key)),
                # no source: the key's; the key's own source: fine; another: rejected
                "bearer": await post(http, url, [click(2), click(3, source="site"), click(4, source="crm")],
                                     bearer(key)),
            }
            ingest_keys.revoke_key(client, record.key_id)
            await asyncio.sleep(1.0)  # the background refresh (every 0.2 s) picks the revocation up
            out["revoked"] = await post(http, url, [click(5)], basic(key))
            out["other"] = await post(http, url, [click(6)], bearer(other_key))
            await pipe.drain(publisher.tracker)
            async with http.get(f"{url}/metrics") as r:
                out["metrics"] = await r.text()
        return out

    out = asyncio.run(scenario())
    for name in ("none", "unknown", "garbage", "password"):
        assert out[name][0] == 401, name
        assert "Basic" in out[name][1]["WWW-Authenticate"]
    assert out["basic"][0] == 200
    status, _, body = out["bearer"]
    assert status == 207
    events = orjson.loads(body)["events"]
    assert [e["status"] for e in events] == ["accepted", "accepted", "rejected"]
    assert events[2]["errors"] == [{"path": "source", "message": "source 'crm' differs from the source of the "
                                    "write key ('site'); leave it out or send it with a key of that source"}]
    assert out["revoked"][0] == 403 and record.key_id in orjson.loads(out["revoked"][2])["error"]
    assert out["other"][0] == 200
    rows = client.query("SELECT event_id, source FROM raw_events FINAL ORDER BY event_id").result_rows
    assert rows == [("s-1", "site"), ("s-2", "site"), ("s-3", "site"), ("s-6", "crm")]

    # the keys appear in no topic, no table, no log line, no metric
    secrets_ = [key, other_key, secret_part(key), secret_part(other_key)]
    topics = asyncio.run(_all_topics(settings, pipe_topics(settings)))
    tables = all_tables_text(client)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets_:
        for where, text in (("topics", topics), ("tables", tables), ("logs", logs),
                            ("metrics", out["metrics"] + generate_latest().decode())):
            assert secret not in text, where
    assert hashlib.sha256(key.encode()).hexdigest() in tables  # what is kept: the hash


def pipe_topics(settings):
    from leadflow.topics import topics_for

    return topics_for(settings).all()


async def _all_topics(settings, names) -> str:
    values = []
    for name in names:
        values += await topic_values(settings, name)
    return "\n".join(v.decode("utf-8", "replace") for v in values)


def test_keys_command_line(settings, client, capsys, monkeypatch):
    from leadflow import cli

    for name, value in (("KAFKA_BOOTSTRAP", settings.kafka_bootstrap), ("WAREHOUSE_DIR", str(settings.warehouse_dir)),
                        ("CLICKHOUSE_DATABASE", settings.clickhouse_database),
                        ("IDENTITY_SECRET", settings.identity_secret)):
        monkeypatch.setenv(f"LEADFLOW_{name}", value)
    assert cli.main(["keys", "create", "--source", "pbx", "--rate", "20", "--burst", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[-1]
    assert key.startswith("lfk_") and " " not in key
    assert cli.main(["keys", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["source"], k["rate"], k["burst"], k["revoked_at"]) for k in listed] == [("pbx", 20.0, 50, None)]
    assert key not in json.dumps(listed) and secret_part(key) not in json.dumps(listed)
    assert cli.main(["keys", "revoke", listed[0]["key_id"]]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"] is not None
    assert cli.main(["keys", "create", "--source", "bad source"]) == 2
    assert "--source" in capsys.readouterr().err
    assert cli.main(["keys", "create", "--source", "pbx", "--rate", "0"]) == 2
    assert "--rate must be > 0" in capsys.readouterr().err


# -- broker and warehouse failures ---------------------------------------------------------------------


def test_warehouse_down_ingest_still_accepts(settings, client, monkeypatch):
    """The warehouse is made unreachable after start (its client's calls raise, a stand-in for an outage):
    requests are still answered 200 from the keys in memory, and the events are in the raw topic."""
    settings = with_(settings, keys_refresh_s=0.1)
    _, key = ingest_keys.create_key(client, "site", 1000, 5000)

    async def scenario():
        async with ingest(settings, client, stages=False) as (url, http, pipe, publisher):
            def down(*a, **k):
                raise ConnectionRefusedError("warehouse unreachable")
            for name in ("query", "command", "insert", "raw_query"):
                monkeypatch.setattr(client, name, down)
            await asyncio.sleep(0.3)  # a few failed key refreshes
            answers = [await post(http, url, [click(10 + i)], bearer(key)) for i in range(3)]
            monkeypatch.undo()
            values = await topic_values(settings, pipe.topics.raw)
        return answers, values

    answers, values = asyncio.run(scenario())
    assert [a[0] for a in answers] == [200, 200, 200]
    assert sorted(orjson.loads(v)["event_id"] for v in values) == ["s-10", "s-11", "s-12"]


def test_broker_failure_is_503_and_the_retry_lands(settings, client):
    async def scenario():
        async with ingest(settings, client, auth=False) as (url, http, pipe, publisher):
            real = publisher.producer.send_batch
            calls = {"n": 0}

            async def failing(*a, **k):
                calls["n"] += 1
                raise KafkaTimeoutError()
            publisher.producer.send_batch = failing
            first = await post(http, url, [click(20, source="site"), click(21, source="site")])
            publisher.producer.send_batch = real
            retry = await post(http, url, [click(20, source="site"), click(21, source="site")])
            await pipe.drain(publisher.tracker)
        return first, retry, calls["n"]

    first, retry, calls = asyncio.run(scenario())
    assert calls >= 1
    assert first[0] == 503 and first[1]["Retry-After"] == "5"
    assert retry[0] == 200 and [e["status"] for e in orjson.loads(retry[2])["events"]] == ["accepted", "accepted"]
    assert client.query("SELECT count(), groupArray(event_id) FROM (SELECT event_id FROM raw_events FINAL "
                        "ORDER BY event_id)").result_rows[0] == (2, ["s-20", "s-21"])


# -- quotas ----------------------------------------------------------------------------------------------


def test_quota_429_for_one_key_leaves_another_alone(settings, client):
    _, flood_key = ingest_keys.create_key(client, "flood", 50, 50)  # 50 events/s
    _, calm_key = ingest_keys.create_key(client, "calm", 1000, 2000)

    async def scenario():
        async with ingest(settings, client, stages=False) as (url, http, pipe, publisher):
            async def flood():  # 10 events per request, 50 requests/s: ten times the key's rate
                out = []
                for i in range(50):
                    out.append(await post(http, url, [click(1000 + 10 * i + j) for j in range(10)], bearer(flood_key)))
                    await asyncio.sleep(0.02)
                return out

            async def calm():  # 10 events per request, 20 requests/s: a fifth of its rate
                out = []
                for i in range(20):
                    out.append(await post(http, url, [click(5000 + 10 * i + j) for j in range(10)], bearer(calm_key)))
                    await asyncio.sleep(0.05)
                return out

            return await asyncio.gather(flood(), calm())

    flooded, calm = asyncio.run(scenario())
    limited = [a for a in flooded if a[0] == 429]
    assert limited and all(int(a[1]["Retry-After"]) >= 1 for a in limited)
    assert {a[0] for a in flooded} <= {200, 429}
    assert [a[0] for a in calm] == [200] * 20


def test_token_bucket():
    from services.ingest.quota import TokenBucket

    b = TokenBucket(rate=10, burst=20, updated=0.0)
    assert b.wait_for(15, now=0.0) == 0 and b.tokens == 5
    assert b.wait_for(10, now=0.0) == pytest.approx(0.5)  # 5 more tokens at 10/s
    assert b.wait_for(10, now=0.5) == 0 and b.tokens == 0
    assert b.wait_for(50, now=2.5) == 0 and b.tokens == -30  # bigger than the burst: passes when full
    assert b.wait_for(1, now=2.5) == pytest.approx(3.1)


# -- limits and timeouts ---------------------------------------------------------------------------------


def test_limits(settings, client):
    settings = with_(settings, max_body_bytes=64 * 1024, max_event_bytes=256, max_events_per_request=5,
                     http_body_timeout_s=1.5, http_header_timeout_s=0.5)
    big_event = click(30, source="site", extra="x" * 600)
    big_raw = orjson.dumps(big_event)

    async def scenario():
        async with ingest(settings, client, auth=False) as (url, http, pipe, publisher):
            out = {}
            out["length"] = await post(http, url, b"[" + b" " * (70 * 1024) + b"]")

            async def chunks():
                for _ in range(20):
                    yield b"1\n" * 2048
            async with http.post(f"{url}/v1/events", data=chunks()) as r:
                out["chunked"] = (r.status, await r.read())
            out["lines"] = await post(http, url, b"1\n" * 6)
            out["array"] = await post(http, url, b"[" + b"1," * 5 + b"1]")
            out["many_commas"] = await post(http, url, b"[" + b"1," * 20_000 + b"1]")
            out["five"] = await post(http, url, [click(31 + i, source="site") for i in range(5)])
            out["big_event"] = await post(http, url, big_raw)
            out["big_element"] = await post(http, url, b"[" + big_raw + b"," + orjson.dumps(click(39, source="site"))
                                            + b"]")
            # one element is not JSON (NaN): the others are still accepted, each on its own
            out["bad_element"] = await post(http, url, b'[' + orjson.dumps(click(40, source="site")) + b', {"x": NaN} ,'
                                            + orjson.dumps(click(41, source="site")) + b']')
            out["broken_array"] = await post(http, url, b'[{"a": 1}, {"b": ]')
            out["header_timeout"] = await asyncio.to_thread(_slow_headers, url)
            out["body_timeout"] = await asyncio.to_thread(_slow_body, url)
            # a body slower than the header timeout but within the body timeout is fine
            out["slow_upload"] = await asyncio.to_thread(_slow_upload, url, orjson.dumps([click(45, source="site")]))
            await pipe.drain(publisher.tracker)
        return out

    out = asyncio.run(scenario())
    assert out["length"][0] == 413
    assert out["chunked"][0] == 413
    for name in ("lines", "array", "many_commas"):
        assert out[name][0] == 413, name
        assert "more than 5 events in one request" in orjson.loads(out[name][2])["error"]
    assert out["five"][0] == 200
    assert out["big_event"][0] == 422
    assert out["header_timeout"].startswith(b"HTTP/1.1 408")
    assert out["body_timeout"].startswith(b"HTTP/1.1 408")
    assert out["slow_upload"].startswith(b"HTTP/1.1 200"), out["slow_upload"]
    assert out["big_element"][0] == 207
    assert [e["status"] for e in orjson.loads(out["big_element"][2])["events"]] == ["rejected", "accepted"]
    assert out["bad_element"][0] == 207
    assert [e["status"] for e in orjson.loads(out["bad_element"][2])["events"]] == ["accepted", "rejected", "accepted"]
    assert out["broken_array"][0] == 422 and orjson.loads(out["broken_array"][2])["received"] == 1
    dead = client.query("SELECT raw_payload, raw_length, raw_sha256, error_kind FROM dead_letters FINAL "
                        "ORDER BY raw_length DESC", column_formats={"raw_payload": "bytes"}).result_rows
    assert dead == [(big_raw[:256], len(big_raw), hashlib.sha256(big_raw).hexdigest(), "size"),  # posted twice: one dead letter
                    (b'[{"a": 1}, {"b": ]', 18, hashlib.sha256(b'[{"a": 1}, {"b": ]').hexdigest(), "not_json"),
                    (b'{"x": NaN}', 10, hashlib.sha256(b'{"x": NaN}').hexdigest(), "not_json")]


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _slow_headers(url: str) -> bytes:
    with _connect(url) as s:
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        return s.recv(200)


def _slow_upload(url: str, body: bytes) -> bytes:
    with _connect(url) as s:
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        half = len(body) // 2
        s.sendall(body[:half])
        time.sleep(0.8)  # past the header timeout, within the body timeout
        s.sendall(body[half:])
        return s.recv(200)


def _slow_body(url: str) -> bytes:
    with _connect(url) as s:
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
        return s.recv(200)


# -- secrets ---------------------------------------------------------------------------------------------


def test_dev_secret_refused_with_a_broker_or_server(settings):
    check_identity_secret(load_settings(identity_secret=DEV_IDENTITY_SECRET))  # embedded default: fine
    check_identity_secret(settings)
    for where in ({"kafka_bootstrap": "k:9092"}, {"clickhouse_url": "http://ch:8123"}):
        with pytest.raises(ConfigError, match="LEADFLOW_IDENTITY_SECRET"):
            check_identity_secret(load_settings(identity_secret=DEV_IDENTITY_SECRET, **where))


def test_fingerprint_refuses_another_secret(settings, client):
    check_fingerprint(client, settings.identity_secret)
    check_fingerprint(client, settings.identity_secret)
    with pytest.raises(SecretMismatch, match="another identity_secret"):
        check_fingerprint(client, "another-secret")

    async def start():
        async with Pipeline(with_(settings, identity_secret="another-secret"), settings.kafka_bootstrap, client):
            pass
    with pytest.raises(SecretMismatch):
        asyncio.run(start())


def test_redact():
    assert redact("cannot open http://alice:s3cr%40t@ch:8123/db: refused") == \
        "cannot open http://alice:***@ch:8123/db: refused"
    assert redact("https://ch.example:8443/?user=a&password=hunter2&x=1") == \
        "https://ch.example:8443/?user=a&password=***&x=1"
    assert redact("http://ch:8123/ and user@host") == "http://ch:8123/ and user@host"


def test_no_auth_only_on_loopback(capsys):
    from leadflow import cli
    from services.ingest.http import is_loopback

    assert cli.main(["serve", "--no-auth", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-auth is allowed only on a loopback address" in err
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "10.0.0.1", "example.com")] == \
        [True, True, True, False, False]


def test_a_warehouse_password_never_reaches_an_error_line(monkeypatch, capsys, tmp_path):
    from leadflow import cli

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("LEADFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_URL", "http://alice:hunter2@127.0.0.1:1/")
    monkeypatch.setenv("LEADFLOW_IDENTITY_SECRET", "a-production-secret")
    assert cli.main(["keys", "list"]) == 1
    err = capsys.readouterr().err
    assert "cannot open warehouse http://alice:***@127.0.0.1:1/" in err and "hunter2" not in err
