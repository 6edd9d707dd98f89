"""Tests of the independent reference implementation (tests/reference/kpis.py).

1. It reproduces examples.expected.json (worked out by the contract authors)
   for every grouping and every attribution model.
2. Hand-worked micro-scenarios pin the tricky readings of kpis.md
   (documented in docs/kpi-readings.md).
"""

from __future__ import annotations

import json
import math
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`)
    sys.path.insert(0, str(_REPO))

from tests.reference.kpis import (  # noqa: E402
    MODELS,
    OUTPUT_KEYS,
    ReferenceConfig,
    compute_kpis,
    normalize_phone,
    percentile,
    validate_event,
)

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "contract"  # the contract, kept in the repo

MONEY_KEYS = {"spend", "cpl", "revenue", "cpa", "ltv", "lost_revenue"}


def _close(key: str, got, want) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, str):
        return got == want
    if key in MONEY_KEYS:
        return abs(got - want) <= 0.005 + 1e-9  # to the cent
    # expected.json is rounded to 6 decimals: allow 1e-6 relative or half a unit
    # of the 6th decimal
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=5e-7)


def _assert_row(row: dict, want: dict, where: str) -> None:
    for k, v in want.items():
        assert k in row, f"{where}: missing key {k}"
        assert _close(k, row[k], v), f"{where}.{k}: got {row[k]!r}, want {v!r}"


def _by(rows: list[dict], key: str) -> dict[str, dict]:
    return {r[key]: r for r in rows}


# ---------------------------------------------------------------------------
# examples.jsonl vs examples.expected.json
# ---------------------------------------------------------------------------

def _examples() -> list[dict]:
    return [json.loads(line) for line in (CONTRACT / "examples.jsonl").read_text().splitlines() if line.strip()]


def _expected() -> dict:
    return json.loads((CONTRACT / "examples.expected.json").read_text())


GROUP_KEY = {"channels": "channel", "campaigns": "campaign_id", "operators": "operator_id", "service": "channel"}


def test_examples_are_all_valid():
    evs = _examples()
    assert len(evs) == 16
    for ev in evs:
        assert validate_event(ev) == [], ev["event_id"]


@pytest.mark.parametrize("grouping", ["channels", "campaigns"])
@pytest.mark.parametrize("model", MODELS)
def test_examples_marketing(grouping, model):
    want_rows = _expected()[grouping]
    rows = compute_kpis(_examples(), grouping, model)
    got = _by(rows, GROUP_KEY[grouping])
    assert sorted(got) == sorted(want_rows)
    for gkey, want in want_rows.items():
        flat = {k: v for k, v in want.items() if k not in MODELS}
        flat.update(want[model])
        _assert_row(got[gkey], flat, f"{grouping}[{gkey}][{model}]")


@pytest.mark.parametrize("grouping", ["operators", "service"])
@pytest.mark.parametrize("model", MODELS)
def test_examples_service(grouping, model):
    want_rows = _expected()[grouping]
    got = _by(compute_kpis(_examples(), grouping, model), GROUP_KEY[grouping])
    assert sorted(got) == sorted(want_rows)
    for gkey, want in want_rows.items():
        _assert_row(got[gkey], want, f"{grouping}[{gkey}]")


def test_examples_keys_absent_from_expected():
    """max_concurrency and lost_revenue are output keys of kpis.md that the
    expected file does not give; these are this reading's values."""
    ops = _by(compute_kpis(_examples(), "operators"), "operator_id")
    assert ops["op-anna"]["max_concurrency"] == 1
    assert ops["op-chen"]["max_concurrency"] == 1
    svc = _by(compute_kpis(_examples(), "service"), "channel")
    # call: 1 abandoned x r=1/1 (the answered call's person won D-120) x v=1899
    assert svc["call"]["lost_revenue"] == pytest.approx(1899.0)
    # chat: nothing missed
    assert svc["chat"]["lost_revenue"] == pytest.approx(0.0)


@pytest.mark.parametrize("grouping", ["channels", "campaigns", "operators", "service"])
def test_output_keys_exact_and_sorted(grouping):
    rows = compute_kpis(_examples(), grouping)
    assert rows
    for r in rows:
        assert tuple(r) == OUTPUT_KEYS[grouping]
    keys = [r[GROUP_KEY[grouping]] for r in rows]
    assert keys == sorted(keys)


def test_invalid_jsonl_lines_are_all_rejected():
    lines = [ln for ln in (CONTRACT / "invalid.jsonl").read_text().splitlines() if ln.strip()]
    parsed = []
    for ln in lines:
        try:
            parsed.append(json.loads(ln))
        except json.JSONDecodeError:
            continue  # the "not json" line: rejected before any rule applies
    assert len(parsed) == len(lines) - 1
    for ev in parsed:
        assert validate_event(ev), ev
    # and they change nothing when mixed into the examples
    base = compute_kpis(_examples(), "service")
    assert compute_kpis(_examples() + parsed, "service") == base


def test_examples_are_idempotent_and_order_independent():
    evs = _examples()
    for g in ("channels", "campaigns", "operators", "service"):
        base = compute_kpis(evs, g, "time_decay")
        assert compute_kpis(evs + evs, g, "time_decay") == base
        assert compute_kpis(list(reversed(evs)), g, "time_decay") == base


# ---------------------------------------------------------------------------
# micro-scenarios
# ---------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
_seq = iter(range(10**6))


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def ev(type_: str, at: datetime, event_id: str | None = None, identity: dict | None = None, **fields) -> dict:
    e = {"event_id": event_id or f"e-{next(_seq):06d}", "type": type_, "occurred_at": iso(at), "source": "test"}
    if identity is not None:
        e["identity"] = identity
    e.update(fields)
    return e


def click(at, who, channel, campaign="camp", event_id=None):
    return ev("ad_click", at, event_id, {"visitor_id": who}, campaign_id=campaign, channel=channel)


def won(at, identity, deal_id, revenue, event_id=None):
    return ev("deal_won", at, event_id, identity, deal_id=deal_id, revenue=revenue, currency="USD")


def credits(events, model, grouping="channels", **kw):
    rows = compute_kpis(events, grouping, model, **kw)
    return {r[GROUP_KEY[grouping]]: r["conversions"] for r in rows}


def test_three_touches_all_models():
    W = T0 + timedelta(days=30)
    evs = [
        click(W - timedelta(days=14), "v1", "search_ads"),
        click(W - timedelta(days=7), "v1", "social_ads"),
        click(W, "v1", "display_ads"),  # touch_at == won_at is eligible
        won(W, {"visitor_id": "v1"}, "D1", 700),
    ]
    assert credits(evs, "first_touch") == {"display_ads": 0.0, "search_ads": 1.0, "social_ads": 0.0}
    assert credits(evs, "last_touch") == {"display_ads": 1.0, "search_ads": 0.0, "social_ads": 0.0}
    lin = credits(evs, "linear")
    assert all(v == pytest.approx(1 / 3) for v in lin.values())
    # 2^-2 : 2^-1 : 2^0 = 1 : 2 : 4
    rows = _by(compute_kpis(evs, "channels", "time_decay"), "channel")
    assert rows["search_ads"]["conversions"] == pytest.approx(1 / 7)
    assert rows["social_ads"]["conversions"] == pytest.approx(2 / 7)
    assert rows["display_ads"]["conversions"] == pytest.approx(4 / 7)
    assert rows["display_ads"]["revenue"] == pytest.approx(400.0)
    pb = credits(evs, "position_based")
    assert pb == pytest.approx({"search_ads": 0.4, "social_ads": 0.2, "display_ads": 0.4})
    # campaigns: all touches carry "camp"
    assert credits(evs, "time_decay", "campaigns") == pytest.approx({"camp": 1.0})


def test_five_touches_position_based_and_tie_break_by_event_id():
    W = T0 + timedelta(days=40)
    same = W - timedelta(days=20)
    evs = [
        click(same, "v5", "search_ads", event_id="t-b"),
        click(same, "v5", "organic", event_id="t-a"),  # same time: t-a sorts first
        click(W - timedelta(days=10), "v5", "display_ads"),
        click(W - timedelta(days=5), "v5", "email"),
        click(W - timedelta(days=1), "v5", "referral"),
        won(W, {"visitor_id": "v5"}, "D5", 1000),
    ]
    pb = credits(evs, "position_based")
    third = 0.2 / 3
    assert pb == pytest.approx(
        {"organic": 0.4, "search_ads": third, "display_ads": third, "email": third, "referral": 0.4}
    )
    assert credits(evs, "first_touch")["organic"] == 1.0
    assert credits(evs, "linear") == pytest.approx({k: 0.2 for k in pb})
    rows = _by(compute_kpis(evs, "channels", "position_based"), "channel")
    assert rows["referral"]["revenue"] == pytest.approx(400.0)
    assert sum(r["conversions"] for r in rows.values()) == pytest.approx(1.0)


def test_two_touches_position_based_half_each():
    W = T0 + timedelta(days=3)
    evs = [click(T0, "v2", "search_ads"), click(T0 + timedelta(days=1), "v2", "social_ads"),
           won(W, {"visitor_id": "v2"}, "D2", 10)]
    assert credits(evs, "position_based") == pytest.approx({"search_ads": 0.5, "social_ads": 0.5})


def test_lookback_window_bounds():
    W = T0 + timedelta(days=200)
    evs = [
        click(W - timedelta(days=91), "v3", "search_ads"),            # outside
        click(W - timedelta(days=90), "v3", "display_ads"),           # boundary: eligible
        click(W - timedelta(days=89), "v3", "social_ads"),
        click(W + timedelta(seconds=1), "v3", "referral"),            # after the conversion
        won(W, {"visitor_id": "v3"}, "D3", 100),
    ]
    lin = credits(evs, "linear")
    assert lin == pytest.approx({"search_ads": 0.0, "display_ads": 0.5, "social_ads": 0.5, "referral": 0.0})
    # customers/ltv go by the first-ever touch, even one outside the window
    rows = _by(compute_kpis(evs, "channels"), "channel")
    assert rows["search_ads"]["customers"] == 1
    assert rows["search_ads"]["ltv"] == pytest.approx(100.0)
    assert "(none)" not in rows
    # a shorter configured lookback
    cfg = ReferenceConfig(lookback_days=30)
    assert credits(evs, "linear", config=cfg) == pytest.approx(
        {"search_ads": 0.0, "display_ads": 0.0, "social_ads": 0.0, "referral": 0.0, "(none)": 1.0}
    )


def test_conversion_without_touches_goes_to_none():
    W = T0 + timedelta(days=5)
    evs = [
        # person 1: never touched; a deal and a repeat payment
        won(W, {"email": "p1@example.org"}, "D10", 500),
        ev("payment", W + timedelta(days=30), None, {"email": " P1@Example.ORG"},
           payment_id="P1", amount="50.00", currency="USD"),
        # person 2: touched only after the conversion
        won(W, {"visitor_id": "v20"}, "D20", 300),
        click(W + timedelta(days=1), "v20", "search_ads", campaign="c-late"),
        ev("ad_spend", W, None, None, campaign_id="c-late", channel="search_ads",
           date="2026-03-06", cost="60", currency="USD"),
    ]
    for model in MODELS:
        rows = _by(compute_kpis(evs, "channels", model), "channel")
        assert set(rows) == {"(none)", "search_ads"}
        none = rows["(none)"]
        assert none["conversions"] == pytest.approx(2.0)
        assert none["revenue"] == pytest.approx(800.0)
        assert none["spend"] is None and none["cpa"] is None and none["romi"] is None
        assert none["leads"] == 0 and none["conversion_rate"] is None
        assert none["customers"] == 1 and none["ltv"] == pytest.approx(550.0)
        sa = rows["search_ads"]
        assert sa["conversions"] == 0.0 and sa["cpa"] is None
        assert sa["romi"] == pytest.approx(-1.0)
        assert sa["customers"] == 1 and sa["ltv"] == pytest.approx(300.0)
        camps = compute_kpis(evs, "campaigns", model)
        assert [c["campaign_id"] for c in camps] == ["c-late"]
        assert camps[0]["conversions"] == 0.0 and camps[0]["spend"] == pytest.approx(60.0)


def test_period_filter_half_open():
    may = datetime(2026, 5, 10, 9, tzinfo=timezone.utc)
    june = datetime(2026, 6, 10, 9, tzinfo=timezone.utc)
    july1 = datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc)
    lead = ev("lead", may, None, {"visitor_id": "v7", "email": "x@y.z"}, lead_id="L7",
              channel="search_ads", campaign_id="c7")
    evs = [
        ev("ad_spend", may, None, None, campaign_id="c7", channel="search_ads", date="2026-05-10",
           cost=100, currency="USD"),
        click(may, "v7", "search_ads", campaign="c7"),
        lead,
        won(june, {"email": "X@Y.Z"}, "D-june", 200),
        won(july1, {"email": "x@y.z"}, "D-july", 400),  # 2026-07-01: outside [06-01, 07-01)
    ]
    rows = _by(compute_kpis(evs, "channels", "linear", date(2026, 6, 1), date(2026, 7, 1)), "channel")
    sa = rows["search_ads"]
    assert sa["spend"] is None and sa["cpl"] is None and sa["cpa"] is None and sa["romi"] is None
    assert sa["leads"] == 0 and sa["converted_leads"] == 0 and sa["conversion_rate"] is None
    assert sa["conversions"] == pytest.approx(1.0) and sa["revenue"] == pytest.approx(200.0)
    assert sa["customers"] == 1  # first conversion (June) is in the period
    assert sa["ltv"] == pytest.approx(600.0)  # all-time population and revenue
    may_rows = _by(compute_kpis(evs, "channels", "linear", date(2026, 5, 1), date(2026, 6, 1)), "channel")
    sa = may_rows["search_ads"]
    assert sa["spend"] == pytest.approx(100.0) and sa["leads"] == 1 and sa["cpl"] == pytest.approx(100.0)
    # lead converted: D-june is within 90 days after the lead, in another period
    assert sa["converted_leads"] == 1 and sa["conversion_rate"] == 1.0
    assert sa["conversions"] == 0.0 and sa["customers"] == 0
    assert sa["romi"] == pytest.approx(-1.0)
    july = _by(compute_kpis(evs, "channels", "linear", date(2026, 7, 1), None), "channel")
    assert july["search_ads"]["revenue"] == pytest.approx(400.0)


def test_converted_leads_window():
    t = T0
    evs = [
        ev("lead", t, None, {"phone": "+1 (555) 000-1111"}, lead_id="L1", channel="organic"),
        ev("lead", t, None, {"phone": "+1 555 000 2222"}, lead_id="L2", channel="organic"),
        ev("lead", t, None, {"phone": "+1 555 000 3333"}, lead_id="L3", channel="organic"),
        won(t + timedelta(days=90), {"phone": "0015550001111"}, "D1", 10),          # boundary: counts
        won(t + timedelta(days=90, seconds=1), {"phone": "+15550002222"}, "D2", 10),  # too late
        won(t - timedelta(seconds=1), {"phone": "+15550003333"}, "D3", 10),           # before the lead
    ]
    row = _by(compute_kpis(evs, "channels"), "channel")["organic"]
    assert row["leads"] == 3 and row["converted_leads"] == 1
    assert row["conversion_rate"] == pytest.approx(1 / 3)


def test_missed_chats_and_lost_revenue():
    s = T0
    def vis(conv, at, who):
        return ev("message", at, None, {"visitor_id": who}, conversation_id=conv, author="visitor")
    def start(conv, at, who, by="visitor"):
        return ev("conversation_started", at, None, {"visitor_id": who}, conversation_id=conv,
                  channel="chat", initiated_by=by)
    evs = [
        # A: closed with no reply -> missed
        start("A", s, "va"), vis("A", s + timedelta(seconds=1), "va"),
        ev("conversation_closed", s + timedelta(minutes=5), None, None, conversation_id="A"),
        # B: bot reply before close -> not missed; its person converts later
        start("B", s, "vb"), vis("B", s + timedelta(seconds=1), "vb"),
        ev("message", s + timedelta(seconds=4), None, None, conversation_id="B", author="bot"),
        ev("conversation_closed", s + timedelta(minutes=5), None, None, conversation_id="B"),
        won(s + timedelta(days=3), {"visitor_id": "vb"}, "DB", 1000),
        # C: never closed, no reply, the data goes on > 24 h after its last visitor message -> missed
        start("C", s, "vc"), vis("C", s + timedelta(minutes=1), "vc"),
        # C2: never closed, reply only after the 24 h timeout -> missed
        start("C2", s, "vc2"), vis("C2", s + timedelta(minutes=1), "vc2"),
        ev("message", s + timedelta(hours=25), None, None, conversation_id="C2", author="operator",
           operator_id="op-late"),
        # D: never closed, last visitor message < 24 h before the latest event -> not (yet) missed
        start("D", s + timedelta(days=3), "vd"), vis("D", s + timedelta(days=3, hours=1), "vd"),
        # E: operator-initiated, no reply -> never a missed conversation
        start("E", s, "ve", by="operator"), vis("E", s + timedelta(seconds=1), "ve"),
        # F: visitor-initiated, no visitor message -> not counted
        start("F", s, "vf"),
    ]
    row = _by(compute_kpis(evs, "service"), "channel")["chat"]
    assert row["conversations"] == 7
    assert row["missed_conversations"] == 3
    # sla base: A, B, C, C2, D (visitor-initiated with a visitor message); only C2 has a
    # human reply, 25 h late
    assert row["sla_rate"] == 0.0
    assert row["frt_mean_s"] == pytest.approx(25 * 3600 - 60)
    assert row["transfer_rate"] == 0.0
    assert row["contact_capture_rate"] == 0.0
    # lost: 3 missed x r (1 of B, D, E, F converted) x v (1000)
    assert row["lost_revenue"] == pytest.approx(3 * 0.25 * 1000)
    # a configured "now" far later makes D missed too
    cfg = ReferenceConfig(now=s + timedelta(days=10))
    row = _by(compute_kpis(evs, "service", config=cfg), "channel")["chat"]
    assert row["missed_conversations"] == 4
    # the period filter is by conversation start
    row = _by(compute_kpis(evs, "service", date_from=(s + timedelta(days=1)).date()), "channel")["chat"]
    assert row["conversations"] == 1 and row["missed_conversations"] == 0


def test_late_identity_merge_links_deal_to_chat():
    d0 = T0
    base = [
        ev("conversation_started", d0, None, {"visitor_id": "v9"}, conversation_id="k9",
           channel="chat", initiated_by="visitor"),
        won(d0 + timedelta(days=10), {"email": "e9@example.org"}, "D9", 900),
    ]
    assert credits(base, "linear") == {"(none)": 1.0, "chat": 0.0}
    # a lead 10 days AFTER the deal (itself not an eligible touch) merges v9 with e9
    late_lead = ev("lead", d0 + timedelta(days=20), None,
                   {"visitor_id": "v9", "email": "  E9@Example.ORG "}, lead_id="L9", channel="organic")
    merged = base + [late_lead]
    assert credits(merged, "linear") == {"chat": 1.0, "organic": 0.0}
    rows = _by(compute_kpis(merged, "channels"), "channel")
    assert rows["chat"]["customers"] == 1 and rows["chat"]["ltv"] == pytest.approx(900.0)
    # lead after the conversion: not a converted lead
    assert rows["organic"]["leads"] == 1 and rows["organic"]["converted_leads"] == 0
    # the chat's person now has a conversion within 90 days after the chat start
    svc = _by(compute_kpis(merged, "service"), "channel")["chat"]
    assert svc["contact_capture_rate"] == 0.0  # the lead is > 24 h after the chat start
    # transitive merge through phone normalisation: 00-prefix and +
    evs = [
        click(d0, "v10", "search_ads"),
        ev("message", d0, None, {"visitor_id": "v10", "phone": "00 44 20 7946 0000"},
           conversation_id="nope", author="visitor"),
        won(d0 + timedelta(days=1), {"phone": "+44 (20) 7946-0000"}, "D10", 10),
    ]
    assert credits(evs, "first_touch") == {"search_ads": 1.0}


def test_dedup_event_id_deal_id_spend_and_lead_id():
    t = T0
    evs = [
        click(t, "v1", "search_ads", campaign="c1"),
        won(t + timedelta(days=1), {"visitor_id": "v1"}, "D1", 100, event_id="w1"),
        won(t + timedelta(days=1), {"visitor_id": "v1"}, "D1", 999, event_id="w1"),  # same event_id: ignored
        # deal restated later: its revenue and time win (time moves into April)
        won(datetime(2026, 4, 2, tzinfo=timezone.utc), {"visitor_id": "v1"}, "D1", 250, event_id="w2"),
        ev("ad_spend", t, "s1", None, campaign_id="c1", channel="search_ads", date="2026-03-01", cost=10, currency="USD"),
        ev("ad_spend", t + timedelta(hours=5), "s2", None, campaign_id="c1", channel="search_ads",
           date="2026-03-01", cost=25, currency="USD"),
        ev("ad_spend", t, "s3", None, campaign_id="c1", channel="search_ads", date="2026-03-02", cost=5, currency="USD"),
        # duplicated lead_id with different event_ids: counted once, the earliest wins
        ev("lead", t + timedelta(hours=2), None, {"email": "a@b.c", "visitor_id": "v1"}, lead_id="L1",
           channel="search_ads", campaign_id="c1"),
        ev("lead", t + timedelta(hours=1), None, {"email": "a@b.c"}, lead_id="L1", channel="organic"),
    ]
    rows = _by(compute_kpis(evs, "channels", "last_touch"), "channel")
    assert rows["search_ads"]["spend"] == pytest.approx(30.0)
    assert rows["organic"]["leads"] == 1 and rows["search_ads"]["leads"] == 0
    assert rows["organic"]["revenue"] == pytest.approx(250.0)  # the lead (01:00) is the last touch
    march = _by(compute_kpis(evs, "channels", "linear", date(2026, 3, 1), date(2026, 4, 1)), "channel")
    assert march["search_ads"]["conversions"] == 0.0 and march["organic"]["conversions"] == 0.0
    camp = compute_kpis(evs, "campaigns", "linear")
    assert [c["campaign_id"] for c in camp] == ["c1"]
    assert camp[0]["spend"] == pytest.approx(30.0)
    assert camp[0]["leads"] == 0  # the surviving L1 has no campaign
    assert camp[0]["conversions"] == pytest.approx(0.5) and camp[0]["revenue"] == pytest.approx(125.0)


def _ops_scenario() -> list[dict]:
    T = datetime(2026, 4, 1, 10, 0, tzinfo=timezone.utc)
    S = lambda s: T + timedelta(seconds=s)  # noqa: E731

    def msg(conv, s, author, op=None, tpl=None):
        f = {"conversation_id": conv, "author": author}
        if op:
            f["operator_id"] = op
        if tpl:
            f["template_id"] = tpl
        return ev("message", S(s), None, None, **f)

    def start(conv, s, ch, who):
        return ev("conversation_started", S(s), None, {"visitor_id": who}, conversation_id=conv,
                  channel=ch, initiated_by="visitor")

    return [
        start("k1", 0, "chat", "w1"),
        msg("k1", 2, "visitor"), msg("k1", 12, "operator", "op-x", "t1"),
        msg("k1", 20, "visitor"), msg("k1", 25, "visitor"), msg("k1", 45, "operator", "op-x"),
        ev("conversation_closed", S(60), None, None, conversation_id="k1"),
        start("k2", 30, "chat", "w2"),
        msg("k2", 31, "visitor"), msg("k2", 33, "bot", tpl="bot-hi"), msg("k2", 71, "operator", "op-y"),
        msg("k2", 80, "visitor"),
        ev("conversation_transferred", S(85), None, None, conversation_id="k2",
           from_operator_id="op-y", to_operator_id="op-x"),
        msg("k2", 90, "operator", "op-x", "t2"),
        ev("conversation_closed", S(120), None, None, conversation_id="k2"),
        start("k3", 50, "messenger", "w3"),
        msg("k3", 50, "visitor"), msg("k3", 100, "operator", "op-x"), msg("k3", 130, "visitor"),
        ev("survey_response", S(200), None, None, survey="csat", score=5, conversation_id="k2"),
        ev("survey_response", S(201), None, None, survey="csat", score=2, conversation_id="k2", operator_id="op-y"),
        ev("survey_response", S(202), None, None, survey="nps", score=6, conversation_id="k1"),
        ev("survey_response", S(203), None, None, survey="nps", score=10, conversation_id="k3"),
        ev("survey_response", S(204), None, {"email": "q@r.s"}, survey="csat", score=4),
    ]


def test_operators_scenario():
    ops = _by(compute_kpis(_ops_scenario(), "operators"), "operator_id")
    assert set(ops) == {"op-x", "op-y"}
    x = ops["op-x"]
    assert x["conversations"] == 3
    assert x["frt_median_s"] == pytest.approx(30.0)   # frts 10 (k1), 50 (k3)
    assert x["frt_p90_s"] == pytest.approx(46.0)
    assert x["frt_mean_s"] == pytest.approx(30.0)
    assert x["art_s"] == pytest.approx((10 + 25 + 10 + 50) / 4)
    assert x["sla_rate"] == 1.0                       # 10 <= 30 (chat), 50 <= 300 (messenger)
    assert x["transfers"] == 0
    assert x["template_share"] == pytest.approx(0.5)
    assert x["csat"] == 1.0                           # k2's last operator is op-x
    assert x["nps"] == pytest.approx(0.0)             # one 6, one 10
    assert x["operator_conversion_rate"] == 0.0
    assert x["max_concurrency"] == 2                  # k2 [90,120] and k3 [100,130]
    y = ops["op-y"]
    assert y["conversations"] == 1
    assert (y["frt_median_s"], y["frt_p90_s"], y["frt_mean_s"]) == (40.0, 40.0, 40.0)
    assert y["art_s"] is None                         # op-y's message followed the bot, not a visitor turn
    assert y["sla_rate"] == 0.0
    assert y["transfers"] == 1
    assert y["template_share"] == 0.0
    assert y["csat"] == 0.0 and y["nps"] is None
    assert y["max_concurrency"] == 1


def test_service_scenario_conversations():
    svc = _by(compute_kpis(_ops_scenario(), "service"), "channel")
    assert set(svc) == {"(none)", "chat", "messenger"}
    chat = svc["chat"]
    assert chat["conversations"] == 2
    assert chat["frt_median_s"] == pytest.approx(25.0)
    assert chat["frt_p90_s"] == pytest.approx(37.0)
    assert chat["art_s"] == pytest.approx((10 + 25 + 2 + 10) / 4)
    assert chat["sla_rate"] == pytest.approx(0.5)
    assert chat["missed_conversations"] == 0
    assert chat["transfer_rate"] == pytest.approx(0.5)
    assert chat["contact_capture_rate"] == 0.0
    assert chat["csat"] == pytest.approx(0.5) and chat["nps"] == pytest.approx(-100.0)
    assert chat["lost_revenue"] is None               # r = 0 -> v undefined -> null
    assert chat["calls_offered"] is None and chat["wait_mean_s"] is None
    m = svc["messenger"]
    assert m["conversations"] == 1 and m["frt_mean_s"] == pytest.approx(50.0)
    assert m["art_s"] == pytest.approx(50.0) and m["sla_rate"] == 1.0 and m["nps"] == 100.0
    none = svc["(none)"]
    assert none["csat"] == 1.0 and none["conversations"] == 0
    assert none["missed_conversations"] is None and none["lost_revenue"] is None


def test_calls():
    T = datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc)
    def call(cid, outcome, wait=None, talk=None, direction="inbound", op="op-c", phone="+10000000001"):
        f = {"call_id": cid, "direction": direction, "started_at": iso(T), "outcome": outcome}
        end = T + timedelta(seconds=5)
        if wait is not None:
            f["answered_at"] = iso(T + timedelta(seconds=wait))
            end = T + timedelta(seconds=wait + talk)
        f["ended_at"] = iso(end)
        if outcome == "answered":
            f["operator_id"] = op
        return ev("call_completed", end, None, {"phone": phone}, **f)
    evs = [
        call("c1", "answered", 10, 100),
        call("c2", "answered", 20, 200, op="op-d"),
        call("c3", "answered", 60, 300),
        call("c4", "missed"), call("c5", "abandoned"), call("c6", "busy"),
        call("o1", "answered", 1, 1, direction="outbound"),          # not offered, not a touch
        won(T + timedelta(days=2), {"phone": "+1 000 000 0001"}, "DC", 600),
        ev("survey_response", T + timedelta(hours=1), None, None, survey="csat", score=3, call_id="c2"),
    ]
    svc = _by(compute_kpis(evs, "service"), "channel")
    assert set(svc) == {"call"}
    c = svc["call"]
    assert c["conversations"] == 6 and c["calls_offered"] == 6
    assert c["answer_rate"] == pytest.approx(0.5)
    assert c["missed_calls"] == 1 and c["abandoned_calls"] == 1
    assert c["wait_mean_s"] == pytest.approx(30.0) and c["wait_median_s"] == pytest.approx(20.0)
    assert c["talk_mean_s"] == pytest.approx(200.0)
    assert c["frt_mean_s"] is None and c["missed_conversations"] is None and c["transfer_rate"] is None
    assert c["csat"] == 0.0
    # all calls are one person (same phone): every non-missed contact converts, v = 600
    assert c["lost_revenue"] == pytest.approx(2 * 1.0 * 600)
    ops = _by(compute_kpis(evs, "operators"), "operator_id")
    assert ops["op-c"]["conversations"] == 2 and ops["op-d"]["conversations"] == 1
    assert ops["op-d"]["csat"] == 0.0 and ops["op-c"]["csat"] is None
    assert ops["op-c"]["operator_conversion_rate"] == 1.0
    assert ops["op-c"]["max_concurrency"] == 2       # c1 [10,110] and c3 [60,360]
    ch = _by(compute_kpis(evs, "channels", "linear"), "channel")
    assert set(ch) == {"call"} and ch["call"]["conversions"] == pytest.approx(1.0)


def test_validation_rules():
    ok = ev("payment", T0, "p", {"crm_contact_id": "c"}, payment_id="P", amount="0", currency="USD")
    assert validate_event(ok) == []
    assert validate_event({**ok, "currency": "EUR"})
    assert validate_event({**ok, "currency": "EUR"}, ReferenceConfig(rates={"EUR": 1.1})) == []
    assert validate_event({**ok, "amount": "-0.01"})
    assert validate_event({**ok, "amount": "abc"})
    assert validate_event({**ok, "occurred_at": "2026-03-01T12:00:00"})            # no offset
    assert validate_event({**ok, "occurred_at": "2026-03-01T12:00:00.1234Z"})      # finer than ms
    assert validate_event({**ok, "occurred_at": "2026-03-01T15:00:00.5+03:00"}) == []
    assert validate_event({**ok, "identity": {}})
    assert validate_event({**ok, "event_id": "x" * 129})
    assert validate_event({**ok, "source": ""})
    assert validate_event({**ok, "type": "nope"})
    dw = won(T0, {"email": "a@b.c"}, "D", 1)
    assert validate_event(dw) == []
    assert validate_event({**dw, "revenue": 0})
    lead = ev("lead", T0, "l", {"visitor_id": "v"}, lead_id="L", channel="organic")
    assert validate_event(lead)
    assert validate_event({**lead, "identity": {"visitor_id": "v", "phone": "+1 555"}}) == []
    assert validate_event({**lead, "identity": {"email": "a@b.c"}, "channel": "chat"})  # not marketing
    sv = ev("survey_response", T0, "s", None, survey="csat", score=0)
    assert validate_event(sv)
    assert validate_event({**sv, "score": 5}) == []
    assert validate_event({**sv, "score": 5.0})
    call = ev("call_completed", T0, "c", {"phone": "+1"}, call_id="c", direction="inbound",
              started_at=iso(T0), answered_at=iso(T0), ended_at=iso(T0), outcome="answered")
    assert validate_event(call)                       # answered without operator
    assert validate_event({**call, "operator_id": "op"}) == []
    msg = ev("message", T0, "m", None, conversation_id="k", author="bot")
    assert validate_event(msg) == []
    assert validate_event({**msg, "author": "operator"})


def test_currency_rates_convert_to_reporting_currency():
    evs = [click(T0, "v1", "search_ads"),
           {**won(T0 + timedelta(days=1), {"visitor_id": "v1"}, "D1", "100.00"), "currency": "EUR"}]
    assert compute_kpis(evs, "channels")[0]["revenue"] == 0.0  # EUR unknown: dead-lettered
    rows = compute_kpis(evs, "channels", config=ReferenceConfig(rates={"EUR": 1.1}))
    assert rows[0]["revenue"] == pytest.approx(110.0)


def test_percentile_matches_numpy_linear():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7.0
    assert percentile([1, 2, 3, 4], 0.5) == pytest.approx(2.5)
    assert percentile([4, 1, 3, 2], 0.9) == pytest.approx(3.7)
    assert percentile([10, 20, 30, 40, 50], 0.9) == pytest.approx(46.0)


def test_phone_normalisation():
    assert normalize_phone("+7 (916) 123-45-67") == "+79161234567"
    assert normalize_phone("0079161234567") == "+79161234567"
    assert normalize_phone("+79161234567") == "+79161234567"


# ---------------------------------------------------------------------------
# contract v1.1 section 1: the markov model (worked example of the contract)
# ---------------------------------------------------------------------------

def test_markov_worked_example():
    from tests.reference.kpis import markov_chain

    A, B, C = "search_ads", "social_ads", "email"
    W = T0 + timedelta(days=10)
    evs = [
        click(T0, "p1", A), click(T0 + timedelta(hours=1), "p1", B), won(W, {"visitor_id": "p1"}, "D1", 100),
        click(T0, "p2", A),
        click(T0, "p3", B), won(W, {"visitor_id": "p3"}, "D3", 100),
        click(T0, "p4", A, campaign="a1"), click(T0 + timedelta(hours=1), "p4", A, campaign="a2"),
        click(T0 + timedelta(hours=2), "p4", C), won(W, {"visitor_id": "p4"}, "D4", 100),
        click(T0, "p5", C),
    ]
    chain = markov_chain(evs)
    assert chain["paths"] == 5
    assert chain["p_conversion"] == pytest.approx(0.6, abs=1e-15)
    assert chain["removal_effects"] == {A: pytest.approx(0.5), B: pytest.approx(2 / 3), C: pytest.approx(1 / 3)}
    got = credits(evs, "markov")
    assert {k: round(v, 6) for k, v in got.items()} == {A: 1.028571, B: 1.571429, C: 0.4}
    # A's share of D4 (0.6) is split over its two touches, one per campaign
    camps = credits(evs, "markov", "campaigns")
    assert camps["a1"] == pytest.approx(0.3) and camps["a2"] == pytest.approx(0.3)
    # a conversion without an eligible touch: (none), and no path
    evs.append(won(W, {"visitor_id": "nobody"}, "D9", 50))
    assert markov_chain(evs)["paths"] == 5
    assert credits(evs, "markov")["(none)"] == 1.0
