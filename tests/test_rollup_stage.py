"""The rollup stage (issue 18, services/rollup/): the rollups the pipeline keeps give the
same KPIs as the reference SQL over every fact, and a retried batch is a replay.

The simulated fortnight (tests/simdata.py) is replayed once through the whole pipeline,
rollup stage included; every grouping's KPIs are then read both ways and compared cell
by cell (floats to 1e-9: a sum of the same numbers in another order).
"""
from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from services.attribution.kpis.query import GROUPINGS, OUTPUT_KEYS, compute_kpis
from services.attribution.kpis.ltv import customers
from services.attribution.markov import chain
from services.attribution.models import MODELS
from services.rollup import refresh as rollups
from services.rollup.dirty import PENDING_SQL, QUEUE_COLUMNS, Dirty
from services.rollup.stage import RollupStage, catch_up, ensure_current
from tests.faults_inject import Fault, InjectedFault, inject
from tests.simdata import SIM_PERIOD, SIM_START, simulated_warehouse

PERIODS = [(None, None), SIM_PERIOD, (SIM_START + timedelta(days=3), SIM_START + timedelta(days=4)),
           (date(2031, 1, 1), date(2031, 2, 1))]


@pytest.fixture(scope="module")
def sim(broker, chdb_dir, tmp_path_factory):
    settings, client, *_ = simulated_warehouse(broker, chdb_dir, tmp_path_factory)
    return settings, client


def same(got, want) -> bool:
    if got is None or want is None or isinstance(want, str):
        return got == want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)


def differences(client, settings, groupings=GROUPINGS) -> list[str]:
    bad = []
    for grouping in groupings:
        models = MODELS if grouping in ("channels", "campaigns") else MODELS[:1]  # markov included
        for model in models:
            for date_from, date_to in PERIODS:
                kw = dict(model=model, date_from=date_from, date_to=date_to)
                want = compute_kpis(client, settings, grouping, source="facts", **kw)
                got = compute_kpis(client, settings, grouping, source="rollups", **kw)
                where = f"{grouping}/{model}/{date_from}..{date_to}"
                key = OUTPUT_KEYS[grouping][0]
                if [r[key] for r in got] != [r[key] for r in want]:
                    bad.append(f"{where}: rows {[r[key] for r in got]} != {[r[key] for r in want]}")
                    continue
                bad += [f"{where}[{w[key]}].{k}: rollups {g[k]!r} != facts {w[k]!r}"
                        for g, w in zip(got, want) for k in w if not same(g[k], w[k])]
    return bad


def test_every_grouping_has_rollups():
    assert set(rollups.groupings()) >= set(GROUPINGS)


def test_the_pipeline_keeps_the_rollups_equal_to_the_facts(sim):
    settings, client = sim
    for grouping in GROUPINGS:
        assert rollups.readable(client, settings, grouping, "linear")
    assert rollups.readable(client, settings, "channels", "markov")  # its credits summed when asked
    assert rollups.readable(client, settings, "markov")  # the chain's transition counts (migration 0041)
    assert chain(client, settings) == chain(client, settings, source="facts")
    assert rollups.readable(client, settings, "ltv")  # predicted LTV's purchase days (migration 0042)
    got, want = customers(client, settings), customers(client, settings, source="facts")
    assert len(want["x"]) >= 20 and list(got["channel"]) == list(want["channel"])
    for key in ("x", "t_x", "T", "m", "value"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9, nan_ok=True), key
    pending = client.query("SELECT count() FROM (SELECT entity FROM rollup_queue GROUP BY entity "
                           "HAVING argMax(done, version) = 0)").result_rows[0][0]
    assert pending == 0
    assert differences(client, settings) == []


def _some_entities(client) -> Dirty:
    dirty = Dirty()
    for kind, sql in (("conversation", "SELECT conversation_id FROM conversation_facts ORDER BY conversation_id LIMIT 40"),
                      ("call", "SELECT call_id FROM calls ORDER BY call_id LIMIT 20"),
                      ("deal", "SELECT deal_id FROM deals ORDER BY deal_id LIMIT 20"),
                      ("lead", "SELECT lead_id FROM leads ORDER BY lead_id LIMIT 20"),
                      ("person", "SELECT person_id FROM person_profiles ORDER BY person_id LIMIT 20"),
                      ("survey", "SELECT event_id FROM surveys ORDER BY event_id LIMIT 20"),
                      ("spend", "SELECT concat(campaign_id, '\t', toString(date)) FROM ad_spend ORDER BY 1 LIMIT 10")):
        dirty.add(kind, [i for (i,) in client.query(sql).result_rows])
    return dirty


def _log_rows(client) -> int:
    return sum(client.query(f"SELECT count() FROM rollup_items_{g}").result_rows[0][0]
               for g in rollups.item_groupings())


def _take_items_out(client, grouping: str, entities: list[str]) -> None:
    """An item log that disagrees with the facts (a lost write): these entities' items retracted."""
    table = f"rollup_items_{grouping}"
    cols = ", ".join(f"`{c}`" for c in rollups.item_columns(client, grouping))
    client.command(f"INSERT INTO {table} (entity, sign, {cols}) SELECT entity, -toInt8(n), {cols} FROM "
                   f"(SELECT entity, {cols}, sum(sign) AS n FROM {table} WHERE entity IN {tuple(entities)!r} "
                   f"GROUP BY entity, {cols} HAVING n != 0)")


def test_a_batch_handled_again_writes_nothing_and_a_failed_one_is_finished_by_its_retry(sim):
    settings, client = sim
    stage = RollupStage(client, _Topics(), settings)
    dirty = _some_entities(client)
    before = _log_rows(client)
    assert stage.apply(dirty) == 0  # the items are current: handling the batch again changes nothing
    assert _log_rows(client) == before

    # an item log that disagrees with the facts (a lost write): two entities' items taken out
    grouping = "service" if rollups.item_sql("service", "conversation") else rollups.groupings()[0]
    _take_items_out(client, grouping, sorted(f"conversation:{c}" for c in dirty.ids["conversation"])[:2])
    assert differences(client, settings, ("service",) if grouping == "service" else GROUPINGS) != []

    # the batch fails half-way (the second grouping's insert), then its retry runs from the start
    groupings = list(rollups.item_groupings())
    with inject(Fault(f"rollup_items_{groupings[-1]}")) as faults:
        with pytest.raises(Exception) as failed:
            stage.process(_records(dirty))
    assert faults.log and isinstance(failed.value.__cause__ or failed.value, (InjectedFault, Exception))
    stage.process(_records(dirty))
    assert differences(client, settings) == []
    assert stage.apply(dirty) == 0


def test_catch_up_refreshes_what_is_pending_a_part_at_a_time(sim):
    """catch_up reads the pending entities a part at a time (their hash), not all at once: with
    parts of about five entities it refreshes every one, once, and leaves nothing pending."""
    settings, client = sim
    dirty = _some_entities(client)
    _take_items_out(client, "service", sorted(f"conversation:{c}" for c in dirty.ids["conversation"])[-3:])
    assert differences(client, settings, ("service",)) != []
    version = client.query("SELECT max(version) + 1 FROM rollup_queue").result_rows[0][0]
    client.insert("rollup_queue", dirty.queue_rows(version, 0), column_names=QUEUE_COLUMNS)
    entities = len(dirty.entities())
    calls = []
    assert catch_up(client, settings, chunk=5, progress=lambda *a: calls.append(a)) == entities
    assert len(calls) == -(-entities // 5) and calls[-1] == (entities, entities)
    assert client.query(f"SELECT count() FROM ({PENDING_SQL})").result_rows[0][0] == 0
    assert differences(client, settings) == []


def test_other_settings_read_the_facts_until_the_items_are_rebuilt(sim):
    settings, client = sim
    other = settings.model_copy(update={"missed_after_hours": settings.missed_after_hours + 1})
    assert not rollups.readable(client, other, "service", "linear")
    rows = compute_kpis(client, other, "service")  # auto: the facts
    assert rows == compute_kpis(client, other, "service", source="facts")
    assert ensure_current(client, settings) is False  # the stored items are this settings' own


def test_a_run_with_rollups_off_leaves_them_to_be_rebuilt(settings, client, tmp_path):
    """Facts written while the rollups are off (no stage refreshes the items) make the stored items
    stale: enrich forgets their fingerprint when it starts, so reads go to the facts and the next
    run with rollups on rebuilds them first."""
    import asyncio
    import json

    from leadflow.replay import replay

    on = settings.model_copy(update={"rollups": True})
    off = settings.model_copy(update={"rollups": False})

    def run(cfg, name: str, who: str, day: str) -> None:
        path = tmp_path / f"{name}.jsonl"
        events = [{"event_id": f"{who}-c", "type": "ad_click", "occurred_at": f"{day}T10:00:00Z", "source": "t",
                   "identity": {"visitor_id": who}, "campaign_id": "camp-1", "channel": "search_ads"},
                  {"event_id": f"{who}-d", "type": "deal_won", "occurred_at": f"{day}T12:00:00Z", "source": "t",
                   "identity": {"visitor_id": who}, "deal_id": f"deal-{who}", "revenue": "50.00", "currency": "USD"}]
        path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
        assert asyncio.run(replay(cfg, [path], show_progress=False)).rejected == 0

    run(on, "first", "p1", "2026-05-04")
    assert rollups.current(client, on) and differences(client, on, ("channels",)) == []
    run(off, "second", "p2", "2026-05-05")
    assert not rollups.current(client, on) and not rollups.readable(client, on, "channels")
    assert differences(client, on, ("channels",)) != []  # the items missed p2's deal
    facts = compute_kpis(client, on, "channels", source="facts")
    assert compute_kpis(client, on, "channels") == facts and facts[0]["conversions"] == 2.0
    assert ensure_current(client, on) is True
    assert differences(client, on, ("channels",)) == [] and rollups.readable(client, on, "channels")


class _Topics:
    def group(self, name):
        return f"test-{name}"

    rollup_dirty = "test.rollup.dirty"


class _Record:
    def __init__(self, value: bytes):
        self.value = value


def _records(dirty: Dirty) -> list:
    return [_Record(value) for _, value in dirty.messages()]



def test_rollups_status_and_rebuild_commands(sim, monkeypatch, capsys):
    from leadflow.cli import main

    settings, client = sim
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    monkeypatch.setenv("LEADFLOW_ROLLUPS", "true")
    args = ["--warehouse", str(settings.warehouse_dir)]
    assert main(["rollups", "status", "--format", "json", *args]) == 0
    import json

    status = json.loads(capsys.readouterr().out)
    assert status["current"] is True and status["pending_entities"] == 0
    rows = status["groupings"]["service"]["rollup_service"]
    assert rows == client.query("SELECT count() FROM rollup_service").result_rows[0][0] > 0
    assert main(["rollups", "rebuild", *args]) == 0
    out = capsys.readouterr().out
    assert "channels 0 rows written" in out and "service 0 rows written" in out  # the stage kept them current
    assert main(["kpis", "channels", "--source", "rollups", "--model", "markov", "--format", "json", *args]) == 0
    got = json.loads(capsys.readouterr().out)
    assert main(["kpis", "channels", "--source", "facts", "--model", "markov", "--format", "json", *args]) == 0
    want = json.loads(capsys.readouterr().out)
    assert got and [r["channel"] for r in got] == [r["channel"] for r in want]
    assert all(same(g["conversions"], w["conversions"]) for g, w in zip(got, want))


def test_the_bench_reads_both_paths_and_the_rollups_stretched_to_three_years(sim):
    from leadflow.bench.queries import measure_queries, render_queries

    settings, client = sim
    q = measure_queries(settings, repeats=1)
    assert q["rollups_rebuilt_s"] is None  # current already
    assert q["stretched"]["days"] > 900  # the fortnight's days spread over three years
    for grouping in GROUPINGS:
        assert {"rollups_all_ms", "rollups_month_ms", "facts_all_ms", "facts_month_ms"} <= set(q[grouping])
        assert q["stretched"][f"{grouping}_ms"] > 0
    assert "stretched to three years" in "\n".join(render_queries(q, 200))
    # the scratch copy is gone
    assert not client.query("SELECT count() FROM system.databases WHERE name LIKE '%_stretched'").result_rows[0][0]


def test_the_stretched_rollups_are_read_through_their_own_views(sim, monkeypatch):
    """The stretched copy's model views read the stretched tables: each day's rows repeated k
    times give k times the leads."""
    from leadflow.bench import queries

    settings, client = sim
    seen = {}
    real = queries.compute_kpis

    def spy(c, s, grouping, **kw):
        rows = real(c, s, grouping, **kw)
        seen.setdefault(grouping, rows)
        return rows

    monkeypatch.setattr(queries, "compute_kpis", spy)
    out = queries.stretched_rollups(client, settings, 1, "linear")
    span = client.query("SELECT dateDiff('day', min(occurred_at), max(occurred_at)) + 1 FROM raw_events").result_rows[0][0]
    k = -(-queries.STRETCH_DAYS // span)
    plain = {r["channel"]: r["leads"] for r in real(client, settings, "channels", source="rollups")}
    assert {r["channel"]: r["leads"] for r in seen["channels"]} == {c: n * k for c, n in plain.items()}
    assert out["days"] >= queries.STRETCH_DAYS


def test_a_bulk_replay_catches_the_rollups_up_at_the_end_through_a_fault(broker, chdb_dir, tmp_path_factory,
                                                                        settings, client):
    """A big replay (the child-process path) runs without the rollup stage and refreshes what it
    changed once at the end (services/rollup/stage.py catch_up); a transient fault in that
    refresh is retried. The result: every cell as the facts say, nothing pending."""
    import asyncio

    from leadflow.replay import replay

    path = simulated_warehouse(broker, chdb_dir, tmp_path_factory)[2]
    bulk = settings.model_copy(update={"rollups": True, "stage_backoff_initial_seconds": 0.02})
    with inject(Fault("rollup_items_service", stage="rollup")) as armed:
        asyncio.run(replay(bulk, [path], show_progress=False, child_process_min_bytes=0))
    assert armed.unfired() == []
    assert client.query("SELECT count() FROM rollup_queue").result_rows[0][0] > 0  # what enrich and attribution recorded
    pending = client.query(f"SELECT count() FROM ({PENDING_SQL})").result_rows[0][0]
    assert pending == 0
    assert rollups.readable(client, bulk, "channels", "linear")
    assert differences(client, bulk) == []
