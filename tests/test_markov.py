"""The `markov` model (contract v1.1 section 1) through the real broker and chdb:
the contract's worked example, a late touch and a late merge that change the
transition counts, the (none) conversion, the window of non-converting paths,
`leadflow kpis markov` and `--model markov`.

Every test runs twice: rollups off (the chain over every journey) and on, where the rollup
stage keeps the transition counts (migration 0041) and the chain read from them must equal,
float for float, the chain over every journey at each step."""
from __future__ import annotations

import json

import pytest

from leadflow import cli
from services.attribution.kpis import compute_kpis
from services.attribution.markov import chain as chain_view_of
from services.rollup.refresh import readable


@pytest.fixture(params=["facts", "rollups"])
def settings(settings, request):
    return settings.model_copy(update={"rollups": request.param == "rollups"})


def chain(client, settings=None):
    """The chain as `leadflow kpis markov` reads it; with rollups on, read from them and equal to
    the chain over every journey."""
    got = chain_view_of(client, settings)
    if settings is not None and settings.rollups:
        assert readable(client, settings, "markov")
        assert got == chain_view_of(client, settings, source="facts")
    return got


def ev(eid: str, type_: str, when: str, **fields) -> dict:
    return {"event_id": eid, "type": type_, "occurred_at": when, "source": "test", **fields}


def click(eid: str, who: str, when: str, channel: str, campaign: str = "") -> dict:
    return ev(eid, "ad_click", when, identity={"visitor_id": who}, campaign_id=campaign or f"camp-{channel}",
              channel=channel)


def won(eid: str, who: str, when: str, revenue: str = "100.00") -> dict:
    return ev(eid, "deal_won", when, identity={"visitor_id": who}, deal_id=f"deal-{eid}", revenue=revenue,
              currency="USD")


# The contract's example, one person per path, with the channels named A, B, C:
# A > B > conv, A > null, B > conv, A > A > C > conv, C > null.
A, B, C = "search_ads", "social_ads", "email"
WORKED = [
    click("p1a", "p1", "2026-05-01T10:00:00Z", A), click("p1b", "p1", "2026-05-02T10:00:00Z", B),
    won("p1w", "p1", "2026-05-03T10:00:00Z"),
    click("p2a", "p2", "2026-05-01T11:00:00Z", A),
    click("p3b", "p3", "2026-05-02T11:00:00Z", B), won("p3w", "p3", "2026-05-04T11:00:00Z"),
    click("p4a", "p4", "2026-05-01T12:00:00Z", A, "camp-a1"), click("p4a2", "p4", "2026-05-02T12:00:00Z", A, "camp-a2"),
    click("p4c", "p4", "2026-05-03T12:00:00Z", C), won("p4w", "p4", "2026-05-05T12:00:00Z"),
    click("p5c", "p5", "2026-05-06T12:00:00Z", C),
]

RE = {A: 0.5, B: 2 / 3, C: 1 / 3}
CREDITED = {A: 1.028571, B: 1.571429, C: 0.4}


def by_channel(rows, key="conversions"):
    return {r["channel"]: round(r[key], 6) for r in rows if r[key]}


def test_worked_example(replay_events, client, settings, capsys):
    replay_events(WORKED)
    got = chain(client, settings)
    assert got["paths"] == 5
    assert got["p_conversion"] == pytest.approx(0.6, abs=1e-12)
    assert got["removal_effects"] == {k: pytest.approx(v, abs=1e-12) for k, v in RE.items()}

    rows = compute_kpis(client, settings, "channels", model="markov")
    assert by_channel(rows) == CREDITED
    # exactly: A 0.5 + 0 + 0.6 * ... = 36/35, B 0.4/(0.5+2/3)... = 11/7, C 2/5; revenue 100 each
    exact = {A: 36 / 35, B: 11 / 7, C: 2 / 5}
    assert {k: round(v, 6) for k, v in exact.items()} == CREDITED
    assert {r["channel"]: r["revenue"] for r in rows if r["revenue"]} == {
        k: pytest.approx(100 * v, abs=1e-9) for k, v in exact.items()}
    # A's share of p4's conversion (1/3 * ... of RE(A) / (RE(A) + RE(C)) = 0.6) is split over its two touches
    campaigns = {r["campaign_id"]: round(r["conversions"], 6)
                 for r in compute_kpis(client, settings, "campaigns", model="markov") if r["conversions"]}
    assert campaigns == {"camp-a1": 0.3, "camp-a2": 0.3, f"camp-{A}": round(1.028571 - 0.6, 6),
                         f"camp-{B}": 1.571429, f"camp-{C}": 0.4}

    assert cli.main(["kpis", "markov", "--format", "json", "--warehouse", str(settings.warehouse_dir),
                     "--config", _config(settings, capsys)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["paths"] == 5 and printed["p_conversion"] == pytest.approx(0.6)
    assert printed["removal_effects"] == {k: pytest.approx(v) for k, v in RE.items()}
    cfg = ["--warehouse", str(settings.warehouse_dir), "--config", _config(settings, capsys)]
    assert cli.main(["kpis", "markov", "--format", "csv", *cfg]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "channel,removal_effect" and [ln.split(",")[0] for ln in lines[1:]] == [C, A, B]
    assert {ln.split(",")[0]: float(ln.split(",")[1]) for ln in lines[1:]} == {
        k: pytest.approx(v, abs=1e-12) for k, v in RE.items()}
    assert cli.main(["kpis", "markov", *cfg]) == 0
    table = capsys.readouterr().out
    assert "5 paths, P(conversion) = 0.6" in table and "66.7%" in table and "33.3%" in table
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(["kpis", "markov", "--to", "2026-05-01", *cfg]))
    assert exc.value.code == 2 and "journeys are taken over all time" in capsys.readouterr().err


def _config(settings, capsys) -> str:
    """A TOML file pointing the CLI at this test's database."""
    from pathlib import Path

    path = Path(settings.warehouse_dir) / f"{settings.clickhouse_database}.toml"
    path.write_text(f'clickhouse_database = "{settings.clickhouse_database}"\n')
    capsys.readouterr()
    return str(path)


def test_late_touch_and_merge_change_the_chain(replay_events, client, settings):
    replay_events(WORKED)
    # a late touch: p2 (A > null) had a C click before its A click -> C > A > null
    replay_events([click("p2c", "p2", "2026-04-30T11:00:00Z", C)])
    got = chain(client, settings)
    assert got["paths"] == 5
    # transitions now: start->A 2 (p1, p4), start->B 1, start->C 2 (p2, p5); A->B 1, A->C 1, A->null 1;
    # B->conv 2; C->A 1, C->conv 1, C->null 1. Absorption: x_A = 1/3 + 1/3 x_C, x_C = 1/3 + 1/3 x_A,
    # so x_A = x_C = 1/2 and P = 2/5 x_A + 1/5 + 2/5 x_C = 3/5.
    p = 2 / 5 * 0.5 + 1 / 5 + 2 / 5 * 0.5
    assert got["p_conversion"] == pytest.approx(p, abs=1e-12)
    # without A: x_C = 1/3; P_A = 1/5 + 2/5 * 1/3
    assert got["removal_effects"][A] == pytest.approx(1 - (1 / 5 + 2 / 15) / p, abs=1e-12)

    # a late merge: p5 (C > null) turns out to be p3 (B > conv); p5's click and the leads come after p3's
    # deal, so the merged person converts with path B and p5's non-converting journey is gone.
    replay_events([ev("m1", "lead", "2026-05-07T09:00:00Z", identity={"visitor_id": "p5", "email": "x@y.z"},
                      lead_id="L1", channel=C),
                   ev("m2", "lead", "2026-05-07T09:30:00Z", identity={"visitor_id": "p3", "email": "x@y.z"},
                      lead_id="L2", channel=C)])
    got = chain(client, settings)
    assert got["paths"] == 4  # p1, p2, p3 (converting: B), p4
    assert sum(r["conversions"] for r in compute_kpis(client, settings, "channels", model="markov")) == \
        pytest.approx(3.0)


def test_no_touch_conversion_and_window(replay_events, client, settings):
    replay_events([
        won("w0", "nobody", "2026-05-01T10:00:00Z"),  # no eligible touch: (none), not a path
        click("a1", "old", "2026-01-01T10:00:00Z", A),  # out of the 90-day window ending at "now"
        click("b1", "fresh", "2026-05-01T09:00:00Z", B), won("w1", "fresh", "2026-05-02T10:00:00Z"),
        click("c1", "late", "2026-05-09T09:00:00Z", C),
    ])
    got = chain(client, settings)
    assert got["paths"] == 2  # fresh: B > conv; late: C > null (old's click left the window)
    assert got["p_conversion"] == pytest.approx(0.5)
    assert got["removal_effects"] == {B: pytest.approx(1.0), C: pytest.approx(0.0)}
    rows = compute_kpis(client, settings, "channels", model="markov")
    assert by_channel(rows) == {"(none)": 1.0, B: 1.0}


def test_simulated_markov_matches_the_reference(client, settings, tmp_path):
    """A simulated business end to end: the chain and every markov cell of channels and
    campaigns equal the independent reference (tests/reference/kpis.py, exact fractions)."""
    from datetime import date

    from leadflow.simulator import SimulationConfig, write_jsonl
    from tests.reference.kpis import markov_chain
    from tests.test_kpi_sql import _replay, compare_all, read_jsonl

    path = tmp_path / "sim-5d-seed3.jsonl"
    write_jsonl(SimulationConfig(days=5, seed=3), path)
    _replay(settings, path)
    events = read_jsonl(path)
    want = markov_chain(events)
    got = chain(client, settings)
    assert got["paths"] == want["paths"] > 100
    assert got["p_conversion"] == pytest.approx(want["p_conversion"], abs=1e-12)
    assert got["removal_effects"] == {k: pytest.approx(v, abs=1e-12) for k, v in want["removal_effects"].items()}
    cells, bad = compare_all(client, settings, events, [(None, None), (date(2026, 5, 2), date(2026, 5, 4))],
                             models=("markov",), kpis=compute_kpis)
    assert cells > 100
    assert not bad, "\n".join(bad[:40])


def spend(eid: str, when: str) -> dict:
    """An event that moves "now" (the newest occurred_at) and touches nobody's journey."""
    return ev(eid, "ad_spend", when, campaign_id="camp-now", channel=A, date=when[:10], cost="1.00", currency="USD")


def test_the_window_of_a_journey_moves_with_now(replay_events, client, settings):
    """A journey of several touches loses them one by one as "now" passes each touch + the
    90-day lookback (a touch counts while now <= its time + 90 days): the path is the suffix still
    in the window, repeats collapsed. With rollups on, each step reads the transition counts'
    points (migration 0041) at the new now, nothing is recomputed, and equals the chain over
    every journey."""
    replay_events([
        click("w1", "w", "2026-02-01T10:00:00Z", A), click("w2", "w", "2026-04-01T10:00:00Z", B),
        click("w3", "w", "2026-04-01T12:00:00Z", B), click("w4", "w", "2026-04-02T10:00:00Z", C),
        click("k1", "k", "2026-04-20T10:00:00Z", C), won("k2", "k", "2026-04-21T10:00:00Z"),
    ])
    # k: C > conv; w: A > B > C > null. From C: conv 1/2, null 1/2; P = 1/2 (A and C each lead to C).
    steps = [
        (None, {A, B, C}, 2),
        ("2026-05-02T10:00:00Z", {A, B, C}, 2),  # A at Feb 1 10:00 + 90 days: still in (now <= t + 90 d)
        ("2026-05-02T10:00:00.001Z", {B, C}, 2),  # A left: B > C > null
        ("2026-06-30T10:00:00Z", {B, C}, 2),  # the first B is the path's start until now passes it
        ("2026-06-30T11:00:00Z", {B, C}, 2),  # the second B starts it
        ("2026-06-30T13:00:00Z", {C}, 2),  # both B left: C > null
        ("2026-07-01T10:00:00.001Z", {C}, 1),  # C left too: w has no path; k's remains
    ]
    for n, (when, channels, paths) in enumerate(steps):
        if when is not None:
            replay_events([spend(f"now-{n}", when)])
        got = chain(client, settings)
        assert (set(got["removal_effects"]), got["paths"]) == (channels, paths), when
        assert got["p_conversion"] == pytest.approx(0.5 if paths == 2 else 1.0, abs=1e-12), when
        if A in channels:  # removing A sends w's (start) -> A to (null): P_A = 1/4, RE(A) = 1/2
            assert got["removal_effects"][A] == pytest.approx(0.5, abs=1e-12)
    replay_events([spend("now-back", "2026-04-02T10:00:00Z")])  # an older event: now does not move back
    assert chain(client, settings)["paths"] == 1
