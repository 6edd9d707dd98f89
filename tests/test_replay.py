"""`replay` end to end on the real broker and chdb: exact counts, twice in a row."""
from __future__ import annotations

import asyncio
import json

import pytest

from leadflow.replay import replay

V_TYPES = ["ad_click", "lead", "message", "call_completed", "deal_won"]


def valid_event(i: int) -> dict:
    kind = V_TYPES[i % len(V_TYPES)]
    base = {"event_id": f"ev-{i}", "type": kind, "occurred_at": f"2026-05-01T10:{i % 60:02d}:00Z",
            "source": "test"}
    if kind == "ad_click":
        return {**base, "identity": {"visitor_id": f"v-{i}"}, "campaign_id": "c1", "channel": "search_ads"}
    if kind == "lead":
        return {**base, "identity": {"email": f" Person{i}@Example.org "}, "lead_id": f"L-{i}",
                "channel": "organic"}
    if kind == "message":
        return {**base, "conversation_id": f"conv-{i}", "author": "operator", "operator_id": "op-1"}
    if kind == "call_completed":
        return {**base, "identity": {"phone": "+7 (916) 000-00-%02d" % (i % 100)}, "call_id": f"c-{i}",
                "direction": "inbound", "started_at": "2026-05-01T09:00:00Z", "ended_at": "2026-05-01T09:01:00Z",
                "outcome": "missed"}
    return {**base, "identity": {"crm_contact_id": f"crm-{i}"}, "deal_id": f"D-{i}", "revenue": "10.50",
            "currency": "USD"}


BAD_LINES = [
    b'{"event_id":"x-1","type":"lead","occurred_at":"2026-05-01T10:00:00Z","source":"s","identity":{"visitor_id":"v"},"lead_id":"L","channel":"organic"}',
    b'{"event_id":"x-2","type":"survey_response","occurred_at":"2026-05-01T10:00:00Z","source":"s","survey":"nps","score":11}',
    b'{"type":"ad_click","occurred_at":"2026-05-01T10:00:00Z","source":"s","identity":{"visitor_id":"v"},"campaign_id":"c","channel":"search_ads"}',
    b"not json at all",
    b"\xff\xfe binary garbage",
    b'{"event_id":"x-3","type":"teleport","occurred_at":"2026-05-01T10:00:00Z","source":"s"}',
]


@pytest.fixture
def mixed_file(tmp_path):
    V, lines = 40, []
    for i in range(V):
        lines.append(json.dumps(valid_event(i)).encode())
    dups = [lines[0], lines[7], lines[7], lines[13]]  # D = 4 exact repeats
    body = lines[:20] + dups[:2] + BAD_LINES[:3] + lines[20:] + [b"", b"   "] + dups[2:] + BAD_LINES[3:]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")
    return path, V, len(dups), len(BAD_LINES)


def counts(client) -> tuple[int, int]:
    raw = client.query("SELECT count() FROM raw_events FINAL").result_rows[0][0]
    dead = client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
    return raw, dead


@pytest.mark.over_http
def test_replay_exact_counts_twice(settings, client, mixed_file):
    path, V, D, B = mixed_file
    first = asyncio.run(replay(settings, [path], show_progress=False))
    assert (first.read, first.accepted, first.duplicates, first.rejected) == (V + D + B, V, D, B)
    assert counts(client) == (V, B)

    second = asyncio.run(replay(settings, [path], show_progress=False))
    assert (second.read, second.accepted, second.duplicates, second.rejected) == (V + D + B, 0, V + D, B)
    assert counts(client) == (V, B)


def test_replay_through_a_child_process_gives_the_same_counts(settings, client, mixed_file):
    from leadflow import metrics

    def accepted_metric():
        return sum(s.value for m in metrics.EVENTS_ACCEPTED.collect() for s in m.samples
                   if s.name.endswith("_total") and s.labels["source"] == "test")

    path, V, D, B = mixed_file
    before = accepted_metric()
    first = asyncio.run(replay(settings, [path], show_progress=False, child_process_min_bytes=0))
    assert (first.read, first.accepted, first.duplicates, first.rejected) == (V + D + B, V, D, B)
    assert [r["origin"] for r in first.first_rejections] == ["mixed.jsonl:23", "mixed.jsonl:24", "mixed.jsonl:25",
                                                             "mixed.jsonl:50", "mixed.jsonl:51"]
    assert counts(client) == (V, B)
    # the child's ingest counters reach this process's /metrics
    assert accepted_metric() - before == V + D


def test_a_replay_in_segments_stores_the_same_and_deletes_its_topics(settings, client, mixed_file, broker):
    """The embedded broker cannot delete records: big replays go through in segments of
    `replay_segment_lines`, each on its own topics, deleted once the warehouse has them."""
    from aiokafka.admin import AIOKafkaAdminClient

    path, V, D, B = mixed_file
    first = asyncio.run(replay(settings, [path], show_progress=False, child_process_min_bytes=0, segment_lines=10))
    # 56 lines (2 blank) in segments of 10: the repeats of lines 1 and 8 land in later segments
    assert (first.read, first.accepted, first.duplicates, first.rejected) == (V + D + B, V, D, B)
    assert [r["origin"] for r in first.first_rejections] == ["mixed.jsonl:23", "mixed.jsonl:24", "mixed.jsonl:25",
                                                             "mixed.jsonl:50", "mixed.jsonl:51"]
    assert counts(client) == (V, B)
    facts = client.query("SELECT (SELECT count() FROM touches), (SELECT count() FROM conversation_facts), "
                         "(SELECT uniqExact(person_id) FROM persons), (SELECT count() FROM enriched_events)").result_rows
    # 8 of each type: touches are the clicks, leads and calls; a person per identified event
    assert facts == [(24, 8, 32, 40)]

    async def topics() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            return [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        finally:
            await admin.close()
    assert asyncio.run(topics()) == []


def test_people_linked_across_segments_are_one_person(settings, client, tmp_path):
    # event i carries values K_i and K_(i+1) (K_j a visitor id for even j, an email for odd j):
    # 30 events chain 31 values into one person across three segments of 10 lines
    def value(j: int) -> tuple[str, str]:
        return ("visitor_id", f"v-{j}") if j % 2 == 0 else ("email", f"p{j}@example.org")

    lines = [json.dumps({"event_id": f"chain-{i}", "type": "lead", "occurred_at": f"2026-05-01T10:{i:02d}:00Z",
                         "source": "test", "identity": dict([value(i), value(i + 1)]), "lead_id": f"L-{i}",
                         "channel": "organic"}) for i in range(30)]
    path = tmp_path / "chain.jsonl"
    path.write_text("\n".join(lines) + "\n")
    summary = asyncio.run(replay(settings, [path], show_progress=False, child_process_min_bytes=0, segment_lines=10))
    assert summary.accepted == 30
    assert client.query("SELECT count(), uniqExact(person_id) FROM persons").result_rows == [(31, 1)]


@pytest.mark.over_http
def test_dead_letters_keep_original_bytes_and_reasons(settings, client, mixed_file):
    path, *_ = mixed_file
    asyncio.run(replay(settings, [path], show_progress=False))
    rows = client.query("SELECT raw_payload, error_kind, errors, event_id FROM dead_letters FINAL",
                        column_formats={"raw_payload": "bytes"}).result_rows
    by_raw = {r[0]: r for r in rows}
    assert set(by_raw) == set(BAD_LINES)
    assert by_raw[b"not json at all"][1] == "not_json"
    assert by_raw[b"\xff\xfe binary garbage"][1] == "not_json"
    lead = by_raw[BAD_LINES[0]]
    assert lead[1] == "schema" and lead[3] == "x-1"
    assert lead[2] == [{"path": "identity", "message": "lead needs identity.email or identity.phone"}]
    assert [e["path"] for e in by_raw[BAD_LINES[1]][2]] == ["score"]
    assert [e["path"] for e in by_raw[BAD_LINES[2]][2]] == ["event_id"]


def test_identity_values_are_hashed_in_the_warehouse(settings, client, mixed_file):
    path, *_ = mixed_file
    asyncio.run(replay(settings, [path], show_progress=False))
    payloads = " ".join(r[0] for r in client.query("SELECT payload FROM raw_events").result_rows)
    assert "example.org" not in payloads.lower()
    assert "+7916" not in payloads and "(916)" not in payloads
    keys = client.query("SELECT identity_keys FROM raw_events FINAL WHERE event_id = 'ev-1'").result_rows[0][0]
    assert len(keys) == 1 and keys[0].startswith("email:") and len(keys[0]) == len("email:") + 32
    # the same person's email in another spelling hashes the same
    from leadflow.privacy import IdentityHasher
    assert keys[0] == IdentityHasher(settings.identity_secret).hash("email", "person1@example.org")


def test_dead_letter_retention_follows_the_setting(settings):
    from leadflow import warehouse
    from leadflow.config import load_settings

    def ttl(s):
        c = warehouse.open_warehouse(s)
        return c.query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
                       "AND name = 'dead_letters'").result_rows[0][0].split("TTL ")[1].split(" SETTINGS")[0]

    assert ttl(settings) == "toDateTime(rejected_at) + toIntervalDay(30)"
    assert ttl(load_settings(**{**settings.model_dump(), "deadletter_retention_days": 7})) == \
        "toDateTime(rejected_at) + toIntervalDay(7)"


def active_parts(client, table: str) -> int:
    return client.query("SELECT count() FROM system.parts WHERE database = currentDatabase() AND active "
                        "AND table = {t:String}", parameters={"t": table}).result_rows[0][0]


def test_compact_merges_versioned_tables_unless_the_replay_was_small(client):
    from leadflow import warehouse

    client.command("INSERT INTO raw_events (event_id) SELECT toString(number) FROM numbers(100)")
    for rows in ("('p1', 1), ('p2', 1)", "('p1', 2)", "('p2', 3)"):  # three parts, two people
        client.command(f"INSERT INTO person_profiles (person_id, version) VALUES {rows}")
    assert active_parts(client, "person_profiles") == 3

    assert warehouse.compact(client, stored=9) == []  # 9 of 100 events: left to background merges
    assert active_parts(client, "person_profiles") == 3

    assert warehouse.compact(client, stored=10) == list(warehouse.COMPACTED_TABLES)
    assert active_parts(client, "person_profiles") == 1
    assert client.query("SELECT person_id, version FROM person_profiles ORDER BY person_id").result_rows == [
        ("p1", 2), ("p2", 3)]


def test_a_replay_leaves_the_versioned_tables_compacted(settings, client, mixed_file):
    path, V, _, _ = mixed_file
    small_batches = settings.model_copy(update={"batch_max_rows": 4})
    summary = asyncio.run(replay(small_batches, [path], show_progress=False))
    assert summary.accepted == V
    # 40 events in batches of 4 write clicks and credits in several inserts: one part each after
    for table in ("clicks", "attribution_credits"):
        assert active_parts(client, table) == 1
