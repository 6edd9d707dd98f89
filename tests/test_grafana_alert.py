"""The Grafana alert of deploy/grafana/alerting: its provisioning file, and its SQL run on the engine
(chdb) over replayed data: hand-made events with a known drop, and a simulated month checked against
an independent computation in Python."""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTING = ROOT / "deploy" / "grafana" / "alerting"
SQL = (ALERTING / "conversion_rate_drop.sql").read_text()
NOW = "toUnixTimestamp64Milli(now64(3, 'UTC')) AS anchor_ms"


def with_params(anchor: datetime | None = None, **constants: int) -> str:
    """The shipped SQL with its evaluation time pinned and WITH constants changed (each must exist once)."""
    sql = SQL
    if anchor is not None:
        assert sql.count(NOW) == 1
        sql = sql.replace(NOW, f"toUnixTimestamp64Milli(toDateTime64('{anchor:%Y-%m-%d %H:%M:%S}', 3, 'UTC')) "
                               f"AS anchor_ms")
    defaults = {"window_hours": 6, "min_expected_conversions": 10, "min_baseline_conversions": 10,
                "settle_hours": 1, "noise_sigmas": 3}
    for name, value in constants.items():
        old = f"    {defaults[name]} AS {name},"
        assert sql.count(old) == 1, name
        sql = sql.replace(old, f"    {value} AS {name},")
    return sql


def rule() -> dict:
    doc = yaml.safe_load((ALERTING / "leadflow-alerts.yaml").read_text())
    assert doc["apiVersion"] == 1
    (group,) = doc["groups"]
    (r,) = group["rules"]
    return r


def test_provisioning_file_runs_the_sql_file_and_fires_below_half():
    r = rule()
    queries = {d["refId"]: d for d in r["data"]}
    a, b = queries["A"], queries[r["condition"]]
    assert a["datasourceUid"] == "leadflow-clickhouse"
    assert a["model"]["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": "leadflow-clickhouse"}
    assert a["model"]["format"] == 1 and a["model"]["queryType"] == "table"  # a table: labelled numbers
    assert a["model"]["rawSql"] == SQL
    assert b["datasourceUid"] == "__expr__" and b["model"]["type"] == "threshold" and b["model"]["expression"] == "A"
    assert b["model"]["conditions"][0]["evaluator"] == {"type": "lt", "params": [0.5]}
    assert r["noDataState"] == "OK" and r["execErrState"] == "Error"
    assert r["labels"]["severity"] == "page"
    assert r["annotations"]["summary"] and r["annotations"]["description"]
    anchor = r["annotations"]["runbook_url"].split("#")[1]
    headings = [line[3:].strip() for line in (ROOT / "docs" / "runbook.md").read_text().splitlines()
                if line.startswith("## ")]
    assert anchor in {h.lower().replace(" ", "-").replace("(", "").replace(")", "") for h in headings}


def test_columns_on_the_engine(client):
    """As shipped (now() as evaluation time): runs and returns exactly the columns the alert reads."""
    described = client.query(f"DESCRIBE ({SQL})").result_rows
    assert [(name, kind) for name, kind, *_ in described] == [("channel", "String"), ("value", "Float64")]
    client.query(SQL)


ANCHOR = datetime(2026, 5, 29, 12, 0, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_drop_on_one_channel_from_replayed_events(client, replay_events):
    """search_ads converts 2 of 60 leads in the current window against 1 in 3 in the same window of each of
    the three previous weeks: value 0.1. social_ads converts as usual: 1.0. organic drops too, but only
    2 conversions were expected: no row. Events outside the windows (3 days ago, within the settle hour)
    change nothing."""
    events: list[dict] = []
    n = 0

    def person(channel: str, lead_at: datetime, deal_after: timedelta | None, deals: int = 1) -> None:
        nonlocal n
        n += 1
        email = f"g{n}@example.org"
        events.append({"event_id": f"g-ld-{n}", "type": "lead", "occurred_at": _iso(lead_at), "source": "site",
                       "identity": {"email": email}, "lead_id": f"GL-{n}", "channel": channel})
        for d in range(deals if deal_after is not None else 0):
            events.append({"event_id": f"g-dw-{n}-{d}", "type": "deal_won",
                           "occurred_at": _iso(lead_at + deal_after + timedelta(minutes=d)), "source": "crm",
                           "identity": {"email": email}, "deal_id": f"GD-{n}-{d}", "revenue": "50.00",
                           "currency": "USD"})

    end = ANCHOR - timedelta(hours=1)
    for week in range(4):
        start = end - timedelta(weeks=week, hours=6)
        for j in range(60):
            at = start + timedelta(minutes=10 + 3 * j)
            converts = j % 3 == 0 if week else j in (0, 3)
            person("search_ads", at, timedelta(hours=1) if converts else None)
            # the current week's first social_ads person wins two deals: one converted lead
            person("social_ads", at, timedelta(hours=1) if j % 3 == 0 else None, deals=2 if j == 0 else 1)
        for j in range(6):
            person("organic", start + timedelta(minutes=20 + 30 * j),
                   timedelta(minutes=30) if (week and j % 3 == 0) else None)
    for j in range(30):  # outside every window: converts, but is not counted
        person("search_ads", ANCHOR - timedelta(days=3, minutes=j), timedelta(minutes=5))
        person("social_ads", ANCHOR - timedelta(minutes=30 - j), None)  # the settle hour: not yet counted
    summary = replay_events(events)
    assert summary.rejected == 0, summary.first_rejections

    rows = client.query(with_params(ANCHOR)).result_rows
    assert [r[0] for r in rows] == ["search_ads", "social_ads"]
    values = dict(rows)
    assert values["search_ads"] == pytest.approx(0.1)
    assert values["social_ads"] == pytest.approx(1.0)
    # lower thresholds: organic appears; its shortfall (0 of 2) is within noise, so it is held at 0.5
    rows = dict(client.query(with_params(ANCHOR, min_expected_conversions=1,
                                         min_baseline_conversions=1)).result_rows)
    assert rows["organic"] == pytest.approx(0.5)
    # a window that has not started the drop yet (a week earlier): nothing is low
    earlier = dict(client.query(with_params(ANCHOR - timedelta(weeks=1))).result_rows)
    assert all(v >= 0.5 for v in earlier.values())


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def reference(client, anchor: datetime, window_h: int, settle_h: int, sigmas: float) -> dict[str, float]:
    """The same figures computed in Python from the facts (lead and deal winners, persons)."""
    person_of = dict(client.query("SELECT identity_key, person_id FROM persons").result_rows)
    won = defaultdict(list)
    for key, at in client.query("SELECT identity_key, won_at FROM deal_winners").result_rows:
        won[person_of.get(key) or "?" + key].append(_utc(at))
    end = anchor - timedelta(hours=settle_h)
    windows = [(end - timedelta(weeks=k, hours=window_h), end - timedelta(weeks=k)) for k in range(4)]

    def week_of(t: datetime) -> int | None:
        return next((k for k, (a, b) in enumerate(windows) if a <= t < b), None)

    counts = defaultdict(lambda: [0, 0, 0, 0])  # leads now, converted now, leads before, converted before
    for key, at, channel in client.query("SELECT identity_key, lead_at, channel FROM lead_winners").result_rows:
        at = _utc(at)
        wins = [w for w in won[person_of.get(key) or "?" + key] if at <= w <= at + timedelta(days=90)]
        for t, slot in ((at, 0), (min(wins) if wins else None, 1)):
            k = week_of(t) if t is not None else None
            if k is not None:
                counts[channel][slot + (0 if k == 0 else 2)] += 1
    out = {}
    for channel, (ln, cn, lb, cb) in counts.items():
        expected = ln * cb / lb if lb else 0.0
        if ln and expected > 0:
            ratio = cn / expected
            out[channel] = ratio if expected - cn > sigmas * math.sqrt(expected) else max(ratio, 0.5)
    return out


def test_simulated_weeks_match_a_python_computation(settings, client, tmp_path):
    """A replayed simulation (3 weeks and a day): the SQL's per-channel figures, with the volume thresholds
    off and a one-day window, equal an independent computation over the same facts."""
    import asyncio

    from leadflow.simulator import SimulationConfig, write_jsonl
    from leadflow.replay import replay

    cfg = SimulationConfig(days=22, seed=11, visitors_per_day=400)
    path = tmp_path / "sim.jsonl"
    write_jsonl(cfg, path)
    asyncio.run(replay(settings, [path], show_progress=False))
    anchor = datetime(2026, 5, 22, 18, 0, tzinfo=timezone.utc)
    for window, sigmas in ((24, 3), (48, 0)):  # sigmas 0: the plain ratio, no noise floor
        sql = with_params(anchor, window_hours=window, min_expected_conversions=0, min_baseline_conversions=0,
                          noise_sigmas=sigmas)
        got = dict(client.query(sql).result_rows)
        want = reference(client, anchor, window, 1, sigmas)
        assert len(want) >= 3, want  # the data set does exercise the query
        assert got.keys() == want.keys()
        for channel, value in want.items():
            assert got[channel] == pytest.approx(value), (window, channel)
    # with the shipped thresholds this small business has too little volume per window to alert
    assert client.query(with_params(anchor)).result_rows == []
