"""Staffing (Erlang C), bots and the contacts drill-down (contract v1.1 sections 3 and 4).

Events go through the whole pipeline (real broker, real engine); the SQL's rows are checked
against values worked out by hand here and against the independent reference
(tests/reference/kpis.py), on hand-built scenarios and on the simulated business.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import orjson
import pytest

from leadflow import warehouse
from leadflow.cli import main
from services.attribution.kpis import compute_kpis
from services.attribution.kpis.contact_centre import CONTACT_KEYS, STAFFING_KEYS, contacts, staffing
from tests.reference import kpis as ref
from tests.simdata import SIM_PERIOD, simulated_warehouse
from tests.test_kpi_sql import close, read_jsonl

MON = datetime(2026, 5, 4, tzinfo=timezone.utc)  # a Monday


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_n = iter(range(10**9))


def ev(type_: str, at: datetime, identity: dict | None = None, **fields) -> dict:
    e = {"event_id": f"e{next(_n):06d}", "type": type_, "occurred_at": iso(at), "source": "test"}
    if identity:
        e["identity"] = identity
    e.update(fields)
    return e


def at(h: int, m: int = 0, s: float = 0) -> datetime:
    return MON + timedelta(hours=h, minutes=m, seconds=s)


def conversation(cid: str, start: datetime, who: str, script: list[tuple[float, str, str | None]], *,
                 channel: str = "chat", by: str = "visitor", close_after: float | None = None) -> list[dict]:
    """script: (seconds after start, author, operator)."""
    out = [ev("conversation_started", start, {"visitor_id": who}, conversation_id=cid, channel=channel,
              initiated_by=by)]
    for secs, author, op in script:
        m = {"conversation_id": cid, "author": author}
        if op:
            m["operator_id"] = op
        out.append(ev("message", start + timedelta(seconds=secs), **m))
    if close_after is not None:
        out.append(ev("conversation_closed", start + timedelta(seconds=close_after), conversation_id=cid))
    return out


def inbound_call(cid: str, start: datetime, phone: str, outcome: str, op: str | None = None, wait: float = 0,
                 talk: float = 0) -> dict:
    f = {"call_id": cid, "direction": "inbound", "started_at": iso(start), "outcome": outcome}
    if outcome == "answered":
        f.update(answered_at=iso(start + timedelta(seconds=wait)), operator_id=op,
                 ended_at=iso(start + timedelta(seconds=wait + talk)))
    else:
        f["ended_at"] = iso(start + timedelta(seconds=30))
    return ev("call_completed", start + timedelta(seconds=wait + talk + 30), {"phone": phone}, **f)


def by_slot(rows: list[dict]) -> dict[tuple[str, int, int], dict]:
    return {(r["channel"], r["weekday"], r["hour"]): r for r in rows}


def assert_same_rows(got: list[dict], want: list[dict], keys: tuple[str, ...]) -> int:
    assert [tuple(r[k] for k in keys[:3]) for r in got] == [tuple(r[k] for k in keys[:3]) for r in want]
    bad = [f"{g['channel']} {g['weekday']} {g['hour']}: {k} sql {g[k]!r} != reference {w[k]!r}"
           for g, w in zip(got, want) for k in keys if not close(k, g[k], w[k])]
    assert not bad, "\n".join(bad[:30])
    return len(got) * len(keys)


# --- Erlang C worked by hand ---------------------------------------------------------------------

def test_erlang_c_worked_examples_by_hand():
    # A = 1 erlang (12 contacts an hour of 300 s), target 20 s:
    # C(2, 1) = (1/2! * 2/(2-1)) / (1 + 1 + 1/2! * 2/(2-1)) = 1 / 3
    assert ref.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # SL(2) = 1 - 1/3 * e^{-(2-1) * 20/300} = 0.688164: below 0.8
    assert ref.erlang_c_service_level(2, 1.0, 20, 300) == pytest.approx(1 - math.exp(-1 / 15) / 3)
    assert ref.erlang_c_service_level(2, 1.0, 20, 300) == pytest.approx(0.688164, abs=1e-6)
    # C(3, 1) = (1/3! * 3/2) / (1 + 1 + 1/2 + 1/3! * 3/2) = 0.25 / 2.75; SL(3) = 1 - e^{-40/300} / 11 = 0.920439
    assert ref.erlang_c(3, 1.0) == pytest.approx(1 / 11)
    assert ref.erlang_c_service_level(3, 1.0, 20, 300) == pytest.approx(0.920439, abs=1e-6)
    assert ref.agents_needed(1.0, 20, 300, 0.8) == 3
    # n = 1: C(1, A) = A
    assert ref.erlang_c(1, 0.25) == pytest.approx(0.25)
    # A = 2.6 erlangs (156 an hour of 60 s), target 60 s. Terms A^k/k!: 1, 2.6, 3.38, 2.929333, 1.904067.
    # C(3) = 2.929333 x 3/0.4 / (6.98 + 21.97) = 0.758895, SL(3) = 1 - 0.758895 e^{-0.4} = 0.491297;
    # C(4) = 1.904067 x 4/1.4 / (9.909333 + 5.440190) = 0.354420, SL(4) = 1 - 0.354420 e^{-1.4} = 0.912601
    assert ref.erlang_c(3, 2.6) == pytest.approx(0.758895, abs=1e-6)
    assert ref.erlang_c_service_level(3, 2.6, 60, 60) == pytest.approx(0.491297, abs=1e-6)
    assert ref.erlang_c(4, 2.6) == pytest.approx(0.354420, abs=1e-6)
    assert ref.erlang_c_service_level(4, 2.6, 60, 60) == pytest.approx(0.912601, abs=1e-6)
    assert ref.agents_needed(2.6, 60, 60, 0.8) == 4
    # n = floor(A) + 1 can already be enough (pyworkforce 0.5.1 starts at round(A + 1) = 4 here):
    # target 600 s: SL(3) = 1 - 0.758895 e^{-4} = 0.986101
    assert ref.erlang_c_service_level(3, 2.6, 600, 60) == pytest.approx(0.986101, abs=1e-6)
    assert ref.agents_needed(2.6, 600, 60, 0.8) == 3


# --- staffing on a hand-built Monday -------------------------------------------------------------

def staffing_scenario() -> list[dict]:
    out = []
    # 10:00: three chats; op-a holds c1 and c2 at once (mean concurrency 1200 s / 910 s), op-b c3
    out += conversation("c1", at(10), "v1", [(5, "visitor", None), (20, "operator", "op-a")], close_after=620)
    out += conversation("c2", at(10, 5), "v2", [(5, "visitor", None), (30, "operator", "op-a")], close_after=630)
    out += conversation("c3", at(10, 30), "v3", [(5, "visitor", None), (40, "operator", "op-b")], close_after=340)
    # 10:20 an answered call (120 s talk), 10:40 a missed one
    out.append(inbound_call("k1", at(10, 20), "+15550000001", "answered", "op-c", wait=10, talk=120))
    out.append(inbound_call("k2", at(10, 40), "+15550000002", "missed"))
    # 11:00 a chat nobody answers (closed at 11:05): contacts, no handle time in the slot
    out += conversation("c4", at(11), "v4", [(5, "visitor", None)], close_after=300)
    # 12:00 an operator's invitation: op-d works on chat, but it is no inbound contact
    out += conversation("c5", at(12), "v5", [(1, "operator", "op-d"), (30, "visitor", None)], by="operator",
                        close_after=1800)
    return out


def test_staffing_hand_built_monday(settings, client, replay_events):
    events = staffing_scenario()
    replay_events(events)
    rows = staffing(client, settings)
    assert all(tuple(r) == STAFFING_KEYS for r in rows)
    assert len(rows) == 2 * 168 and {r["channel"] for r in rows} == {"call", "chat"}
    s = by_slot(rows)

    chat10 = s[("chat", 0, 10)]
    # handle times: 600 s / (1200/910) = 455 s twice, and 300 s: mean 403.33 s
    assert chat10["contacts_per_hour"] == 3.0
    assert chat10["aht_s"] == pytest.approx((455 + 455 + 300) / 3)
    assert chat10["target_s"] == 30.0 and chat10["service_level"] == 0.8
    # A = 3 x 403.33 / 3600 = 0.3361: SL(1) = 1 - A e^{-(1-A) 30/403.33} = 0.680, SL(2) = 0.957
    assert chat10["agents_needed"] == 2
    assert chat10["agents_observed"] == 2.0 and chat10["gap"] == 0.0

    call10 = s[("call", 0, 10)]
    # 2 calls, 120 s talk: A = 0.0667, SL(1) = 1 - A e^{-(1-A) 20/120} = 0.943
    assert (call10["contacts_per_hour"], call10["aht_s"], call10["target_s"]) == (2.0, 120.0, 20.0)
    assert (call10["agents_needed"], call10["agents_observed"], call10["gap"]) == (1, 1.0, 0.0)

    chat11 = s[("chat", 0, 11)]
    # no handled contact in the slot: the channel's mean handle time (K3); nobody seen: gap +1
    assert chat11["aht_s"] == pytest.approx((455 + 455 + 300) / 3)
    assert (chat11["agents_needed"], chat11["agents_observed"], chat11["gap"]) == (1, 0.0, 1.0)

    chat12 = s[("chat", 0, 12)]
    # op-d's invitation: seen working, but no inbound contact: nothing needed, no gap
    assert (chat12["contacts_per_hour"], chat12["agents_needed"], chat12["agents_observed"], chat12["gap"]) \
        == (0.0, None, 1.0, None)
    # one day: the other weekdays have no clock hour in the period (K2)
    assert s[("chat", 1, 10)]["contacts_per_hour"] is None and s[("chat", 1, 10)]["agents_observed"] is None

    assert assert_same_rows(rows, ref.compute_staffing(events), STAFFING_KEYS) > 0
    only_call = staffing(client, settings, channels=["call"])
    assert {r["channel"] for r in only_call} == {"call"} and only_call == [r for r in rows if r["channel"] == "call"]
    # K1: a period is cut to the days with contacts in the warehouse (first to last contact's day),
    # so a week around that Monday gives the same rows; a period without contacts has no hours
    assert staffing(client, settings, date_from=date(2026, 5, 1), date_to=date(2026, 5, 11)) == rows
    empty = staffing(client, settings, date_from=date(2026, 5, 5), date_to=date(2026, 5, 11))
    assert len(empty) == 2 * 168 and all(r["contacts_per_hour"] is None and r["gap"] is None for r in empty)


def test_staffing_cli(settings, client, replay_events, capsys, monkeypatch):
    replay_events(staffing_scenario())
    monkeypatch.setenv("LEADFLOW_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    args = ["--warehouse", str(settings.warehouse_dir)]
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    assert main(["kpis", "staffing", "--channel", "chat", "--format", "json", *args]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert len(rows) == 168 and tuple(rows[10]) == STAFFING_KEYS and rows[10]["agents_needed"] == 2
    assert main(["kpis", "staffing", "--channel", "call", *args]) == 0
    out = capsys.readouterr().out
    assert "call     Mon  10:00" in out and "gap" in out
    assert main(["kpis", "staffing", "--format", "csv", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join(STAFFING_KEYS) and len(lines) == 1 + 2 * 168
    assert main(["kpis", "service", "--channel", "chat", *args]) == 2
    assert capsys.readouterr().err.strip() == "leadflow kpis: --channel applies to staffing only"
    assert main(["kpis", "staffing", "--channel", "fax", *args]) == 2
    assert capsys.readouterr().err.strip() == \
        "leadflow kpis staffing: unknown channel 'fax'; one of chat, call, email, social, messenger"


# --- bots ------------------------------------------------------------------------------------------

def bot_scenario() -> list[dict]:
    out = []
    # b1: the bot answers twice and the visitor leaves satisfied: contained
    out += conversation("b1", at(9), "w1", [(5, "visitor", None), (7, "bot", None), (30, "visitor", None),
                                            (32, "bot", None)], close_after=300)
    # b2: the bot greets, op-a takes over 60 s later
    out += conversation("b2", at(9, 10), "w2", [(5, "visitor", None), (8, "bot", None), (68, "operator", "op-a")],
                        close_after=600)
    # b3: two bot messages, op-b 90 s after the last one
    out += conversation("b3", at(9, 20), "w3", [(5, "visitor", None), (6, "bot", None), (36, "bot", None),
                                                (126, "operator", "op-b"), (130, "operator", "op-a")],
                        close_after=600)
    # b4: no bot; b5: the bot's invitation (not visitor-initiated): neither counts
    out += conversation("b4", at(9, 30), "w4", [(5, "visitor", None), (15, "operator", "op-a")], close_after=600)
    out += conversation("b5", at(9, 40), "w5", [(1, "bot", None), (20, "visitor", None), (25, "bot", None)],
                        by="bot", close_after=600)
    # b6: the bot answered, the conversation is never closed: not contained
    out += conversation("b6", at(9, 50), "w6", [(5, "visitor", None), (7, "bot", None)])
    # b7: a messenger conversation whose operator was first, the bot after: no hand-over
    out += conversation("b7", at(9, 55), "w7", [(5, "visitor", None), (60, "operator", "op-b"),
                                                (70, "bot", None)], channel="messenger", close_after=900)
    out.append(inbound_call("k9", at(9, 5), "+15550000009", "answered", "op-c", wait=5, talk=60))
    return out


def test_bot_keys_hand_built(settings, client, replay_events):
    events = bot_scenario()
    replay_events(events)
    svc = {r["channel"]: r for r in compute_kpis(client, settings, "service")}
    chat = svc["chat"]
    assert (chat["bot_conversations"], chat["bot_contained"], chat["bot_containment_rate"]) == (4, 1, 0.25)
    # hand-over waits 60 s and 90 s: median 75, p90 60 + 0.9 x 30
    assert chat["handoff_wait_median_s"] == 75.0 and chat["handoff_wait_p90_s"] == pytest.approx(87.0)
    msg = svc["messenger"]
    assert (msg["bot_conversations"], msg["bot_contained"], msg["bot_containment_rate"],
            msg["handoff_wait_median_s"]) == (1, 0, 0.0, None)
    assert all(svc["call"][k] is None for k in ref.BOT_KEYS)
    ops = {r["operator_id"]: r for r in compute_kpis(client, settings, "operators")}
    assert (ops["op-a"]["bot_conversations"], ops["op-a"]["handoff_wait_median_s"]) == (1, 60.0)
    assert (ops["op-b"]["bot_conversations"], ops["op-b"]["handoff_wait_p90_s"]) == (2, 90.0)
    assert ops["op-c"]["bot_conversations"] == 0 and ops["op-c"]["handoff_wait_median_s"] is None
    assert all(r["bot_contained"] is None and r["bot_containment_rate"] is None for r in ops.values())
    for grouping in ("service", "operators"):
        got = compute_kpis(client, settings, grouping)
        want = ref.compute_kpis(events, grouping)
        assert [{k: r[k] for k in ref.BOT_KEYS} for r in got] == [{k: r[k] for k in ref.BOT_KEYS} for r in want]


def test_migration_0028_backfills_bot_columns(settings, client, replay_events):
    """A warehouse whose conversation rows predate 0028 gets the columns from its stored events."""
    replay_events(bot_scenario())
    before = compute_kpis(client, settings, "service", source="facts")  # the facts, which the migration fills
    client.command("ALTER TABLE conversation_facts UPDATE bot_messages = 0, first_operator_at = NULL, "
                   "first_operator = '', handoff_bot_at = NULL WHERE 1 SETTINGS mutations_sync = 1")
    assert compute_kpis(client, settings, "service", source="facts") != before
    mig = next(m for m in warehouse.list_migrations() if m.version == 28)
    for stmt in mig.statements():
        client.command(stmt)
    assert compute_kpis(client, settings, "service", source="facts") == before


# --- contacts ------------------------------------------------------------------------------------

def test_contacts_drill_down(settings, client, replay_events, capsys, monkeypatch):
    events = bot_scenario() + [
        ev("deal_won", at(12), {"visitor_id": "w2"}, deal_id="d1", revenue=500, currency="USD"),
        ev("deal_won", MON + timedelta(days=95), {"visitor_id": "w3"}, deal_id="d2", revenue=900, currency="USD"),
        ev("survey_response", at(9, 30), {"visitor_id": "w2"}, survey="csat", score=4, conversation_id="b2"),
        ev("survey_response", at(9, 31), {"visitor_id": "w2"}, survey="csat", score=2, conversation_id="b2"),
        ev("survey_response", at(9, 31), None, survey="nps", score=9, call_id="k9"),
        ev("conversation_transferred", at(9, 22), None, conversation_id="b3", from_operator_id="op-b",
           to_operator_id="op-a"),
    ]
    replay_events(events)
    rows = contacts(client, settings, limit=100)
    assert all(tuple(r) == CONTACT_KEYS for r in rows)
    assert [r["contact_id"] for r in rows] == ["b7", "b6", "b5", "b4", "b3", "b2", "k9", "b1"]  # newest first
    r = {x["contact_id"]: x for x in rows}
    assert r["b2"] == {"contact_id": "b2", "kind": "conversation", "channel": "chat",
                       "started_at": datetime(2026, 5, 4, 9, 10), "operators": ["op-a"], "first_response_s": 63.0,
                       "missed": False, "transfers": 0, "csat": 2.0, "nps": None, "person_converted": True,
                       "revenue": 500.0}
    assert r["b3"]["operators"] == ["op-b", "op-a"] and r["b3"]["transfers"] == 1
    assert r["b3"]["person_converted"] is False and r["b3"]["revenue"] == 0.0  # d2 is 95 days later
    assert r["k9"] == {"contact_id": "k9", "kind": "call", "channel": "call",
                       "started_at": datetime(2026, 5, 4, 9, 5), "operators": ["op-c"], "first_response_s": 5.0,
                       "missed": False, "transfers": 0, "csat": None, "nps": 9.0, "person_converted": False,
                       "revenue": 0.0}
    assert r["b1"]["first_response_s"] is None and r["b1"]["missed"] is False  # the bot answered
    assert [x["contact_id"] for x in contacts(client, settings, operators=["op-a"])] == ["b4", "b3", "b2"]
    assert [x["contact_id"] for x in contacts(client, settings, channels=["call", "messenger"])] == ["b7", "k9"]
    assert [x["contact_id"] for x in contacts(client, settings, order="slowest", limit=2)] == ["b3", "b2"]
    assert contacts(client, settings, missed_only=True) == []
    assert [x["contact_id"] for x in contacts(client, settings, limit=2)] == ["b7", "b6"]
    assert contacts(client, settings, date_from=date(2026, 5, 5)) == []

    monkeypatch.setenv("LEADFLOW_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    args = ["--warehouse", str(settings.warehouse_dir)]
    assert main(["contacts", "--operator", "op-a", "--format", "json", *args]) == 0
    got = orjson.loads(capsys.readouterr().out)
    assert [x["contact_id"] for x in got] == ["b4", "b3", "b2"] and got[2]["started_at"] == "2026-05-04T09:10:00.000Z"
    assert main(["contacts", "--channel", "call", "--format", "csv", *args]) == 0
    assert capsys.readouterr().out.splitlines() == [
        ",".join(CONTACT_KEYS), "k9,call,call,2026-05-04T09:05:00.000Z,op-c,5.0,False,0,,9.0,False,0.0"]
    assert main(["contacts", "--limit", "2", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("contacts, all time, newest first, at most 2\n") and "b7" in out and "b5" not in out
    assert main(["contacts", "--from", "2026-05-05", "--to", "2026-05-04", *args]) == 2
    assert "must be before" in capsys.readouterr().err


# --- the simulated business: SQL == reference ------------------------------------------------------

@pytest.fixture(scope="module")
def sim(broker, chdb_dir, tmp_path_factory):
    settings, client, path, *_ = simulated_warehouse(broker, chdb_dir, tmp_path_factory)
    return settings, client, read_jsonl(path)


@pytest.mark.parametrize("period", [(None, None), SIM_PERIOD])
def test_staffing_simulated_matches_reference(sim, period):
    settings, client, events = sim
    got = staffing(client, settings, date_from=period[0], date_to=period[1])
    want = ref.compute_staffing(events, period[0], period[1])
    cells = assert_same_rows(got, want, STAFFING_KEYS)
    assert cells > 1000
    assert sum(r["agents_needed"] or 0 for r in got) > 0 and any(r["gap"] and r["gap"] > 0 for r in got)


@pytest.mark.parametrize("period", [(None, None), SIM_PERIOD])
def test_bot_keys_simulated_match_reference(sim, period):
    settings, client, events = sim
    for grouping in ("service", "operators"):
        got = compute_kpis(client, settings, grouping, date_from=period[0], date_to=period[1])
        want = ref.compute_kpis(events, grouping, date_from=period[0], date_to=period[1])
        assert [r[ref.OUTPUT_KEYS[grouping][0]] for r in got] == [r[ref.OUTPUT_KEYS[grouping][0]] for r in want]
        for g, w in zip(got, want):
            for k in ref.BOT_KEYS:
                assert close(k, g[k], w[k]), (grouping, g[ref.OUTPUT_KEYS[grouping][0]], k, g[k], w[k])
    chat = next(r for r in compute_kpis(client, settings, "service") if r["channel"] == "chat")
    assert chat["bot_conversations"] > 0 and chat["bot_contained"] > 0 and chat["handoff_wait_median_s"] > 0
