"""Enrichment through the real broker and chdb: facts equal hand-computed values,
in any delivery order, with late merges, and across a crashed run."""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from leadflow import warehouse
from leadflow.config import load_settings
from leadflow.privacy import IdentityHasher


def base(eid: str, type_: str, when: str, **fields) -> dict:
    return {"event_id": eid, "type": type_, "occurred_at": when, "source": "test", **fields}


def persons_partition(client) -> set[frozenset]:
    rows = client.query("SELECT person_id, groupArray(identity_key) FROM persons GROUP BY person_id").result_rows
    return {frozenset(keys) for _, keys in rows}


def credits(client, model="linear") -> dict:
    rows = client.query("SELECT deal_id, channels, credits FROM attribution_credits FINAL WHERE model = {m:String}",
                        parameters={"m": model}).result_rows
    return {d: sorted(zip(ch, [round(c, 9) for c in cr])) for d, ch, cr in rows}


def test_calls_answered_missed_abandoned(replay_events, client):
    replay_events([
        base("c1", "call_completed", "2026-05-02T08:15:40Z", identity={"phone": "+7 916 000 0001"}, call_id="A",
             direction="inbound", started_at="2026-05-02T08:10:00Z", answered_at="2026-05-02T08:10:18Z",
             ended_at="2026-05-02T08:15:40Z", outcome="answered", operator_id="op-1", campaign_id="camp",
             tracking_number="+18005550100", queue="sales"),
        base("c2", "call_completed", "2026-05-02T09:01:00+03:00", identity={"phone": "+7 916 000 0002"}, call_id="M",
             direction="inbound", started_at="2026-05-02T09:00:00+03:00", ended_at="2026-05-02T09:01:00+03:00",
             outcome="missed"),
        base("c3", "call_completed", "2026-05-02T10:00:45Z", identity={"phone": "+7 916 000 0003"}, call_id="X",
             direction="inbound", started_at="2026-05-02T10:00:00Z", ended_at="2026-05-02T10:00:45Z",
             outcome="abandoned"),
    ])
    rows = client.query("SELECT call_id, direction, outcome, operator_id, campaign_id, started_at, wait_s, talk_s "
                        "FROM call_winners ORDER BY call_id").result_rows
    assert rows == [
        ("A", "inbound", "answered", "op-1", "camp", datetime(2026, 5, 2, 8, 10), 18.0, 322.0),
        ("M", "inbound", "missed", "", "", datetime(2026, 5, 2, 6, 0), None, None),
        ("X", "inbound", "abandoned", "", "", datetime(2026, 5, 2, 10, 0), None, None),
    ]
    touches = client.query("SELECT event_id, channel, operators FROM touches ORDER BY event_id").result_rows
    assert touches == [("c1", "call", ["op-1"]), ("c2", "call", []), ("c3", "call", [])]


PERSON_EVENTS = [
    base("e-click", "ad_click", "2026-05-01T09:00:00Z", identity={"visitor_id": "v-9"}, campaign_id="c",
         channel="social_ads"),
    base("e-lead", "lead", "2026-05-01T09:05:00Z", identity={"visitor_id": "v-9", "phone": "+44 20 7946 0000"},
         lead_id="L-9", channel="social_ads"),
    base("e-deal", "deal_won", "2026-05-03T12:00:00Z", identity={"phone": "+442079460000", "email": "Z@X.io"},
         deal_id="D-9", revenue="100", currency="USD"),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_three_identifiers_one_person_in_every_order(settings, client, replay_events, order):
    replay_events([PERSON_EVENTS[i] for i in order])
    h = IdentityHasher(settings.identity_secret)
    keys = frozenset({h.hash("visitor_id", "v-9"), h.hash("phone", "+442079460000"), h.hash("email", "z@x.io")})
    assert persons_partition(client) == {keys}
    # click at 09:00 and lead at 09:05 both social_ads: the deal is fully social_ads in every model
    for model in ("first_touch", "linear", "time_decay"):
        assert credits(client, model) == {"D-9": [("social_ads", 0.5), ("social_ads", 0.5)]} if model == "linear" \
            else True
    assert credits(client, "first_touch") == {"D-9": [("social_ads", 0.0), ("social_ads", 1.0)]}


def test_merge_after_the_deal_moves_it_from_none_to_its_channel(client, replay_events):
    replay_events([
        base("k", "ad_click", "2026-05-01T09:00:00Z", identity={"visitor_id": "v-1"}, campaign_id="c",
             channel="search_ads"),
        base("d", "deal_won", "2026-05-05T09:00:00Z", identity={"email": "a@b.c", "crm_contact_id": "crm-1"},
             deal_id="D-1", revenue="50.00", currency="USD"),
    ])
    assert credits(client) == {"D-1": [("(none)", 1.0)]}
    assert len(persons_partition(client)) == 2
    # a week later the CRM learns the visitor's email: one person, the deal belongs to the click
    replay_events([base("l", "lead", "2026-05-01T09:10:00Z", identity={"visitor_id": "v-1", "email": "A@B.C"},
                        lead_id="L-1", channel="search_ads")])
    assert len(persons_partition(client)) == 1
    assert credits(client) == {"D-1": [("search_ads", 0.5), ("search_ads", 0.5)]}
    assert credits(client, "last_touch") == {"D-1": [("search_ads", 0.0), ("search_ads", 1.0)]}


def test_restated_deal_and_touch_leaving_the_window(client, replay_events):
    replay_events([
        base("k1", "ad_click", "2026-01-01T00:00:00Z", identity={"visitor_id": "v"}, campaign_id="a",
             channel="display_ads"),
        base("k2", "ad_click", "2026-04-01T00:00:00Z", identity={"visitor_id": "v"}, campaign_id="b",
             channel="email"),
        base("d1", "deal_won", "2026-03-01T00:00:00Z", identity={"visitor_id": "v"}, deal_id="D", revenue="10",
             currency="USD"),
    ])
    assert credits(client) == {"D": [("display_ads", 1.0)]}
    # the CRM restates the deal: won later (k1 is now outside 90 days, k2 inside), other revenue
    replay_events([base("d2", "deal_won", "2026-04-10T00:00:00Z", identity={"visitor_id": "v"}, deal_id="D",
                        revenue="30", currency="USD")])
    assert credits(client) == {"D": [("email", 1.0)]}
    rows = client.query("SELECT deal_id, event_id, revenue FROM deal_winners").result_rows
    assert [(d, e, float(r)) for d, e, r in rows] == [("D", "d2", 30.0)]


CHAT = [
    base("cs", "conversation_started", "2026-05-01T10:00:00Z", identity={"visitor_id": "v-c"},
         conversation_id="cv", channel="chat", initiated_by="visitor"),
    base("m1", "message", "2026-05-01T10:00:05Z", conversation_id="cv", author="visitor"),
    base("m2", "message", "2026-05-01T13:00:12+03:00", conversation_id="cv", author="bot"),
    base("m3", "message", "2026-05-01T10:00:40Z", conversation_id="cv", author="operator", operator_id="op-a",
         template_id="t"),
    base("tr", "conversation_transferred", "2026-05-01T10:01:00Z", conversation_id="cv", from_operator_id="op-a",
         to_operator_id="op-b"),
    base("m4", "message", "2026-05-01T10:02:00Z", conversation_id="cv", author="visitor"),
    base("m5", "message", "2026-05-01T10:02:30Z", conversation_id="cv", author="operator", operator_id="op-b"),
    base("cc", "conversation_closed", "2026-05-01T10:30:00Z", conversation_id="cv", resolved=True),
]
FACT_SQL = ("SELECT * EXCEPT version FROM conversation_facts FINAL")


def test_conversation_fact_is_the_same_in_and_out_of_order(settings, client, replay_events, tmp_path):
    replay_events(CHAT)
    in_order = client.query(FACT_SQL).result_rows
    assert len(in_order) == 1
    row = dict(zip(client.query(FACT_SQL).column_names, in_order[0]))
    assert (row["frt_s"], row["first_reply_operator"], row["visitor_messages"]) == (35.0, "op-a", 2)
    assert [(t["response_s"], t["responder_kind"]) for t in row["turns"]] == [(7.0, "bot"), (30.0, "operator")]
    # the close first, the start last, in two separate replays
    other = load_settings(**{**settings.model_dump(), "clickhouse_database": settings.clickhouse_database + "_b",
                             "topic_prefix": settings.topic_prefix + "-b"})
    other_client = warehouse.connect(other)
    warehouse.migrate(other_client)
    import asyncio
    import json

    from leadflow.replay import replay
    shuffled = [CHAT[7], CHAT[4], CHAT[1], CHAT[5]], [CHAT[6], CHAT[2], CHAT[3], CHAT[0]]
    for n, part in enumerate(shuffled):
        path = tmp_path / f"part{n}.jsonl"
        path.write_text("\n".join(json.dumps(e) for e in part) + "\n")
        asyncio.run(replay(other, [path], show_progress=False))
    assert other_client.query(FACT_SQL).result_rows == in_order


# ---- a crashed run resumes to the same facts --------------------------------------------------

SNAPSHOT = {
    "events": "SELECT count(DISTINCT event_id) FROM raw_events",
    "enriched": "SELECT count(DISTINCT event_id) FROM enriched_events",
    "conversations": "SELECT * EXCEPT version FROM conversation_facts FINAL ORDER BY conversation_id",
    "calls": "SELECT * FROM call_winners ORDER BY call_id",
    "deals": "SELECT * FROM deal_winners ORDER BY deal_id",
    "leads": "SELECT * FROM lead_winners ORDER BY lead_id",
    "credits": "SELECT deal_id, model, won_at, revenue, touch_event_ids, channels, credits "
               "FROM attribution_credits FINAL ORDER BY deal_id, model",
    "pending": "SELECT count() FROM (SELECT person_id FROM attribution_queue GROUP BY person_id "
               "HAVING argMax(done, version) = 0)",
}


def snapshot(directory: Path) -> dict:
    client = warehouse.connect(load_settings(warehouse_dir=directory))
    out = {name: client.query(sql).result_rows for name, sql in SNAPSHOT.items()}
    out["persons"] = persons_partition(client)
    return out


def test_killed_run_resumes_to_the_facts_of_an_uninterrupted_run(tmp_path):
    from leadflow.simulator import SimulationConfig, write_jsonl

    data = tmp_path / "sim.jsonl"
    write_jsonl(SimulationConfig(days=4, seed=11, visitors_per_day=250), data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(LEADFLOW_BATCH_MAX_ROWS="300", LEADFLOW_BATCH_MAX_SECONDS="0.05")
    cmd = [sys.executable, "-m", "leadflow.cli", "replay", str(data), "--no-progress"]

    subprocess.run(cmd + ["--warehouse", str(tmp_path / "whole")], env=env, check=True, capture_output=True,
                   timeout=300)

    proc = subprocess.Popen(cmd + ["--warehouse", str(tmp_path / "crashed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # kill once the warehouse has started to fill (the stages are mid-way)
    while time.monotonic() < deadline and not any((tmp_path / "crashed").rglob("*.bin")):
        time.sleep(0.05)
    time.sleep(0.8)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    resumed = subprocess.run(cmd + ["--warehouse", str(tmp_path / "crashed"), "--format", "json"], env=env,
                             check=True, capture_output=True, text=True, timeout=300)
    summary = json.loads(resumed.stdout)
    # the killed run had stored part of the file and left work unfinished
    assert summary["duplicates"] > 0 and (summary["accepted"] > 0 or "resumed unfinished work" in resumed.stderr)

    whole, crashed = snapshot(tmp_path / "whole"), snapshot(tmp_path / "crashed")
    assert whole["events"][0][0] > 1000
    assert whole["pending"] == crashed["pending"] == [(0,)]
    for name in whole:
        assert crashed[name] == whole[name], name


def test_a_call_sent_again_keeps_the_latest_record(replay_events, client):
    """The winner of a call (migration 0012) is recomputed from all its stored rows:
    a later record replaces it, an earlier one arriving late does not."""
    def record(event_id, occurred_at, **fields):
        return base(event_id, "call_completed", occurred_at, identity={"phone": "+7 916 000 0009"}, call_id="R",
                    direction="inbound", started_at="2026-05-02T08:10:00Z", ended_at="2026-05-02T08:15:00Z", **fields)

    replay_events([record("r1", "2026-05-02T08:15:00Z", outcome="missed")])
    replay_events([record("r2", "2026-05-02T08:20:00Z", outcome="answered", answered_at="2026-05-02T08:10:30Z",
                          operator_id="op-7")])
    replay_events([record("r0", "2026-05-02T08:14:00Z", outcome="abandoned")])
    rows = client.query("SELECT call_id, event_id, outcome, operator_id, wait_s FROM call_winners").result_rows
    assert rows == [("R", "r2", "answered", "op-7", 30.0)]
