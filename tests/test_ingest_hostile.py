"""Hostile input on HTTP ingest (issue 14 item 5): every field of every event type given every JSON
kind, and bodies no JSON parser likes. Nothing yields a 5xx; nothing reaches a topic or a table as
NaN, infinity or a string that does not encode; every rejected input is a dead letter holding
exactly its bytes. A Hypothesis property checks that validation is total and that what it accepts
round-trips. Real broker and chdb for the HTTP part."""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from leadflow.config import load_settings
from leadflow.pipeline import Pipeline
from services.ingest.body import BodyRefused, split_body
from leadflow.serve import running_app
from services.ingest.publish import Parsed
from services.ingest.sink import raw_row
from services.ingest.validate import AcceptedEvent, DeadLetter, InputOccurrences, Validator

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"null": None, "bool": True, "int": 7, "float": 2.5, "string": "x", "array": [1, "a"], "object": {"a": 1}}


def samples() -> dict[str, dict]:
    """One valid event of each type, from the shipped sample file."""
    out: dict[str, dict] = {}
    for line in (ROOT / "leadflow" / "samples" / "sample.jsonl").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") and event["type"] not in out:
            out[event["type"]] = event
    return out


def field_variants() -> list[bytes]:
    """Every field (and identity/utm member) of every event type set to each JSON kind."""
    lines = []
    n = 0
    for event in samples().values():
        paths = [(k,) for k in event] + [(k, sub) for k, v in event.items() if isinstance(v, dict) for sub in v]
        for path in paths:
            for value in KINDS.values():
                n += 1
                variant = json.loads(json.dumps(event))
                if path != ("event_id",):
                    variant["event_id"] = f"hostile-{n}"
                target = variant
                for p in path[:-1]:
                    target = target[p]
                target[path[-1]] = value
                lines.append(json.dumps(variant).encode())
    return lines


def special_bodies() -> list[bytes]:
    base = samples()["ad_click"]
    text = json.dumps({**base, "event_id": "special"})
    return [
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting, as an array body
        ('{"a":' * 5_000 + "1" + "}" * 5_000).encode(),  # deep nesting, one line
        text.replace('"special"', "1" + "0" * 5_000).encode(),  # a 5,000-digit integer as the event id
        text.replace('"special"', '"big"', 1).replace('"search_ads"', "1" + "0" * 5_000).encode(),
        text.replace('"special"', "1e400").encode(),
        text.replace('"special"', "NaN").encode(),
        text.replace('"special"', "-Infinity").encode(),
        text.replace('{', '{"event_id": "dup-a", ', 1).encode(),  # duplicate keys (the last wins)
        b"\xef\xbb\xbf" + text.encode(),  # a BOM
        text.encode("utf-16"),  # UTF-16 with its BOM
        text.encode("utf-16-le"),
        text.replace('"special"', '"caf\xe9"').encode("latin-1"),  # invalid UTF-8
        text.replace('"special"', '"\\ud800"').encode(),  # a lone surrogate, escaped
        text.replace('"special"', '"a\\udfff"').replace('"v-', '"\\ud83d').encode(),
        text.replace('"special"', '"lone"').replace('"c1"', '"\xed\xa0\x80"', 1).encode("latin-1"),  # raw surrogate
        text.replace('"special"', '"\\u0000nul"').encode(),
    ]


def strict_json(value: bytes):
    """Parse as the warehouse sink does, refusing NaN and Infinity tokens and undecodable text."""
    value.decode("utf-8")  # strict
    return json.loads(value, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


async def _post_all(settings, client, bodies):
    async with Pipeline(settings, settings.kafka_bootstrap, client) as pipe:
        async with running_app(settings, pipe, client, "127.0.0.1", 0) as (addr, publisher):
            url = f"http://{addr[0]}:{addr[1]}/v1/events"
            answers = []
            async with aiohttp.ClientSession() as http:
                for body in bodies:
                    async with http.post(url, data=body, headers={"X-Leadflow-Source": "hostile"}) as r:
                        answers.append((r.status, await r.read()))
            await pipe.drain(publisher.tracker)
    return answers


def test_hostile_input_over_http(settings, client):
    variants = field_variants()
    specials = special_bodies()
    chunks = [b"\n".join(variants[i:i + 500]) for i in range(0, len(variants), 500)]
    answers = asyncio.run(_post_all(settings, client, chunks + specials))
    assert all(status < 500 for status, _ in answers), [s for s, _ in answers]
    assert all(status in (200, 207, 422) for status, _ in answers)

    # what each input became, from the answers
    rejected: Counter = Counter()
    accepted_ids = set()
    for body, (status, payload) in zip(chunks + specials, answers):
        events = orjson.loads(payload)["events"]
        stripped = body.strip()
        if stripped.startswith(b"["):  # only the deeply nested array: too much structure to split
            inputs = [stripped]
        else:
            inputs = [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]
        assert len(events) == len(inputs)
        for raw, event in zip(inputs, events):
            if event["status"] == "rejected":
                rejected[raw] += 1
                assert event["errors"]
            elif event["status"] == "accepted":
                accepted_ids.add(event["event_id"])
    assert len(variants) > 700 and sum(rejected.values()) > 500 and len(accepted_ids) > 50

    # every rejected input is a dead letter with exactly its bytes
    stored = client.query("SELECT raw_payload, raw_length FROM dead_letters FINAL",
                          column_formats={"raw_payload": "bytes"}).result_rows
    assert Counter(raw for raw, _ in stored) == rejected
    assert all(length == len(raw) for raw, length in stored)

    # nothing accepted holds NaN, infinity or text that does not encode
    rows = client.query("SELECT event_id, payload FROM raw_events FINAL", column_formats={"payload": "bytes"})
    assert {r[0] for r in rows.result_rows} == accepted_ids
    for _, payload in rows.result_rows:
        strict_json(payload)
        assert not re.search(rb"\\ud[89a-f]", payload, re.IGNORECASE)


# -- the property ----------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SAMPLES = samples()


@st.composite
def event_like(draw):
    """A sample event with some fields replaced by arbitrary JSON (NaN and Infinity written as such)."""
    event = dict(draw(st.sampled_from(sorted(SAMPLES.items())))[1])
    for key in draw(st.lists(st.sampled_from(sorted(event) + ["extra"]), max_size=3)):
        event[key] = draw(JSON)
    return json.dumps(event).encode("utf-8", "surrogatepass")


BODIES = st.one_of(
    event_like(),
    st.lists(event_like(), min_size=1, max_size=4).map(lambda xs: b"\n".join(xs)),
    st.lists(event_like(), min_size=1, max_size=4).map(lambda xs: b"[" + b",".join(xs) + b"]"),
    st.binary(max_size=200),
    JSON.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
)

VALIDATOR = Validator(load_settings())


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
def test_validation_is_total_and_accepted_events_round_trip(body):
    try:
        items = split_body(body, max_events=2500)
    except BodyRefused as refused:
        assert refused.status == 413
        return
    occurrences = InputOccurrences()
    for item in items:
        if isinstance(item, Parsed):
            result = VALIDATOR.check_value(item.value, item.raw, origin="http", default_source="p",
                                           occurrences=occurrences)
            raw = item.raw()
        else:
            result = VALIDATOR.check(item, origin="http", default_source="p", occurrences=occurrences)
            raw = item
        if isinstance(result, DeadLetter):
            assert result.raw == raw and result.raw_length == len(raw)
            strict_json(result.to_message())  # the dead-letter message itself encodes
            if not isinstance(item, Parsed):
                assert body.find(raw) >= 0  # the bytes are the input's
        else:
            assert isinstance(result, AcceptedEvent)
            event = strict_json(result.value)
            assert orjson.dumps(orjson.loads(result.value)) == result.value
            assert raw_row(event, result.value)[0] == result.event_id  # what the warehouse sink stores


# -- memory under hostile load ---------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.alone  # another test process beside it changes how many bodies are in memory at once
def test_fifty_hostile_requests_at_once_hold_memory_down(settings, tmp_path):
    """`serve --ingest-only --no-auth` in its own process; 50 requests of up to 10 MiB at once (JSON
    Lines of `1`, a huge array, a malformed array, chunked bodies of unknown size, a body over the
    limit) raise its RSS by less than 50 MiB."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")},
           "LEADFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "LEADFLOW_IDENTITY_SECRET": settings.identity_secret,
           "LEADFLOW_WAREHOUSE_DIR": str(tmp_path / "wh"), "LEADFLOW_TOPIC_PREFIX": settings.topic_prefix}
    proc = subprocess.Popen([sys.executable, "-m", "leadflow.cli", "serve", "--ingest-only", "--no-auth",
                             "--port", "0"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, proc.stderr.read() if proc.poll() is not None else line
        url = f"http://127.0.0.1:{m[1]}/v1/events"
        mib = 1 << 20
        bodies = [
            b"1\n" * (5 * mib),  # 10 MiB of lines
            b"[" + b"1," * (5 * mib - 1) + b"1]",  # an array of 5M elements
            b"[" + b'{"a": "' + b"x" * (9 * mib) + b'"',  # a malformed array of 9 MiB
            b'{"event_id": "' + b"y" * (4 * mib) + b'"}\n' * 2,  # events over max_event_bytes
            b"x" * (11 * mib),  # over the body limit
        ]

        async def load():
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
                async def one(i):
                    body = bodies[i % len(bodies)]
                    if i % 7 == 3:  # chunked: no Content-Length
                        async def gen():
                            for k in range(0, len(body), mib):
                                yield body[k:k + mib]
                        data = gen()
                    else:
                        data = body
                    try:
                        async with http.post(url, data=data) as r:
                            await r.read()
                            return r.status
                    except aiohttp.ClientError:
                        return "closed"  # a 413 closes the connection while the client still sends
                return await asyncio.gather(*(one(i) for i in range(50)))

        # warm up: the first request loads what every request uses
        asyncio.run(_one_small(url))
        time.sleep(0.5)
        before = _rss_kib(proc.pid)
        statuses = asyncio.run(load())
        after = _rss_kib(proc.pid)
        print(f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB; statuses {Counter(statuses)}")
        assert all(s == "closed" or s < 500 for s in statuses), statuses
        assert after - before < 50 * 1024, f"RSS grew {(after - before) / 1024:.1f} MiB"
        assert asyncio.run(_one_small(url)) == 200  # and it still serves
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def _one_small(url: str) -> int:
    event = {**SAMPLES["ad_click"], "event_id": f"warm-{time.time_ns()}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=orjson.dumps([event])) as r:
            await r.read()
            return r.status
