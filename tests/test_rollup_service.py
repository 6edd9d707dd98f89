"""The rollup of the `service` grouping (issue 18, services/rollup/sql/service, migration 0034).

A warehouse of its own (built once for the module through the whole pipeline): the simulated
fortnight (tests/simdata.py's configuration) plus hand-written contacts after it that reach the
hard parts (a conversation pending on "now" whose person has a deal, a missed closed one, a
survey of a conversation not yet known, an inbound call with a survey, a bot hand-over in the
simulation). kpis.sql read from the rollup (source="rollups") must equal the reference query
over facts (services/attribution/kpis/sql/service.sql, source="facts") cell for cell: after a
rebuild, then after late events restate facts and `refresh` is called for exactly the entities
the rollup stage would announce, and again after a replayed refresh (which writes nothing).
"""
from __future__ import annotations

import asyncio
import json
import math
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from leadflow import warehouse
from leadflow.config import load_settings
from services.attribution.kpis import OUTPUT_KEYS, compute_kpis
from services.attribution.models import MODELS
from services.rollup.refresh import item_columns, item_parameters, rebuild, refresh
from tests.simdata import SIM_DAYS, SIM_PERIOD, SIM_SEED, SIM_START, SIM_VISITORS_PER_DAY

UTC = timezone.utc
T = datetime(2026, 5, 20, 10, tzinfo=UTC)  # the hand-written contacts: after the simulated fortnight
PHONE = "+15550001"
_n = iter(range(10**9))


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ev(type_: str, at: datetime, identity: dict | None = None, **fields) -> dict:
    e = {"event_id": f"rs-{next(_n):05d}", "type": type_, "occurred_at": iso(at), "source": "test"}
    if identity:
        e["identity"] = identity
    e.update(fields)
    return e


def started(cid: str, at: datetime, visitor: str, channel: str) -> dict:
    return ev("conversation_started", at, {"visitor_id": visitor}, conversation_id=cid, channel=channel,
              initiated_by="visitor")


def message(cid: str, at: datetime, author: str, op: str | None = None) -> dict:
    return ev("message", at, conversation_id=cid, author=author, **({"operator_id": op} if op else {}))


def call(cid: str, at: datetime, outcome: str, occurred: datetime) -> dict:
    f = {"call_id": cid, "direction": "inbound", "started_at": iso(at), "outcome": outcome}
    if outcome == "answered":
        f.update(answered_at=iso(at + timedelta(seconds=10)), operator_id="op-1",
                 ended_at=iso(at + timedelta(seconds=110)))
    else:
        f["ended_at"] = iso(at + timedelta(seconds=30))
    return ev("call_completed", occurred, {"phone": PHONE}, **f)


def deal(at: datetime, revenue: str) -> dict:
    return ev("deal_won", at, {"phone": PHONE}, deal_id="D-rs-1", revenue=revenue, currency="USD")


# A's deadline: its visitor message + missed_after_hours (24 h by default), while nobody replies
A_DEADLINE = T + timedelta(seconds=1, hours=24)

FIRST = [
    ev("lead", T + timedelta(minutes=30), {"visitor_id": "v-rs-1", "phone": PHONE}, lead_id="L-rs-1",
       channel="organic"),
    # A: chat, unanswered and open: missed once "now" passes its deadline; its person wins a deal
    started("conv-A", T, "v-rs-1", "chat"), message("conv-A", T + timedelta(seconds=1), "visitor"),
    deal(T + timedelta(hours=2), "500.00"),
    # B: messenger, closed without a reply: missed whatever "now" is
    started("conv-B", T, "v-rs-3", "messenger"), message("conv-B", T + timedelta(seconds=1), "visitor"),
    ev("conversation_closed", T + timedelta(minutes=10), conversation_id="conv-B"),
    # E: chat, answered; its visitor is merged into A's person later
    started("conv-E", T + timedelta(hours=1), "v-rs-2", "chat"),
    message("conv-E", T + timedelta(hours=1, seconds=1), "visitor"),
    message("conv-E", T + timedelta(hours=1, seconds=31), "operator", "op-1"),
    ev("conversation_closed", T + timedelta(hours=1, minutes=10), conversation_id="conv-E"),
    # a survey of a conversation not known yet: channel (none) until it arrives
    ev("survey_response", T + timedelta(hours=3), survey="csat", score=5, conversation_id="conv-late"),
    # an inbound call with a survey
    call("K-rs-1", T + timedelta(hours=4), "answered", T + timedelta(hours=4, minutes=2)),
    ev("survey_response", T + timedelta(hours=5), survey="nps", score=9, call_id="K-rs-1"),
]

LATE = [
    # the conversation of the survey arrives (social)
    started("conv-late", T + timedelta(hours=2, minutes=50), "v-rs-5", "social"),
    message("conv-late", T + timedelta(hours=2, minutes=51), "visitor"),
    # A gets a reply before its deadline: no longer missed at any "now"
    message("conv-A", T + timedelta(minutes=5), "operator", "op-1"),
    # the call is restated: abandoned
    call("K-rs-1", T + timedelta(hours=4), "abandoned", T + timedelta(hours=4, minutes=3)),
    # the deal is restated (the later occurred_at wins): another revenue
    deal(T + timedelta(hours=3), "800.00"),
    # a moved touch: the lead arrives again, earlier (the earliest lead_at wins), before A started
    ev("lead", T - timedelta(hours=1), {"visitor_id": "v-rs-1", "phone": PHONE}, lead_id="L-rs-1",
       channel="organic"),
    # a late merge: E's visitor leaves A's person's phone
    ev("lead", T + timedelta(hours=6), {"visitor_id": "v-rs-2", "phone": PHONE}, lead_id="L-rs-2",
       channel="organic"),
]

PERIODS = [
    (None, None),  # all time
    (date(2026, 5, 1), date(2026, 6, 1)),  # a month
    SIM_PERIOD,
    (date(2026, 5, 6), date(2026, 5, 7)),  # a day
    (T.date(), T.date() + timedelta(days=1)),  # the hand-written day
    (date(2027, 1, 1), date(2027, 2, 1)),  # no data
]
NOWS = [None, A_DEADLINE - timedelta(milliseconds=1), A_DEADLINE, A_DEADLINE + timedelta(milliseconds=1),
        datetime(2026, 5, 10, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)]


def replay_lines(settings, path, events: list[dict], *, with_sim: bool) -> None:
    """Replay the events (after the simulated fortnight's lines, which include invalid ones on
    purpose) through the whole pipeline; none of the hand-written events is rejected."""
    from leadflow.replay import replay
    from leadflow.simulator import SimulationConfig, write_jsonl

    files = []
    if with_sim:
        files.append(path.with_name("sim.jsonl"))
        write_jsonl(SimulationConfig(days=SIM_DAYS, seed=SIM_SEED, start=SIM_START,
                                     visitors_per_day=SIM_VISITORS_PER_DAY), files[0])
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    files.append(path)
    summary = asyncio.run(replay(settings, files, show_progress=False))
    assert not [r for r in summary.first_rejections if r["origin"].startswith(path.name)], summary.first_rejections


@pytest.fixture(scope="module")
def wh(broker, chdb_dir, tmp_path_factory):
    tag = uuid.uuid4().hex[:6]
    settings = load_settings(kafka_bootstrap=broker.bootstrap, warehouse_dir=chdb_dir, rollups=True,
                             clickhouse_database=f"rsvc_{tag}", topic_prefix=f"rsvc-{tag}",
                             topic_partitions=3, batch_max_seconds=0.1)
    root = tmp_path_factory.mktemp("rollup-service")
    replay_lines(settings, root / "first.jsonl", FIRST, with_sim=True)
    client = warehouse.connect(settings)
    rebuild(client, settings, only=["service"])
    return settings, root


def client_of(settings):
    return warehouse.connect(settings)  # a live client each time (another chdb path may have closed it)


def same(key: str, got, want) -> bool:
    if got is None or want is None:
        return got is want
    if isinstance(want, float) or isinstance(got, float):  # float sums: rounding only
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return got == want and type(got) is type(want)


def assert_equal(settings, **kw) -> list[dict]:
    client = client_of(settings)
    want = compute_kpis(client, settings, "service", source="facts", **kw)
    got = compute_kpis(client, settings, "service", source="rollups", **kw)
    assert [r["channel"] for r in got] == [r["channel"] for r in want], kw
    bad = [f"{w['channel']} {k}: rollup {g[k]!r} != reference {w[k]!r}"
           for g, w in zip(got, want) for k in OUTPUT_KEYS["service"] if not same(k, g[k], w[k])]
    assert not bad, f"{kw}\n" + "\n".join(bad)
    return got


def check_all(settings) -> None:
    """Every period with the warehouse's "now"; every "now" (before, at and after A's deadline,
    before and after the data) over all time and over the hand-written day."""
    for date_from, date_to in PERIODS:
        assert_equal(settings, date_from=date_from, date_to=date_to)
    for now in NOWS[1:]:
        for date_from, date_to in (PERIODS[0], PERIODS[4]):
            assert_equal(settings, date_from=date_from, date_to=date_to, now=now)


def by_channel(rows: list[dict]) -> dict[str, dict]:
    return {r["channel"]: r for r in rows}


def net_items(client) -> list[tuple]:
    cols = ", ".join(f"`{c}`" for c in item_columns(client, "service"))
    return client.query(f"SELECT entity, {cols}, sum(sign) AS n FROM rollup_items_service "
                        f"GROUP BY entity, {cols} HAVING n != 0 ORDER BY entity, n, toString(tuple({cols}))").result_rows


def test_rebuild_equals_reference(wh):
    settings, _ = wh
    check_all(settings)
    # the hard parts are reached: a pending conversation decided by "now", its deals, (none)
    day = {"date_from": T.date(), "date_to": T.date() + timedelta(days=1)}
    before = by_channel(assert_equal(settings, now=A_DEADLINE - timedelta(milliseconds=1), **day))
    after = by_channel(assert_equal(settings, now=A_DEADLINE, **day))
    assert (before["chat"]["missed_conversations"], after["chat"]["missed_conversations"]) == (0, 1)
    # before: 0 missed x 1/2 converted (A found the deal) x 500 = 0; after: A is missed, E found
    # no deal (its visitor is not merged yet): no deal value, no lost revenue
    assert before["chat"]["lost_revenue"] == 0.0 and after["chat"]["lost_revenue"] is None
    assert before["messenger"]["missed_conversations"] == 1
    assert before["(none)"]["csat"] == 1.0
    assert before["call"]["calls_offered"] == 1 and before["call"]["nps"] == 100.0
    # the service KPIs read no credits: every model (markov too) gives the reference's rows
    for model in MODELS:
        assert_equal(settings, model=model)
    rows = assert_equal(settings)
    assert {r["channel"] for r in rows} == {"(none)", "call", "chat", "messenger"}
    assert all(r["handoff_wait_median_s"] is not None for r in rows if r["channel"] == "chat")


def test_rebuild_twice_writes_nothing(wh):
    settings, _ = wh
    client = client_of(settings)
    net = net_items(client)
    assert rebuild(client, settings, only=["service"]) == {"service": 0}
    assert net_items(client) == net


def test_rebuild_in_parts(wh):
    """A rebuild reads its ids a part at a time (a range of each kind's ids in order): from nothing,
    in parts of about two ids of each kind, it writes the items one statement wrote, and the queries
    equal the reference."""
    settings, _ = wh
    client = client_of(settings)
    net = net_items(client)
    for table in ("rollup_items_service", "rollup_service", "rollup_service_deals"):
        client.command(f"TRUNCATE TABLE {table}")
    for table in ("rollup_quantiles", "rollup_quantile_buckets"):
        client.command(f"ALTER TABLE {table} DELETE WHERE grouping = 'service'", settings={"mutations_sync": 2})
    calls = []
    written = rebuild(client, settings, only=["service"], chunk=2, progress=lambda *a: calls.append(a))
    assert written["service"] == len(net)
    assert len(calls) > 3 and calls[-1][1] == calls[-1][2] and [c[1] for c in calls] == sorted(c[1] for c in calls)
    assert net_items(client) == net
    check_all(settings)


def announced(client) -> dict[str, list[str]]:
    """What the rollup stage refreshes after LATE: the conversations and calls that got events
    (enrich), the surveys of those conversations and calls, and every conversation and call of
    the persons the late events changed (attribution: the restated deal, the merge)."""
    def ids(sql: str) -> list[str]:
        return sorted({i for (i,) in client.query(sql).result_rows})

    touched_conv = "('conv-late', 'conv-A')"
    touched_call = "('K-rs-1')"
    people = ("SELECT person_id FROM persons WHERE identity_key IN ("
              f"SELECT identity_key FROM conversation_facts WHERE conversation_id IN {touched_conv} "
              "UNION ALL SELECT identity_key FROM calls WHERE call_id IN ('K-rs-1'))")
    keys = f"SELECT identity_key FROM persons WHERE person_id IN ({people})"
    conversations = ids(f"SELECT conversation_id FROM conversation_facts WHERE conversation_id IN {touched_conv} "
                        f"OR identity_key IN ({keys})")
    calls = ids(f"SELECT call_id FROM calls WHERE call_id IN {touched_call} OR identity_key IN ({keys})")
    surveys = ids(f"SELECT event_id FROM surveys WHERE conversation_id IN {touched_conv} "
                  f"OR call_id IN {touched_call}")
    return {"conversation": conversations, "call": calls, "survey": surveys}


def test_restatements_and_replays(wh):
    """Runs last: it changes the module's warehouse."""
    settings, root = wh
    replay_lines(settings, root / "late.jsonl", LATE, with_sim=False)
    client = client_of(settings)
    ids = announced(client)
    assert "conv-E" in ids["conversation"] and len(ids["survey"]) == 2  # the merge reached E
    params = item_parameters(settings)
    check_all(settings)  # the pipeline's rollup stage refreshed what enrich and attribution announced
    for kind, keys in ids.items():  # so the ids it must announce leave nothing to write
        assert refresh(client, "service", kind, keys, params) == 0
    day = {"date_from": T.date(), "date_to": T.date() + timedelta(days=1)}
    rows = by_channel(assert_equal(settings, now=A_DEADLINE + timedelta(days=1), **day))
    assert "(none)" not in rows and rows["social"]["csat"] == 1.0  # the survey moved to its conversation
    assert rows["chat"]["missed_conversations"] == 0  # A was answered
    assert rows["call"]["abandoned_calls"] == 1 and rows["call"]["nps"] == 100.0
    # a replay of the refresh writes nothing and leaves the log's net as it was
    net = net_items(client)
    for kind, keys in ids.items():
        assert refresh(client, "service", kind, keys, params) == 0
    assert net_items(client) == net
    check_all(settings)
    assert_deals_backfill_equals_view(settings)


def assert_deals_backfill_equals_view(settings) -> None:
    """Migration 0040 copies the deals of the item rows stored before it (retracted ones included)
    into rollup_service_deals: run again (it truncates first, drops and makes its views again),
    it gives what the views wrote, and the queries still equal the reference. Needs LATE replayed
    (test_restatements_and_replays calls it: xdist may run a module's tests in two processes, each
    with its own warehouse, so a test of its own could not count on LATE)."""
    client = client_of(settings)
    rows = "SELECT channel, day, deadline, deal, revenue, sum(n) AS c FROM rollup_service_deals " \
           "GROUP BY channel, day, deadline, deal, revenue HAVING c != 0 ORDER BY ALL"
    by_view = client.query(rows).result_rows
    # deals of `other` contacts, and the pending deal of A (its deadline), taken out again when A
    # was answered (LATE): the item log holds its +1 and -1; their rows net to 0 (or were merged away)
    assert any(d == 2**63 - 1 for _, _, d, *_ in by_view) and all(c > 0 for *_, c in by_view)
    logged = ("SELECT sign FROM rollup_items_service WHERE entity = 'conversation:conv-A' "
              "AND deadline IS NOT NULL AND notEmpty(deals) ORDER BY sign")
    assert [s for (s,) in client.query(logged).result_rows] == [-1, 1]
    pending = "SELECT count(), sum(n) FROM rollup_service_deals WHERE deadline < 9223372036854775807"
    assert client.query(pending).result_rows[0] in ((0, 0), (2, 0))
    from leadflow.warehouse import list_migrations
    mig = next(m for m in list_migrations() if m.version == 40)
    for stmt in mig.statements():
        client.command(stmt)
    assert client.query(rows).result_rows == by_view
    assert client.query(pending).result_rows[0][1] == 0
    check_all(settings)


def test_an_erased_persons_deals_leave_no_row(wh):
    """`leadflow forget` takes the person's contacts out; rollup_service_deals (a SummingMergeTree)
    drops the rows that net to 0 when forget merges the rollups: their deal's hash is gone."""
    from services.erasure.forget import forget

    settings, _ = wh
    client = client_of(settings)
    rows = ("SELECT count() FROM rollup_service_deals "
            "WHERE deal = reinterpretAsUInt128(unhex(hex(sipHash128('D-rs-1'))))")
    assert client.query(rows).result_rows[0][0] > 0
    forget(client, settings, "phone", PHONE, wait_seconds=5)
    assert client.query(rows).result_rows[0][0] == 0
    check_all(settings)
