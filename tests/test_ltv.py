"""Predicted LTV (contract v1.1 section 2) through the real broker and chdb.

The CDNOW sample (tests/data/cdnow, 2,357 customers) becomes contract events and is
replayed through the pipeline; `leadflow kpis ltv --to 1997-10-01` must reproduce the
published BG/NBD fit (r 0.243, alpha 4.414, a 0.793, b 2.426) and Gamma-Gamma fit
(p 6.25, q 3.74, v 15.44) within 2%. Hand-worked summaries pin the definitions
(repeat days, same-day purchases, the calibration end) and the null rules.

The summaries run twice: rollups off (the purchase days from every deal and payment) and on,
where the rollup stage keeps them (migration 0042) and the customers read from them must equal
those read from the facts.
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from leadflow.cli import main
from services.attribution.kpis import compute_kpis
from services.attribution.kpis.ltv import customers as customers_of, predicted_ltv
from services.rollup.refresh import readable

CDNOW = Path(__file__).resolve().parent / "data" / "cdnow" / "CDNOW_sample.txt"
CHANNELS = ("search_ads", "social_ads", "email")


def customers(client, settings, **kw):
    """The customers as `kpis ltv` reads them; with rollups on, read from them and equal to those
    read from every deal and payment (the values summed in another order: to 1e-9)."""
    got = customers_of(client, settings, **kw)
    if settings.rollups:
        assert readable(client, settings, "ltv")
        want = customers_of(client, settings, source="facts", **kw)
        for key, column in want.items():
            if column.dtype == object:
                assert list(got[key]) == list(column), key
            else:
                assert got[key] == pytest.approx(column, rel=1e-9, abs=1e-9, nan_ok=True), key
    return got


# 8 customers' first purchase is 0.00, which a deal_won cannot carry (revenue > 0): it becomes 0.01,
# which no fit reads (Gamma-Gamma takes the repeat days only; BG/NBD no values).
FREE_FIRST = "0.01"


def cdnow_purchases() -> list[tuple[str, date, str]]:
    out, seen = [], set()
    for line in CDNOW.read_text().splitlines():
        cid, _, day, _, amount = line.split()
        if cid not in seen and float(amount) == 0:
            amount = FREE_FIRST
        seen.add(cid)
        out.append((cid, datetime.strptime(day, "%Y%m%d").date(), amount))
    return out


def cdnow_events() -> list[dict]:
    """Each customer: an ad click an hour before the first purchase (channel by id), the first
    purchase as a deal_won, every later one as a payment (same crm id)."""
    events, seen = [], set()
    for n, (cid, day, amount) in enumerate(cdnow_purchases()):
        who = {"crm_contact_id": f"cdnow-{cid}"}
        at = f"{day.isoformat()}T12:00:{n % 60:02d}Z"
        if cid not in seen:
            seen.add(cid)
            events.append({"event_id": f"click-{cid}", "type": "ad_click", "source": "cdnow",
                           "occurred_at": f"{day.isoformat()}T11:00:00Z", "identity": who,
                           "campaign_id": "cdnow", "channel": CHANNELS[int(cid) % 3]})
            events.append({"event_id": f"deal-{cid}", "type": "deal_won", "source": "cdnow", "occurred_at": at,
                           "identity": who, "deal_id": f"d-{cid}", "revenue": amount, "currency": "USD"})
        else:
            events.append({"event_id": f"pay-{n}", "type": "payment", "source": "cdnow", "occurred_at": at,
                           "identity": who, "payment_id": f"p-{n}", "amount": amount, "currency": "USD"})
    return events


def _cli(settings, monkeypatch, capsys, *args: str) -> str:
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    capsys.readouterr()
    assert main(["kpis", "ltv", *args, "--warehouse", str(settings.warehouse_dir)]) == 0
    return capsys.readouterr().out


def test_cdnow_reproduces_the_published_fit(replay_events, client, settings, monkeypatch, capsys):
    summary = replay_events(cdnow_events())
    assert summary.rejected == 0
    out = json.loads(_cli(settings, monkeypatch, capsys, "--to", "1997-10-01", "--format", "json"))
    model = out["model"]
    with capsys.disabled():
        print("\nCDNOW fit:", json.dumps(model))
    assert model["customers"] == 2357
    published = {"bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
                 "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44}}
    for part, params in published.items():
        for k, v in params.items():
            assert model[part][k] == pytest.approx(v, rel=0.02), f"{part}.{k}"

    # historic LTV: every purchase before 1997-10-01 per customer, by first-touch channel (from the file)
    value, first = defaultdict(float), {}
    for cid, day, amount in cdnow_purchases():
        if day < date(1997, 10, 1):
            value[cid] += float(amount)
    rows = {r["channel"]: r for r in out["rows"]}
    assert sorted(rows) == sorted(CHANNELS)
    for i, ch in enumerate(CHANNELS):
        mine = [v for cid, v in value.items() if int(cid) % 3 == i]
        assert rows[ch]["customers"] == len(mine)
        assert rows[ch]["historic_ltv"] == pytest.approx(sum(mine) / len(mine), abs=1e-6)
        assert rows[ch]["predicted_future_value"] > 0
        assert rows[ch]["predicted_ltv"] == pytest.approx(rows[ch]["historic_ltv"] + rows[ch]["predicted_future_value"])
        assert 0 < rows[ch]["p_alive"] < 1
    assert sum(r["customers"] for r in out["rows"]) == 2357

    # the table names the fitted parameters; csv has the keys
    table = _cli(settings, monkeypatch, capsys, "--to", "1997-10-01", "--horizon-days", "30")
    assert "BG/NBD r=0.24" in table and "next 30 days" in table
    csv = _cli(settings, monkeypatch, capsys, "--to", "1997-10-01", "--format", "csv").splitlines()
    assert csv[0] == "channel,customers,historic_ltv,predicted_future_value,predicted_ltv,p_alive"
    assert len(csv) == 4
    by_campaign = json.loads(_cli(settings, monkeypatch, capsys, "--to", "1997-10-01", "--by", "campaign",
                                  "--format", "json"))
    assert [(r["campaign_id"], r["customers"]) for r in by_campaign["rows"]] == [("cdnow", 2357)]
    assert by_campaign["model"]["customers"] == 2357
    for part in ("bgnbd", "gamma_gamma"):  # the same fit (the optimiser stops within 1e-5)
        assert by_campaign["model"][part] == {k: pytest.approx(v, rel=1e-4) for k, v in model[part].items()}


def ev(eid: str, type_: str, when: str, who: str, **fields) -> dict:
    return {"event_id": eid, "type": type_, "occurred_at": when, "source": "test",
            "identity": {"visitor_id": who}, **fields}


@pytest.mark.parametrize("rollups", [False, True], ids=["facts", "rollups"])
def test_summary_definitions_and_null_model(replay_events, client, settings, monkeypatch, capsys, rollups):
    replay_events([
        ev("c1", "ad_click", "2026-03-01T08:00:00Z", "v1", campaign_id="k", channel="email"),
        ev("d1", "deal_won", "2026-03-01T10:00:00Z", "v1", deal_id="D1", revenue="100", currency="USD"),
        ev("p0", "payment", "2026-03-01T18:00:00Z", "v1", payment_id="P0", amount="5", currency="USD"),  # day F
        ev("p1", "payment", "2026-03-08T09:00:00Z", "v1", payment_id="P1", amount="10", currency="USD"),
        ev("p2", "payment", "2026-03-08T23:00:00Z", "v1", payment_id="P2", amount="20", currency="USD"),  # same day
        ev("p3", "payment", "2026-03-15T09:00:00Z", "v1", payment_id="P3", amount="60", currency="USD"),
        ev("p4", "payment", "2026-03-29T09:00:00Z", "v1", payment_id="P4", amount="1000", currency="USD"),
        ev("d2", "deal_won", "2026-03-10T10:00:00Z", "v2", deal_id="D2", revenue="50", currency="USD"),
        ev("x", "ad_click", "2026-04-01T10:00:00Z", "v9", campaign_id="k", channel="email"),  # newest event
    ])
    if rollups:  # built from the facts as a rollup stage starting now would (test_rollup_stage.py: through it)
        from services.rollup.stage import ensure_current

        settings = settings.model_copy(update={"rollups": True})
        assert ensure_current(client, settings)
    c = customers(client, settings)
    # v1: days 03-01 (F), 03-08, 03-15, 03-29 -> x = 3, t_x = 28 days, T = 04-01 - 03-01 = 31 days
    got = sorted(zip(c["channel"], c["x"], c["t_x"] * 7, c["T"] * 7, c["m"], c["value"]))
    assert got[0][:4] == ("(none)", 0, 0, 22) and got[0][5] == 50
    assert got[1][:4] == ("email", 3, 28, 31)
    assert got[1][4] == pytest.approx((30 + 60 + 1000) / 3) and got[1][5] == 1195
    # --to 1997-style calibration: purchases before 03-20, L = 03-19
    c = customers(client, settings, date_to=date(2026, 3, 20))
    got = sorted(zip(c["channel"], c["x"], c["t_x"] * 7, c["T"] * 7, c["value"]))
    assert got == [("(none)", 0, 0, 9, 50), ("email", 2, 14, 18, 195)]
    # too few customers: no model, no prediction, historic figures stay
    out = predicted_ltv(client)
    assert out["model"] is None
    assert [(r["channel"], r["customers"], r["historic_ltv"], r["predicted_ltv"], r["p_alive"])
            for r in out["rows"]] == [("(none)", 1, 50.0, None, None), ("email", 1, 1195.0, None, None)]
    # historic LTV equals kpis.md's ltv (channels) without --to
    ltv = {r["channel"]: r["ltv"] for r in compute_kpis(client, settings, "channels") if r["ltv"] is not None}
    assert ltv == {r["channel"]: r["historic_ltv"] for r in out["rows"]}
    assert json.loads(_cli(settings, monkeypatch, capsys, "--format", "json"))["model"] is None
    # per first-touch campaign: v2 has no touch, so no campaign row
    out = json.loads(_cli(settings, monkeypatch, capsys, "--by", "campaign", "--format", "json"))
    assert out["rows"] == [{"campaign_id": "k", "customers": 1, "historic_ltv": 1195.0, "predicted_future_value": None,
                            "predicted_ltv": None, "p_alive": None}]


@pytest.mark.parametrize("args,fragment", [
    (["--horizon-days", "0"], "--horizon-days"),
    (["--from", "2026-01-01"], "--from does not apply"),
])
def test_bad_arguments_exit_2(settings, monkeypatch, capsys, args, fragment):
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    with pytest.raises(SystemExit) as exc:
        rc = main(["kpis", "ltv", *args, "--warehouse", str(settings.warehouse_dir)])
        raise SystemExit(rc)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_horizon_is_for_ltv_only(settings, monkeypatch, capsys):
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["kpis", "markov", "--horizon-days", "30", "--warehouse", str(settings.warehouse_dir)]))
    assert exc.value.code == 2
    assert "--horizon-days and --by apply to `kpis ltv` only" in capsys.readouterr().err
