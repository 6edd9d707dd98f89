"""`leadflow forget` (contract v1.1 section 5) with a canary person.

A small simulated business plus a canary person with distinctive values (an email, a
phone, a CRM id, a visitor id, each sent in several forms), who clicked, chatted, called,
answered two surveys, became a lead and a customer, and left three dead letters holding
their values as sent. After `forget --email` (in the un-normalised form):

* no table holds any form of their values, any kind of their keyed hashes, their person id
  or their event, conversation and call ids: a query over every column of every table;
* nor do the warehouse's files: every file of the chdb directory, read as it is and, for the
  compressed column files, decompressed (ClickHouse's LZ4 blocks keep short strings readable
  but hide repeated ones, and chdb writes some files with ZSTD, which hides everything, so a
  plain grep of a part proves little: the check decompresses each block (lz4, zstandard) and asserts it found the values before forget, so it can
  fail);
* every KPI equals the independent reference (tests/reference/kpis.py) computed on the input
  without the canary's events;
* a later event with their phone in another format, and a replay of the whole old file,
  are dropped, counted (replay summary, leadflow_events_suppressed_total) and change nothing.
"""
from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import lz4.block
import orjson
import pytest
import zstandard

from leadflow import metrics
from leadflow.privacy import IdentityHasher
from leadflow.replay import replay
from services.attribution.kpis import compute_kpis
from tests.test_kpi_sql import compare_all, read_jsonl

VISITOR = "v-canary-7731"
EMAIL_SENT = " Canary.Person+Erase@Example.ORG "
EMAIL = "canary.person+erase@example.org"
PHONE_SENT = "+44 20 7946 0958"
PHONE = "+442079460958"
CRM = "crm-canary-4411"
IDS = ("ev-canary-", "conv-canary-1", "call-canary-1", "D-canary-1", "P-canary-1", "L-canary-1")
PERIODS = [(None, None), (date(2026, 5, 1), date(2026, 5, 2))]


def canary_events() -> list[dict]:
    def ev(n: int, type_: str, at: str, **fields) -> dict:
        return {"event_id": f"ev-canary-{n}", "type": type_, "occurred_at": at, "source": "site", **fields}

    conv = {"conversation_id": "conv-canary-1"}
    return [
        # the first click of search-sofas: the campaign's first touch moves when it goes
        ev(1, "ad_click", "2026-05-01T00:00:01Z", identity={"visitor_id": VISITOR}, campaign_id="search-sofas",
           channel="search_ads"),
        ev(2, "conversation_started", "2026-05-01T09:00:00Z", identity={"visitor_id": VISITOR}, channel="chat",
           initiated_by="visitor", campaign_id="search-sofas", **conv),
        ev(3, "message", "2026-05-01T09:00:05Z", identity={"visitor_id": VISITOR}, author="visitor",
           text_length=40, **conv),
        ev(4, "message", "2026-05-01T09:00:50Z", author="operator", operator_id="op-anna", text_length=80, **conv),
        ev(5, "conversation_closed", "2026-05-01T09:10:00Z", resolved=True, **conv),
        ev(6, "survey_response", "2026-05-01T09:12:00Z", survey="csat", score=1, operator_id="op-anna", **conv),
        ev(7, "lead", "2026-05-01T09:05:00Z", identity={"visitor_id": VISITOR, "email": EMAIL_SENT},
           lead_id="L-canary-1", channel="search_ads", campaign_id="search-sofas", form="chat"),
        ev(8, "deal_won", "2026-05-01T15:00:00Z", identity={"email": EMAIL.upper(), "phone": PHONE_SENT,
                                                            "crm_contact_id": CRM},
           deal_id="D-canary-1", revenue=4321.5, currency="USD"),
        ev(9, "call_completed", "2026-05-01T12:02:00Z", identity={"phone": "0044 20 7946 0958"}, call_id="call-canary-1",
           direction="inbound", started_at="2026-05-01T12:00:00Z", answered_at="2026-05-01T12:00:07Z",
           ended_at="2026-05-01T12:02:00Z", outcome="answered", operator_id="op-dmitri", queue="sales",
           tracking_number="+18005550100"),
        ev(10, "survey_response", "2026-05-01T12:05:00Z", survey="nps", score=0, call_id="call-canary-1"),
        ev(11, "payment", "2026-05-02T10:00:00Z", identity={"crm_contact_id": CRM}, payment_id="P-canary-1",
           amount="250.00", currency="USD"),
    ]


def canary_dead_letters() -> list[str]:
    return [
        # schema error (no lead_id), the email in yet another case
        json.dumps({"event_id": "ev-canary-bad-1", "type": "lead", "occurred_at": "2026-05-01T10:00:00Z",
                    "source": "site", "identity": {"email": "CANARY.person+erase@example.org"}, "channel": "search_ads"}),
        # not JSON at all, the phone in international-prefix form
        "callback please {phone: 0044 (20) 7946-0958}",
        # schema error, only the CRM id
        json.dumps({"event_id": "ev-canary-bad-2", "type": "deal_won", "occurred_at": "2026-05-01T10:00:00Z",
                    "source": "crm", "identity": {"crm_contact_id": CRM}}),
    ]


UNRELATED_DEAD_LETTER = "this line is not JSON and names nobody"


@pytest.fixture(scope="module")
def sim_lines(tmp_path_factory) -> list[str]:
    from leadflow.simulator import SimulationConfig, write_jsonl

    path = tmp_path_factory.mktemp("erasure-sim") / "sim.jsonl"
    # no invalid lines of its own: the dead letters of this test are the canary's and one unrelated
    write_jsonl(SimulationConfig(days=2, seed=5, visitors_per_day=60, start=date(2026, 5, 1), invalid_share=0.0), path)
    return [line for line in path.read_text().splitlines() if line.strip()]


def needles(settings) -> dict[str, bytes]:
    """Every form of the canary's data that must vanish: values as sent and normalised, each
    kind's keyed hash and its digest alone, the person id (a prefix of a digest), their ids."""
    hasher = IdentityHasher(settings.identity_secret)
    out = {f"value {v!r}": v.strip().lower().encode()
           for v in (VISITOR, EMAIL_SENT, EMAIL, PHONE_SENT, PHONE, "0044 20 7946 0958", "0044 (20) 7946-0958", CRM)}
    for kind, value in (("visitor_id", VISITOR), ("email", EMAIL), ("phone", PHONE), ("crm_contact_id", CRM)):
        key = hasher.hash(kind, value)
        digest = key.partition(":")[2]
        out[f"{kind} hash"] = key.encode()
        out[f"{kind} digest"] = digest.encode()
        out[f"{kind} person id"] = f"p-{digest[:20]}".encode()
    out.update({f"id {i}": i.lower().encode() for i in IDS})
    return out


def table_hits(client, found: dict[str, bytes]) -> dict[str, list[str]]:
    """needle name -> tables where some column (any type, as text) contains it (case-insensitive)."""
    tables = [r[0] for r in client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'").result_rows]
    hits: dict[str, list[str]] = {}
    for table in tables:
        cols = [r[0] for r in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
            parameters={"t": table}).result_rows]
        text = "concat(" + ", '|', ".join(f"toString(`{c}`)" for c in cols) + ")" if len(cols) > 1 \
            else f"toString(`{cols[0]}`)"
        names = list(found)
        row = client.query(
            f"SELECT {', '.join(f'countIf(positionCaseInsensitive({text}, {{n{i}:String}}) > 0)' for i in range(len(names)))} "
            f"FROM `{table}`", parameters={f"n{i}": found[n].decode() for i, n in enumerate(names)}).result_rows[0]
        for name, n in zip(names, row):
            if n:
                hits.setdefault(name, []).append(f"{table}:{n}")
    return hits


def decompressed(data: bytes) -> bytes | None:
    """The content of a ClickHouse compressed file (blocks of: 16-byte checksum, method byte,
    compressed size with the 9-byte header, uncompressed size, data), None if it is not one."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 25 > len(data):
            return None
        method = data[pos + 16]
        size = int.from_bytes(data[pos + 17:pos + 21], "little")
        raw_size = int.from_bytes(data[pos + 21:pos + 25], "little")
        if size < 9 or pos + 16 + size > len(data):
            return None
        body = data[pos + 25:pos + 16 + size]
        if method == 0x82:
            try:
                out.append(lz4.block.decompress(body, uncompressed_size=raw_size))
            except lz4.block.LZ4BlockError:
                return None
        elif method == 0x02:
            out.append(body)
        elif method == 0x90:
            try:
                out.append(zstandard.ZstdDecompressor().decompress(body, max_output_size=raw_size))
            except zstandard.ZstdError:
                return None
        else:
            return None
        pos += 16 + size
    return b"".join(out)


def disk_hits(root: Path, found: dict[str, bytes]) -> tuple[dict[str, list[str]], int]:
    """needle name -> files holding it (as stored or decompressed); and how many files were decompressed."""
    hits: dict[str, list[str]] = {}
    inflated = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        plain = decompressed(data)
        inflated += plain is not None
        views = [data.lower()] + ([plain.lower()] if plain is not None else [])
        for name, needle in found.items():
            if any(needle in view for view in views):
                hits.setdefault(name, []).append(str(path.relative_to(root)))
    return hits, inflated


def reload_tables(client) -> None:
    """Detach and attach every table: what a new `leadflow forget` process does on chdb (it loads
    the tables with migration 0022's cleanup settings, which a table created in this process
    only takes at its next load), so forget's wait for the replaced parts is ~1 s, not 30-40."""
    for (table,) in client.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                 "AND engine LIKE '%MergeTree'").result_rows:
        client.command(f"DETACH TABLE `{table}`")
        client.command(f"ATTACH TABLE `{table}`")


def _run_replay(settings, path: Path):
    return asyncio.run(replay(settings, [path], show_progress=False))


def _forget(settings, monkeypatch, capsys, *args: str) -> dict:
    from leadflow.cli import main

    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    capsys.readouterr()
    code = main(["forget", *args, "--format", "json", "--warehouse", str(settings.warehouse_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err
    return orjson.loads(out.out)


def _suppressed_metric(stage: str, type_: str) -> float:
    return metrics.EVENTS_SUPPRESSED.labels(stage=stage, type=type_)._value.get()


def test_forget_erases_the_canary_everywhere_and_keeps_them_out(client, settings, sim_lines, tmp_path,
                                                                 monkeypatch, capsys):
    canary = [json.dumps(e) for e in canary_events()]
    dead = canary_dead_letters()
    full = tmp_path / "with-canary.jsonl"
    full.write_text("\n".join(sim_lines + canary + dead + [UNRELATED_DEAD_LETTER]) + "\n")
    first = _run_replay(settings, full)
    assert first.rejected == len(dead) + 1
    sim_ids = {json.loads(x)["event_id"] for x in sim_lines}
    assert first.accepted == len(sim_ids) + len(canary)
    found = needles(settings)
    root = Path(settings.warehouse_dir)

    # the checks can fail: before forget they find the canary in tables and in the files
    before = table_hits(client, found)
    every_kind = {f"{kind} {what}" for kind in ("visitor_id", "email", "phone", "crm_contact_id")
                  for what in ("hash", "digest")}
    assert every_kind | {f"value {EMAIL_SENT!r}", f"value {CRM!r}", "id conv-canary-1"} <= set(before)
    on_disk, inflated = disk_hits(root, found)
    assert inflated > 0 and every_kind | {f"value {EMAIL_SENT!r}"} <= set(on_disk)

    reload_tables(client)
    report = _forget(settings, monkeypatch, capsys, "--email", EMAIL_SENT)
    assert report["found"] is True
    assert report["identity_values"] == {"crm_contact_id": 1, "email": 1, "phone": 1, "visitor_id": 1}
    assert report["suppressed"] == 4
    removed = report["removed"]
    assert removed["raw_events"] == len(canary)
    assert removed["dead_letters"] == len(dead)  # the unrelated one stays
    assert removed["person_keys"] == 4
    assert removed["clicks"] == 1 and removed["leads"] == 1 and removed["deals"] == 1 and removed["payments"] == 1
    assert removed["calls"] == 1 and removed["call_latest"] == 1 and removed["surveys"] == 2
    assert removed["conversation_facts"] == 1 and removed["conversation_events"] == 5  # started, 2 messages, close, csat
    assert removed["enriched_events"] == len(canary) and removed["click_firsts"] == 1
    assert removed["attribution_credits"] >= 5  # a credit row per model (older versions too, before merges)
    assert removed["person_profiles"] >= 1 and removed["attribution_queue"] >= 1
    assert report["recomputed"]["campaigns"] == 1
    assert report["pending_parts"] == 0
    assert client.query("SELECT count() FROM dead_letters").result_rows[0][0] == 1

    assert disk_hits(root, found)[0] == {}
    # ClickHouse keeps mutation commands (in system.mutations, and in files: read above): forget's
    # name its Memory work table, never a value
    commands = [r[0] for r in client.query("SELECT command FROM system.mutations "
                                           "WHERE database = currentDatabase()").result_rows]
    assert sum("erasure_work_" in c for c in commands) == len(removed)
    assert not [c for c in commands for n in found.values() if n.decode() in c.lower()]
    assert table_hits(client, found) == {}
    expected_input = tmp_path / "without-canary.jsonl"  # the input without the canary's events
    expected_input.write_text("\n".join(sim_lines) + "\n")
    reference_input = read_jsonl(expected_input)
    cells, bad = compare_all(client, settings, reference_input, PERIODS[:1], kpis=compute_kpis)  # every grouping, model, KPI
    assert cells > 500 and not bad, "\n".join(bad[:40])

    # a later event with their phone, in another format: dropped at ingest and counted
    before_ingest = _suppressed_metric("ingest", "call_completed")
    later = tmp_path / "later.jsonl"
    later.write_text(json.dumps({
        "event_id": "ev-later-1", "type": "call_completed", "occurred_at": "2026-05-02T12:02:00Z", "source": "pbx",
        "identity": {"phone": "+44.20.7946.0958"}, "call_id": "call-later-1",
        "direction": "inbound", "started_at": "2026-05-02T12:00:00Z", "answered_at": "2026-05-02T12:00:07Z",
        "ended_at": "2026-05-02T12:02:00Z", "outcome": "answered", "operator_id": "op-dmitri"}) + "\n")
    summary = _run_replay(settings, later)
    assert (summary.read, summary.accepted, summary.duplicates, summary.rejected, summary.suppressed) == (1, 0, 0, 0, 1)
    assert _suppressed_metric("ingest", "call_completed") == before_ingest + 1

    # replaying the old file brings nothing back: their events and dead letters are dropped (by the
    # publishing child process, which gets the list from this one: it cannot open the embedded warehouse)
    again = asyncio.run(replay(settings, [full], show_progress=False, child_process_min_bytes=0))
    assert again.suppressed == len(canary) + len(dead)
    assert again.accepted == 0 and again.rejected == 1
    assert table_hits(client, found) == {}
    cells, bad = compare_all(client, settings, reference_input, PERIODS, models=("linear",),
                            kpis=compute_kpis)
    assert cells > 200 and not bad, "\n".join(bad[:40])


def test_the_warehouse_sink_drops_what_ingest_let_through(client, settings, sim_lines, tmp_path, monkeypatch, capsys):
    """An event of a forgotten value that reached the raw topic anyway (produced before the
    forget, or by an ingest whose list was stale) is not stored by the warehouse sink."""
    import leadflow.replay as replay_module
    from services.ingest.suppression import Suppression

    events = canary_events()
    path = tmp_path / "canary.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events[:1]) + "\n")
    assert _run_replay(settings, path).accepted == 1
    reload_tables(client)
    assert _forget(settings, monkeypatch, capsys, "--visitor-id", VISITOR)["removed"]["raw_events"] == 1

    class StaleSuppression(Suppression):  # an ingest that has not refreshed its list yet
        def holds(self, result) -> bool:
            return False

    monkeypatch.setattr(replay_module, "Suppression", StaleSuppression)
    before = _suppressed_metric("warehouse-sink", "ad_click")
    dead_before = _suppressed_metric("deadletter-sink", "dead_letter")
    visitor_dead_letter = json.dumps({"type": "ad_click", "identity": {"visitor_id": VISITOR}})  # no event_id
    path.write_text("\n".join([json.dumps(e) for e in events[:3]] + [visitor_dead_letter] + canary_dead_letters())
                    + "\n")
    summary = _run_replay(settings, path)
    assert (summary.accepted, summary.suppressed) == (0, 3)
    assert _suppressed_metric("warehouse-sink", "ad_click") == before + 1
    assert client.query("SELECT count() FROM raw_events").result_rows[0][0] == 0
    # so is the dead letter holding the visitor id; the others hold values of nobody forgotten here
    assert _suppressed_metric("deadletter-sink", "dead_letter") == dead_before + 1
    assert client.query("SELECT count() FROM dead_letters").result_rows[0][0] == len(canary_dead_letters())


def test_forget_of_an_unknown_value_suppresses_it_and_removes_nothing(client, settings, monkeypatch, capsys):
    report = _forget(settings, monkeypatch, capsys, "--phone", "+1 (555) 010-9999")
    assert (report["found"], report["removed"], report["suppressed"]) == (False, {}, 1)
    assert client.query("SELECT count() FROM suppressed_keys").result_rows[0][0] == 1


@pytest.mark.parametrize("args, fragment", [
    (["--email", "not-an-email"], "not a valid email"),
    (["--phone", "call me"], "not a valid E.164"),
    (["--email", "a@b.c", "--phone", "+123456789"], "not allowed with"),
    ([], "one of the arguments"),
])
def test_forget_bad_arguments_exit_2(settings, monkeypatch, capsys, args, fragment):
    from leadflow.cli import main

    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    assert main(["forget", *args, "--warehouse", str(settings.warehouse_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err


def _suppress_values(client, settings, *pairs: tuple[str, str]) -> None:
    from datetime import datetime, timezone

    from leadflow.privacy import suppression_digest
    from leadflow.warehouse import insert_rows

    hasher = IdentityHasher(settings.identity_secret)
    insert_rows(client, "suppressed_keys", ["digest", "kind", "suppressed_at"],
                [(suppression_digest(hasher.hash(kind, value)), kind, datetime.now(timezone.utc))
                 for kind, value in pairs])


def test_http_ingest_answers_suppressed_and_stores_nothing(client, settings):
    """POST /v1/events after a forget: the event and a bad line holding the value are dropped
    (status `suppressed`), the others go through."""
    import aiohttp

    from leadflow.pipeline import Pipeline
    from leadflow.serve import running_app

    _suppress_values(client, settings, ("email", EMAIL))
    forgotten = {**canary_events()[6], "event_id": "ev-http-1"}  # the lead with the email as sent
    other = {**canary_events()[0], "event_id": "ev-http-2", "identity": {"visitor_id": "v-someone-else"}}
    bad = '{"type": "lead", "identity": {"email": "CANARY.PERSON+ERASE@EXAMPLE.ORG"}}'
    before = _suppressed_metric("ingest", "lead")

    async def scenario():
        async with Pipeline(settings, settings.kafka_bootstrap, client) as pipe:
            async with running_app(settings, pipe, client, "127.0.0.1", 0) as (addr, publisher):
                body = "\n".join([json.dumps(forgotten), json.dumps(other), bad]).encode()
                async with aiohttp.ClientSession() as http:
                    async with http.post(f"http://{addr[0]}:{addr[1]}/v1/events", data=body) as r:
                        answer = (r.status, await r.json())
                await pipe.drain(publisher.tracker)
        return answer

    status, answer = asyncio.run(scenario())
    assert status == 200
    assert [e["status"] for e in answer["events"]] == ["suppressed", "accepted", "suppressed"]
    assert (answer["accepted"], answer["suppressed"], answer["rejected"]) == (1, 2, 0)
    assert _suppressed_metric("ingest", "lead") == before + 1
    assert client.query("SELECT groupArray(event_id) FROM raw_events").result_rows[0][0] == ["ev-http-2"]
    assert client.query("SELECT count() FROM dead_letters").result_rows[0][0] == 0


def test_ingest_keeps_its_last_list_when_the_warehouse_is_down(client, settings):
    from services.ingest.suppression import Suppression

    _suppress_values(client, settings, ("visitor_id", VISITOR))
    suppression = Suppression(secret=settings.identity_secret, client=client, refresh_seconds=3600)
    assert len(suppression.digests) == 1

    class Down:
        def query(self, *args, **kwargs):
            raise ConnectionError("warehouse unreachable")

    suppression.refresh(Down())
    assert len(suppression.digests) == 1
    _suppress_values(client, settings, ("phone", PHONE))
    suppression.refresh(client)
    assert len(suppression.digests) == 2


def test_enrich_drops_events_of_values_forgotten_after_the_sink_stored_them(client, settings):
    """An event the sink stored just before a forget, still on the stored topic: enrich writes no fact."""
    from types import SimpleNamespace

    from leadflow.topics import Topics
    from services.enrich.stage import EnrichStage
    from services.ingest.validate import InputOccurrences, Validator

    validator = Validator(settings)
    click, other = canary_events()[0], {**canary_events()[0], "event_id": "ev-other",
                                        "identity": {"visitor_id": "v-someone-else"}}
    records = [SimpleNamespace(value=validator.check(json.dumps(e).encode(), origin="test", default_source="t",
                                                     occurrences=InputOccurrences()).value) for e in (click, other)]
    _suppress_values(client, settings, ("visitor_id", VISITOR))
    before = _suppressed_metric("enrich", "ad_click")
    EnrichStage(client, None, Topics(settings.topic_prefix), settings).process(records)
    assert client.query("SELECT groupArray(event_id) FROM clicks").result_rows[0][0] == ["ev-other"]
    assert client.query("SELECT count() FROM person_keys").result_rows[0][0] == 1
    assert _suppressed_metric("enrich", "ad_click") == before + 1
