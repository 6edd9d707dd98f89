"""The extra queries of services/attribution/kpis/extra.py agree with the four
KPI groupings (compute_kpis) on a simulated business replayed through the pipeline."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from services.attribution.kpis import MODELS, compute_kpis  # noqa: E402
from services.attribution.kpis import extra  # noqa: E402
from tests.simdata import SIM_PERIOD, simulated_warehouse  # noqa: E402

PERIODS = [(None, None), SIM_PERIOD]


@pytest.fixture(scope="module")
def sim(broker, chdb_dir, tmp_path_factory):
    settings, client, *_ = simulated_warehouse(broker, chdb_dir, tmp_path_factory)
    return settings, client


def close(a, b, tol=1e-6):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


@pytest.mark.parametrize("period", PERIODS)
def test_missed_by_hour_sums_to_the_service_grouping(sim, period):
    settings, client = sim
    date_from, date_to = period
    rows = extra.missed_by_hour(client, settings, date_from=date_from, date_to=date_to)
    assert len(rows) == 168
    assert [(r["weekday"], r["hour"]) for r in rows] == [(d, h) for d in range(1, 8) for h in range(24)]
    service = compute_kpis(client, settings, "service", date_from=date_from, date_to=date_to)
    missed = sum(r["missed_conversations"] or 0 for r in service if r["channel"] != "call")
    calls = next(r for r in service if r["channel"] == "call")
    assert sum(r["missed_conversations"] for r in rows) == missed
    assert sum(r["missed_calls"] for r in rows) == calls["missed_calls"] + calls["abandoned_calls"]
    assert sum(r["missed"] for r in rows) == missed + calls["missed_calls"] + calls["abandoned_calls"]
    contacts = sum(r["conversations"] for r in service if r["channel"] != "(none)")
    assert sum(r["contacts"] for r in rows) == contacts
    assert sum(r["missed"] for r in rows) > 0
    for r in rows:
        assert r["miss_rate"] is None if r["contacts"] == 0 else close(r["miss_rate"], r["missed"] / r["contacts"])


def test_missed_by_hour_channel_filter(sim):
    settings, client = sim
    calls = extra.missed_by_hour(client, settings, channels=["call"])
    chats = extra.missed_by_hour(client, settings, channels=["chat", "messenger"])
    both = extra.missed_by_hour(client, settings)
    assert sum(r["missed_conversations"] for r in calls) == 0
    assert sum(r["missed_calls"] for r in chats) == 0
    assert [a["missed"] + b["missed"] for a, b in zip(calls, chats)] == [r["missed"] for r in both]


@pytest.mark.parametrize("period", PERIODS)
def test_frt_distribution_matches_sla_rate(sim, period):
    settings, client = sim
    date_from, date_to = period
    rows = extra.frt_distribution(client, settings, date_from=date_from, date_to=date_to)
    service = {r["channel"]: r for r in compute_kpis(client, settings, "service", date_from=date_from,
                                                       date_to=date_to)}
    channels = sorted({r["channel"] for r in rows})
    assert channels and "call" not in channels
    for ch in channels:
        buckets = [r for r in rows if r["channel"] == ch]
        assert [r["bucket"] for r in buckets] == list(range(1, 12))
        total = sum(r["conversations"] for r in buckets)
        ok = sum(r["conversations"] for r in buckets if r["within_sla"])
        want = service[ch]["sla_rate"]
        if settings.sla_for(ch) is None:
            assert want is None and not any(r["within_sla"] for r in buckets)
        else:
            assert close(ok / total, want), ch
            assert all(r["sla_s"] == settings.sla_for(ch) for r in buckets)


def test_frt_distribution_operator_filter(sim):
    settings, client = sim
    ops = compute_kpis(client, settings, "operators")
    op = max((o for o in ops if o["frt_median_s"] is not None), key=lambda o: o["conversations"])
    rows = extra.frt_distribution(client, settings, operators=[op["operator_id"]])
    replied = sum(r["conversations"] for r in rows if r["bucket_label"] != "no reply")
    no_reply = sum(r["conversations"] for r in rows if r["bucket_label"] == "no reply")
    assert replied > 0 and no_reply == 0
    everyone = extra.frt_distribution(client, settings)
    assert replied < sum(r["conversations"] for r in everyone if r["bucket_label"] != "no reply")


@pytest.mark.parametrize("period", PERIODS)
def test_attribution_models_match_the_channels_grouping(sim, period):
    settings, client = sim
    date_from, date_to = period
    rows = extra.attribution_models(client, settings, date_from=date_from, date_to=date_to)
    assert {r["model"] for r in rows} == set(MODELS)
    for model in MODELS:
        got = {r["channel"]: r for r in rows if r["model"] == model}
        for want in compute_kpis(client, settings, "channels", model=model, date_from=date_from, date_to=date_to):
            g = got.get(want["channel"], {"conversions": 0.0, "revenue": 0.0})
            assert close(g["conversions"], want["conversions"]), (model, want["channel"])
            assert close(g["revenue"], want["revenue"], 1e-9), (model, want["channel"])


@pytest.mark.parametrize("period", PERIODS)
def test_marketing_daily_sums_to_the_channels_grouping(sim, period):
    settings, client = sim
    date_from, date_to = period
    rows = extra.marketing_daily(client, settings, model="time_decay", date_from=date_from, date_to=date_to)
    assert rows
    for want in compute_kpis(client, settings, "channels", model="time_decay", date_from=date_from, date_to=date_to):
        mine = [r for r in rows if r["channel"] == want["channel"]]
        assert sum(r["leads"] for r in mine) == want["leads"], want["channel"]
        assert close(sum(r["spend"] for r in mine), want["spend"] or 0.0), want["channel"]
        assert close(sum(r["conversions"] for r in mine), want["conversions"]), want["channel"]
        assert close(sum(r["revenue"] for r in mine), want["revenue"], 1e-9), want["channel"]


def test_dead_letter_reasons_count_every_dead_letter(sim):
    settings, client = sim
    rows = extra.dead_letter_reasons(client, settings)
    total = client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
    assert total > 0 and sum(r["dead_letters"] for r in rows) == total
    assert all(r["example"] for r in rows)


def test_worst_hours_orders_by_missed():
    rows = [{"weekday": 1, "hour": h, "missed": m, "miss_rate": 0.1} for h, m in enumerate([0, 3, 5, 3])]
    assert [r["hour"] for r in extra.worst_hours(rows, 2)] == [2, 1]
    assert extra.worst_hours(rows[:1]) == []


def test_unknown_query_is_refused():
    with pytest.raises(ValueError):
        extra.load_extra_sql("nope")
