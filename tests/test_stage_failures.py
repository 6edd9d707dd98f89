"""Stage failures through the real pipeline, CLI and HTTP: a poison record reaches the dead-letter
table with its error while the rest goes on; a stage that gives up ends `worker` and `serve` with
exit code 1 and one line, and /healthz answers 503 naming it meanwhile."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest

from leadflow import cli
from leadflow.pipeline import Pipeline
from leadflow.stream import send_all
from services.ingest.publish import Publisher
from services.ingest.validate import InputOccurrences, Validator
from tests.test_workers import EVENTS as WORKER_EVENTS

EVENTS = WORKER_EVENTS[:3]  # a click, a lead, a deal of one person
POISON = b'{"event_id": "f-poison", "source": "old-sink"}'  # no type: enrich cannot handle it


def test_poison_record_goes_to_the_dead_letter_table(settings, client):
    async def scenario():
        async with Pipeline(settings, settings.kafka_bootstrap, client) as pipe:
            # as if an older sink had forwarded it: straight into enrich's input
            await send_all(pipe.producer, pipe.topics.stored, [(b"k", POISON)], pipe.raw_sink.forwarded)
            await send_all(pipe.producer, pipe.topics.deadletter, [(b"k", b"garbage")])  # and into its own sink's
            publisher = Publisher(Validator(settings), pipe.producer, pipe.topics,
                                  max_event_bytes=settings.max_event_bytes)
            await publisher.publish([json.dumps(e).encode() for e in EVENTS], origin="t", default_source="t",
                                    occurrences=InputOccurrences())
            await pipe.drain(publisher.tracker, timeout_s=60)
            for _ in range(300):  # the dead letter goes through the dead-letter topic and its sink
                rows = client.query("SELECT origin, event_id, error_kind, errors, raw_payload, processor "
                                    "FROM dead_letters FINAL ORDER BY origin DESC").result_rows
                if len(rows) == 2:
                    break
                await asyncio.sleep(0.05)
            pipe.check_stages()
            return rows, pipe.health()

    rows, (healthy, report) = asyncio.run(scenario())
    assert healthy and report["status"] == "ok"
    [(origin, event_id, kind, errors, raw, processor), garbage] = rows
    assert garbage[0].startswith(f"deadletter-sink:{settings.topic_prefix}.events.deadletter[")
    with pytest.raises(orjson.JSONDecodeError) as decoding:
        orjson.loads(b"garbage")
    assert garbage[2:] == ("processing", [{"path": "", "message": f"deadletter-sink: JSONDecodeError: {decoding.value}"}],
                           "garbage", "leadflow-stage")
    assert origin.startswith(f"enrich:{settings.topic_prefix}.events.stored[") and event_id == "f-poison"
    assert (kind, errors, raw, processor) == ("processing", [{"path": "", "message": "enrich: KeyError: 'type'"}],
                                              POISON.decode(),
                                              "leadflow-stage")
    assert client.query("SELECT channels, credits FROM attribution_credits FINAL WHERE model = 'linear'"
                        ).result_rows == [(["display_ads", "email"], [0.5, 0.5])]


def _env(settings, monkeypatch, **extra) -> None:
    values = {"KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "WAREHOUSE_DIR": str(settings.warehouse_dir),
              "CLICKHOUSE_DATABASE": settings.clickhouse_database, "TOPIC_PREFIX": settings.topic_prefix,
              "TOPIC_PARTITIONS": "1", "STAGE_RETRY_SECONDS": "1", "STAGE_BACKOFF_INITIAL_SECONDS": "0.05",
              "STAGE_BACKOFF_MAX_SECONDS": "0.2", **extra}
    for key, value in values.items():
        monkeypatch.setenv(f"LEADFLOW_{key}", value)


def test_worker_exits_nonzero_when_a_stage_gives_up(settings, client, monkeypatch, capsys):
    async def publish():
        async with Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=()) as pipe:
            publisher = Publisher(Validator(settings), pipe.producer, pipe.topics,
                                  max_event_bytes=settings.max_event_bytes)
            await publisher.publish([json.dumps(EVENTS[0]).encode()], origin="t", default_source="t",
                                    occurrences=InputOccurrences())

    asyncio.run(publish())
    client.command("RENAME TABLE raw_events TO raw_events_away")  # the sink cannot read or write
    _env(settings, monkeypatch)
    started = time.monotonic()
    code = cli.main(["worker", "--stage", "warehouse-sink"])
    err = capsys.readouterr().err.strip().splitlines()
    client.command("RENAME TABLE raw_events_away TO raw_events")
    assert code == 1
    assert err[-1].startswith("leadflow: error: PipelineError: stage warehouse-sink stopped: ") and \
        "UNKNOWN_TABLE" in err[-1]
    assert time.monotonic() - started < 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return 0, {}


def test_serve_answers_503_then_exits_nonzero_when_a_stage_gives_up(settings, client, monkeypatch, capsys):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    _env(settings, monkeypatch)
    seen: list[tuple[int, dict]] = []

    def operator() -> None:
        for _ in range(600):
            status, body = _get(f"{base}/healthz")
            if status == 200:
                seen.append((status, body))
                break
            time.sleep(0.05)
        client.command("RENAME TABLE enriched_events TO enriched_events_away")  # enrich cannot write
        request = urllib.request.Request(f"{base}/v1/events", data=json.dumps(EVENTS[0]).encode(), method="POST")
        urllib.request.urlopen(request, timeout=10).read()
        for _ in range(600):
            status, body = _get(f"{base}/healthz")
            if status != 200:
                seen.append((status, body))
                return
            time.sleep(0.02)

    thread = threading.Thread(target=operator)
    thread.start()
    code = cli.main(["serve", "--port", str(port)])
    thread.join(30)
    client.command("RENAME TABLE enriched_events_away TO enriched_events")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("leadflow: error: PipelineError: stage enrich stopped: ")
    assert seen[0][0] == 200 and seen[0][1]["status"] == "ok"
    status, body = seen[1]
    assert status == 503 and body["status"] == "stopped" and body["stopped"] == ["enrich"]
    assert body["stages"]["enrich"]["state"] == "stopped" and "UNKNOWN_TABLE" in body["stages"]["enrich"]["error"]
    assert body["stages"]["warehouse-sink"]["state"] == "running"
