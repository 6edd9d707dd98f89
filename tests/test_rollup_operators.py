"""The rollup of the `operators` grouping (issue 18): services/rollup/sql/operators/ and
migration 0035. kpis.sql over the rollup must equal the reference (the facts query,
services/attribution/kpis/sql/operators.sql) cell for cell: counts, quantiles and
max_concurrency exactly, float sums (frt mean, art) up to float rounding.

The simulated fortnight (tests/simdata.py's configuration) is replayed into a database of
this module's own, because the restatement tests change its facts."""
from __future__ import annotations

import asyncio
import json
import math
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from leadflow import warehouse
from leadflow.config import load_settings
from services.attribution.kpis.query import DEFAULT_MODEL, OUTPUT_KEYS, compute_kpis, kpi_parameters, load_sql
from services.attribution.models import STORED_MODELS
from services.rollup.refresh import item_parameters, kpis_sql, rebuild, refresh
from tests.conftest import TEST_IDENTITY_SECRET
from tests.simdata import SIM_DAYS, SIM_PERIOD, SIM_SEED, SIM_START, SIM_VISITORS_PER_DAY

G = "operators"
KEYS = OUTPUT_KEYS[G]
FLOAT_SUMS = ("frt_mean_s", "art_s")  # means of float sums: equal up to float rounding
PERIODS = [
    (None, None),  # all time
    (date(2026, 5, 1), date(2026, 6, 1)),  # one month
    SIM_PERIOD,
    (date(2026, 5, 6), date(2026, 5, 7)),  # one day
    (date(2025, 1, 1), date(2025, 2, 1)),  # no data: every operator, zero figures
]



@pytest.fixture
def settings(settings):
    """The rollups on (off by default, leadflow/config.py)."""
    return settings.model_copy(update={"rollups": True})

def same(key: str, got, want) -> bool:
    if got is None or want is None or isinstance(want, str):
        return got == want
    if key in FLOAT_SUMS:
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return got == want and type(got) is type(want)


def assert_equal_to_reference(client, settings, periods=PERIODS) -> list[list[dict]]:
    """kpis.sql over the rollup == the reference over the facts, for every period; returns the latter."""
    out = []
    for date_from, date_to in periods:
        want = compute_kpis(client, settings, G, source="facts", date_from=date_from, date_to=date_to)
        got = compute_kpis(client, settings, G, date_from=date_from, date_to=date_to, source="rollups")
        assert [r["operator_id"] for r in got] == [r["operator_id"] for r in want], (date_from, date_to)
        bad = [f"{date_from}..{date_to} {g['operator_id']} {k}: rollup {g[k]!r} != reference {w[k]!r}"
               for g, w in zip(got, want) for k in KEYS if not same(k, g[k], w[k])]
        assert not bad, "\n".join(bad[:30])
        out.append(want)
    return out


def item_net(client) -> list[tuple]:
    """The item log's net rows (the stored items)."""
    return client.query(
        "SELECT * EXCEPT sign, sum(sign) AS n FROM rollup_items_operators GROUP BY ALL HAVING n != 0 "
        "ORDER BY ALL").result_rows


def replay_lines(settings, tmp_path, events: list[dict]) -> None:
    from leadflow.replay import replay

    path = tmp_path / f"late-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    summary = asyncio.run(replay(settings, [path], show_progress=False))
    assert summary is not None


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the simulated fortnight ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim(broker, chdb_dir, tmp_path_factory):
    from leadflow.replay import replay
    from leadflow.simulator import SimulationConfig, write_jsonl

    tag = uuid.uuid4().hex[:6]
    settings = load_settings(
        kafka_bootstrap=broker.bootstrap, warehouse_dir=chdb_dir, clickhouse_database=f"rollup_ops_{tag}",
        topic_prefix=f"rollup-ops-{tag}", topic_partitions=3, batch_max_seconds=0.1, rollups=True,
        identity_secret=TEST_IDENTITY_SECRET,
    )
    path = tmp_path_factory.mktemp("rollup-ops") / "sim.jsonl"
    write_jsonl(SimulationConfig(days=SIM_DAYS, seed=SIM_SEED, start=SIM_START,
                                 visitors_per_day=SIM_VISITORS_PER_DAY), path)
    asyncio.run(replay(settings, [path], show_progress=False))
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # the simulator's deliberately invalid lines
    return settings, events


def client_of(settings):
    return warehouse.connect(settings)  # a live client: another chdb path opened in the process closes it


def test_rebuild_equals_reference(sim):
    settings, _ = sim
    client = client_of(settings)
    assert rebuild(client, settings, only=[G]) == {G: 0}  # the pipeline's rollup stage kept them current
    # from nothing: what a new warehouse's rebuild does
    for table in (f"rollup_items_{G}", f"rollup_{G}", "rollup_operator_points", "rollup_operator_peaks"):
        client.command(f"TRUNCATE TABLE {table}")
    client.command("ALTER TABLE rollup_quantiles DELETE WHERE grouping = 'operators'", settings={"mutations_sync": 2})
    written = rebuild(client, settings, only=[G])
    assert written[G] > 300
    results = assert_equal_to_reference(client, settings)
    everything, *_, empty = results
    # the simulation exercises what is compared: quantiles, concurrency, transfers, surveys, bots
    assert len(everything) >= 8 and [r["operator_id"] for r in empty] == [r["operator_id"] for r in everything]
    assert all(r["conversations"] == 0 and r["max_concurrency"] == 0 and r["frt_median_s"] is None for r in empty)
    assert any(r["max_concurrency"] >= 2 for r in everything)
    assert any(r["frt_p90_s"] is not None for r in everything) and any(r["handoff_wait_p90_s"] for r in everything)
    assert sum(r["transfers"] for r in everything) > 0 and any(r["nps"] is not None for r in everything)
    assert any(r["operator_conversion_rate"] for r in everything)
    # the model and "now" are no parameters of this grouping: every stored model reads the same rollup
    for model in STORED_MODELS:
        assert compute_kpis(client, settings, G, model=model, source="rollups") == \
            compute_kpis(client, settings, G, model=DEFAULT_MODEL, source="rollups")
    # the same column types as the reference
    params = kpi_parameters(settings)
    types = [[t.name for t in client.query(sql, parameters={k: v for k, v in params.items() if "{" + k + ":" in sql}
                                           ).column_types] for sql in (load_sql(G), kpis_sql(G))]
    assert types[0] == types[1]
    # a rebuild again writes nothing: the items are those of the facts
    assert rebuild(client, settings, only=[G]) == {G: 0}


def _contacts_of_persons(client, identity_keys: list[str]) -> tuple[list[str], list[str]]:
    """The conversation and call ids of the persons owning these identity keys (what the stage
    announces after attribution: the person's conversation/call ids)."""
    rows = client.query(
        "SELECT 'conversation', conversation_id FROM conversation_facts WHERE identity_key IN "
        "(SELECT identity_key FROM persons WHERE person_id IN (SELECT person_id FROM persons WHERE identity_key IN {k:Array(String)})) "
        "UNION ALL SELECT 'call', call_id FROM call_latest WHERE identity_key IN "
        "(SELECT identity_key FROM persons WHERE person_id IN (SELECT person_id FROM persons WHERE identity_key IN {k:Array(String)}))",
        parameters={"k": identity_keys}).result_rows
    return sorted({i for kind, i in rows if kind == "conversation"}), sorted({i for kind, i in rows if kind == "call"})


def _surveys_of(client, conversations: list[str], calls: list[str]) -> list[str]:
    """The survey responses of changed conversations/calls (the stage announces them too)."""
    return [i for (i,) in client.query(
        "SELECT DISTINCT event_id FROM surveys WHERE (conversation_id != '' AND conversation_id IN {a:Array(String)}) "
        "OR (call_id != '' AND call_id IN {b:Array(String)})", parameters={"a": conversations, "b": calls}).result_rows]


def test_restatements_and_replays(sim, tmp_path):
    settings, events = sim
    client = client_of(settings)
    rebuild(client, settings, only=[G])
    before = compute_kpis(client, settings, G, source="facts")
    one = lambda sql: client.query(sql).result_rows[0]  # noqa: E731
    by_type: dict[str, dict[str, dict]] = {}
    for e in events:
        key = e.get("conversation_id") if e["type"] == "conversation_started" else e.get("deal_id") or e.get("call_id")
        if key:
            by_type.setdefault(e["type"], {})[key] = e
    # a late merge: a handled conversation of a person without deals joins a winner of a deal
    # won after its start (a lead carrying both identities): its items become converted
    c1, c1_start, c1_key = one(
        "SELECT conversation_id, started_at, identity_key FROM conversations WHERE notEmpty(operators) "
        "AND key_h NOT IN (SELECT k_key_h FROM converting_contact_keys) ORDER BY started_at, conversation_id LIMIT 1")
    d1, d1_key = one(
        f"SELECT deal_id, identity_key FROM deal_winners WHERE won_at > toDateTime64('{c1_start}', 3, 'UTC') "
        "ORDER BY won_at, deal_id LIMIT 1")
    merge_identity = {"visitor_id": by_type["conversation_started"][c1]["identity"]["visitor_id"]}
    deal_identity = by_type["deal_won"][d1]["identity"]
    merge_identity.update({k: deal_identity[k] for k in ("email", "phone") if k in deal_identity})
    # a restated deal: a deal of another person, who has a conversation of other operators started
    # before it was won, is won again months later (the later occurred_at wins): out of the window
    c1_ops = client.query(f"SELECT arrayMap(o -> o.1, operators) FROM conversations WHERE conversation_id = '{c1}'"
                          ).result_rows[0][0]
    d2, d2_key = one(
        "SELECT d.deal_id, d.identity_key FROM deal_winners AS d INNER JOIN persons AS p ON p.identity_key = d.identity_key "
        "INNER JOIN (SELECT p2.person_id AS person_id, c.started_at AS started_at FROM conversations AS c "
        "INNER JOIN persons AS p2 ON p2.identity_key = c.identity_key "
        f"WHERE notEmpty(c.operators) AND NOT hasAny(arrayMap(o -> o.1, c.operators), {c1_ops!r})) AS s "
        "ON s.person_id = p.person_id WHERE d.won_at >= s.started_at AND p.person_id NOT IN "
        f"(SELECT person_id FROM persons WHERE identity_key IN ('{c1_key}', '{d1_key}')) ORDER BY d.won_at, d.deal_id LIMIT 1")
    # a conversation that gets a reply from an operator new to it; a conversation whose survey
    # (without an operator) follows its last operator, who changes; a transfer from an operator
    # who never wrote; a restated call (another operator, other times); a call restated as missed
    c3, c3_start = one("SELECT conversation_id, started_at FROM conversations WHERE notEmpty(operators) "
                       "ORDER BY conversation_id LIMIT 1 OFFSET 5")
    c4, c4_end = one("SELECT conversation_id, greatest(ifNull(last_event_at, started_at), ifNull(closed_at, started_at)) "
                     "FROM conversations WHERE conversation_id IN (SELECT conversation_id FROM surveys WHERE "
                     "operator_id = '' AND conversation_id != '') ORDER BY conversation_id LIMIT 1")
    c5, c5_start = one("SELECT conversation_id, started_at FROM conversations WHERE notEmpty(operators) "
                       "ORDER BY conversation_id DESC LIMIT 1")
    k1, = one("SELECT call_id FROM call_winners WHERE direction = 'inbound' AND outcome = 'answered' "
              "AND operator_id != '' ORDER BY call_id LIMIT 1")
    k2, = one("SELECT call_id FROM call_winners WHERE direction = 'inbound' AND outcome = 'answered' AND call_id IN "
              "(SELECT call_id FROM surveys WHERE operator_id = '' AND call_id != '') ORDER BY call_id LIMIT 1")
    call1, call2 = by_type["call_completed"][k1], by_type["call_completed"][k2]
    t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    k1_start = t(call1["started_at"])
    late = [
        {"event_id": "late-merge", "type": "lead", "occurred_at": iso(c1_start + timedelta(days=20)), "source": "site",
         "identity": merge_identity, "lead_id": "L-late-merge", "channel": "organic"},
        {**by_type["deal_won"][d2], "event_id": "late-deal", "occurred_at": "2026-11-20T10:00:00.000Z"},
        {"event_id": "late-reply", "type": "message", "occurred_at": iso(c3_start + timedelta(seconds=7)),
         "source": "site-chat", "conversation_id": c3, "author": "operator", "operator_id": "op-late",
         "template_id": "t-late"},
        {"event_id": "late-last", "type": "message", "occurred_at": iso(c4_end + timedelta(seconds=30)),
         "source": "site-chat", "conversation_id": c4, "author": "operator", "operator_id": "op-last"},
        {"event_id": "late-transfer", "type": "conversation_transferred", "occurred_at": iso(c5_start + timedelta(seconds=5)),
         "source": "site-chat", "conversation_id": c5, "from_operator_id": "op-xfer", "to_operator_id": "op-anna"},
        {**call1, "event_id": "late-call", "operator_id": "op-call",
         "answered_at": iso(k1_start + timedelta(seconds=3)), "ended_at": iso(k1_start + timedelta(minutes=41)),
         "occurred_at": iso(k1_start + timedelta(minutes=41))},
        {**{k: v for k, v in call2.items() if k not in ("answered_at", "operator_id")},
         "event_id": "late-missed", "outcome": "missed", "occurred_at": iso(t(call2["occurred_at"]) + timedelta(seconds=1))},
    ]
    replay_lines(settings, tmp_path, late)
    client = client_of(settings)
    changed = compute_kpis(client, settings, G, source="facts")
    assert changed != before  # the facts moved: a rollup left alone would now differ
    assert {"op-late", "op-last", "op-xfer", "op-call"} <= {r["operator_id"] for r in changed}

    params = item_parameters(settings)
    # after enrich: the changed conversations and calls, and the surveys of them
    conversations, calls = sorted({c3, c4, c5}), sorted({k1, k2})
    # after attribution: the persons of the merge and of the restated deal, with their
    # conversations and calls (and those contacts' surveys)
    p_conversations, p_calls = _contacts_of_persons(client, [c1_key, d1_key, d2_key])
    assert c1 in p_conversations
    announced = [
        ("conversation", conversations), ("call", calls), ("survey", _surveys_of(client, conversations, calls)),
        ("conversation", p_conversations), ("call", p_calls), ("survey", _surveys_of(client, p_conversations, p_calls)),
    ]
    # the pipeline's rollup stage refreshed what enrich and attribution announced: these ids
    # (what the stage must announce) leave nothing to write
    assert_equal_to_reference(client, settings)
    assert sum(refresh(client, G, kind, ids, params) for kind, ids in announced) == 0
    assert_equal_to_reference(client, settings)
    # a replay: the same announcements again write nothing and leave the net as it was
    net = item_net(client)
    assert sum(refresh(client, G, kind, ids, params) for kind, ids in announced) == 0
    assert item_net(client) == net
    assert_equal_to_reference(client, settings)


# --- hand-built: the ties of max_concurrency, the row set (O1) ---------------------------------------

def _call(cid: str, op: str, answered: str, ended: str, **extra) -> dict:
    answered_t = datetime.fromisoformat(answered.replace("Z", "+00:00"))
    event = {"event_id": f"ev-{cid}-{extra.pop('v', 1)}", "type": "call_completed", "occurred_at": ended, "source": "pbx",
             "identity": {"phone": "+1 646 555 0" + str(100 + len(cid))}, "call_id": cid, "direction": "inbound",
             "started_at": iso(answered_t - timedelta(seconds=10)), "answered_at": answered, "ended_at": ended,
             "outcome": "answered", "operator_id": op}
    event.update(extra)
    return event


def test_concurrency_ties_and_row_set_by_hand(settings, client, replay_events):
    replay_events([
        # op-t on May 1: [10:00, 10:05], [10:05, 10:10] touching (no overlap), and an empty
        # interval at 10:05: the first's end comes before both starts, the empty one's end after
        # them: 2 at once (3 if touching counted, 1 if empty intervals did not)
        _call("a", "op-t", "2026-05-01T10:00:00.000Z", "2026-05-01T10:05:00.000Z"),
        _call("b", "op-t", "2026-05-01T10:05:00.000Z", "2026-05-01T10:10:00.000Z"),
        _call("c", "op-t", "2026-05-01T10:05:00.000Z", "2026-05-01T10:05:00.000Z"),
        # op-u: the same interval twice (one point, delta 2), and one on May 2 alone
        _call("d", "op-u", "2026-05-01T11:00:00.000Z", "2026-05-01T11:30:00.000Z"),
        _call("e", "op-u", "2026-05-01T11:00:00.000Z", "2026-05-01T11:30:00.000Z"),
        _call("f", "op-u", "2026-05-02T09:00:00.000Z", "2026-05-02T09:01:00.000Z"),
        # op-z answered one call only (restated as missed below: its row goes)
        _call("z", "op-z", "2026-05-02T12:00:00.000Z", "2026-05-02T12:01:00.000Z"),
        # a conversation of op-m, transferred from op-o (who never wrote) to op-n (no row: O1)
        {"event_id": "h-cs", "type": "conversation_started", "occurred_at": "2026-05-01T08:00:00.000Z",
         "source": "site-chat", "identity": {"visitor_id": "v-h"}, "conversation_id": "conv-h", "channel": "chat",
         "initiated_by": "visitor"},
        {"event_id": "h-m1", "type": "message", "occurred_at": "2026-05-01T08:00:05.000Z", "source": "site-chat",
         "conversation_id": "conv-h", "author": "visitor"},
        {"event_id": "h-m2", "type": "message", "occurred_at": "2026-05-01T08:00:35.000Z", "source": "site-chat",
         "conversation_id": "conv-h", "author": "operator", "operator_id": "op-m"},
        {"event_id": "h-tr", "type": "conversation_transferred", "occurred_at": "2026-05-01T08:01:00.000Z",
         "source": "site-chat", "conversation_id": "conv-h", "from_operator_id": "op-o", "to_operator_id": "op-n"},
        # a survey credited to its operator only (op-s), one to the conversation's last operator
        {"event_id": "h-s1", "type": "survey_response", "occurred_at": "2026-05-03T08:00:00.000Z", "source": "site",
         "survey": "csat", "score": 5, "operator_id": "op-s"},
        {"event_id": "h-s2", "type": "survey_response", "occurred_at": "2026-05-03T09:00:00.000Z", "source": "site",
         "survey": "nps", "score": 3, "conversation_id": "conv-h"},
    ])
    assert rebuild(client, settings, only=[G])[G] == 0  # the pipeline's rollup stage wrote them
    may1, may2 = (date(2026, 5, 1), date(2026, 5, 2)), (date(2026, 5, 2), date(2026, 5, 3))
    everything, first, second = assert_equal_to_reference(client, settings, [(None, None), may1, may2])
    assert [r["operator_id"] for r in everything] == ["op-m", "op-o", "op-s", "op-t", "op-u", "op-z"]
    conc = {p: {r["operator_id"]: r["max_concurrency"] for r in rows}
            for p, rows in (("all", everything), ("may1", first), ("may2", second))}
    assert conc["all"] == {"op-m": 1, "op-o": 0, "op-s": 0, "op-t": 2, "op-u": 2, "op-z": 1}
    assert conc["may2"] == {"op-m": 0, "op-o": 0, "op-s": 0, "op-t": 0, "op-u": 1, "op-z": 1}
    assert {r["operator_id"]: r["transfers"] for r in first}["op-o"] == 1
    # op-z's call restated as missed: its items go, and with them its row
    replay_events([{k: v for k, v in _call("z", "", "2026-05-02T12:00:00.000Z", "2026-05-02T12:01:00.000Z", v=2,
                                          outcome="missed", occurred_at="2026-05-02T12:01:01.000Z").items()
                    if k not in ("operator_id", "answered_at")}])
    assert refresh(client, G, "call", ["z"], item_parameters(settings)) == 0  # the stage took it out already
    everything, = assert_equal_to_reference(client, settings, [(None, None)])
    assert "op-z" not in [r["operator_id"] for r in everything]


def _max_conc(rows: list[dict]) -> dict[str, int]:
    return {r["operator_id"]: r["max_concurrency"] for r in rows if r["operator_id"] == "op-x"}


def test_concurrency_across_midnights_and_period_edges(settings, client, replay_events):
    # op-x's intervals cross the midnights where periods start and end: a day's stored peak
    # (migration 0038) holds only when every point of that day belongs to an item of the period;
    # otherwise the query reads the day's points of the period's items. Items are dated by the
    # call's start (10 s before the answer).
    calls = [
        _call("x1", "op-x", "2026-04-30T23:50:00.000Z", "2026-05-01T00:20:00.000Z"),  # an April item
        _call("x2", "op-x", "2026-05-01T00:10:00.000Z", "2026-05-01T00:30:00.000Z"),
        _call("x3", "op-x", "2026-05-01T00:15:00.000Z", "2026-05-01T00:25:00.000Z"),
        _call("x4", "op-x", "2026-05-31T23:55:00.000Z", "2026-06-01T00:10:00.000Z"),  # a May item ending in June
        _call("x5", "op-x", "2026-06-01T00:05:00.000Z", "2026-06-01T00:20:00.000Z"),
        _call("x6", "op-x", "2026-06-01T00:06:00.000Z", "2026-06-01T00:07:00.000Z"),
    ]
    replay_events(calls)
    periods = [(None, None), (date(2026, 4, 1), date(2026, 5, 1)), (date(2026, 5, 1), date(2026, 6, 1)),
               (date(2026, 6, 1), date(2026, 7, 1)), (date(2026, 5, 31), date(2026, 6, 2)),
               (date(2026, 4, 30), date(2026, 5, 2))]
    # by hand: all time 3 (x1, x2, x3 at 00:15 on May 1; x4, x5, x6 at 00:06 on June 1); April
    # only x1; May x2 and x3 (x1 is April's), x4 alone later; June x5 and x6; May 31 - June 1
    # x4, x5 and x6; April 30 - May 1 x1, x2 and x3
    want = [3, 1, 2, 2, 3, 3]
    got = [_max_conc(rows)["op-x"] for rows in assert_equal_to_reference(client, settings, periods)]
    assert got == want
    # the days are stored per point day: one row each for April 30, May 1, May 31 and June 1
    days = client.query("SELECT pday, net, peak, first_day, last_day, points FROM rollup_operator_peaks FINAL "
                        "WHERE operator_id = 'op-x' ORDER BY pday").result_rows
    may1 = (date(2026, 5, 1) - date(1970, 1, 1)).days
    assert [d[0] for d in days] == [may1 - 1, may1, may1 + 30, may1 + 31]
    assert days[1][1:] == (-1, 2, date(2026, 4, 30), date(2026, 5, 1), 5)  # x1's end, x2's and x3's ends

    # x3 and x6 restated as missed: their intervals leave, and the days' peaks with them
    replay_events([{k: v for k, v in _call(c, "", a, e, v=2, outcome="missed", occurred_at=e.replace(":00.000Z", ":01.000Z")).items()
                    if k not in ("operator_id", "answered_at")}
                   for c, a, e in (("x3", "2026-05-01T00:15:00.000Z", "2026-05-01T00:25:00.000Z"),
                                   ("x6", "2026-06-01T00:06:00.000Z", "2026-06-01T00:07:00.000Z"))])
    got = [_max_conc(rows)["op-x"] for rows in assert_equal_to_reference(client, settings, periods)]
    assert got == [2, 1, 1, 1, 2, 2]

    # a crash between the items' insert and the peaks' statement: the retry (the same ids again,
    # no item left to write) recomputes the days from every item row the entities ever had
    client.command("ALTER TABLE rollup_operator_peaks DELETE WHERE operator_id = 'op-x'", settings={"mutations_sync": 2})
    assert refresh(client, G, "call", [f"x{i}" for i in range(1, 7)], item_parameters(settings)) == 0
    got = [_max_conc(rows)["op-x"] for rows in assert_equal_to_reference(client, settings, periods)]
    assert got == [2, 1, 1, 1, 2, 2]
    # the migration's backfill (run again here: it truncates first) gives the same days
    before = client.query("SELECT * EXCEPT version FROM rollup_operator_peaks FINAL WHERE points > 0 ORDER BY ALL").result_rows
    from leadflow.warehouse import list_migrations
    mig = next(m for m in list_migrations() if m.version == 38)
    for stmt in mig.statements():
        client.command(stmt)
    after = client.query("SELECT * EXCEPT version FROM rollup_operator_peaks FINAL WHERE points > 0 ORDER BY ALL").result_rows
    assert after == before and len(before) == 4
