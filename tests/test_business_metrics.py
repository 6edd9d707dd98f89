"""Business metrics (services/business_metrics.py) counted as events flow through the real pipeline.

Counters are process-global, so every check is a difference before/after a replay.
"""
from __future__ import annotations

import pytest

from prometheus_client import REGISTRY

from services import business_metrics


def T(minute: int, second: float = 0.0, day: int = 4) -> str:
    return f"2026-05-{day:02d}T10:{minute:02d}:{second:06.3f}Z"


def conv_events(cid: str, channel: str, initiated_by: str, messages: list[tuple[int, float, str]],
                closed_at: tuple[int, float] | None = None) -> list[dict]:
    ident = {"visitor_id": f"v-{cid}"}
    out = [{"event_id": f"{cid}-s", "type": "conversation_started", "occurred_at": T(0), "source": "site-chat",
            "identity": ident, "conversation_id": cid, "channel": channel, "initiated_by": initiated_by}]
    for i, (minute, second, author) in enumerate(messages):
        msg = {"event_id": f"{cid}-m{i}", "type": "message", "occurred_at": T(minute, second), "source": "site-chat",
               "identity": ident, "conversation_id": cid, "author": author}
        if author == "operator":
            msg["operator_id"] = "op-1"
        out.append(msg)
    if closed_at is not None:
        out.append({"event_id": f"{cid}-c", "type": "conversation_closed", "occurred_at": T(*closed_at),
                    "source": "site-chat", "conversation_id": cid, "resolved": False})
    return out


def call(i: int, direction: str, outcome: str) -> dict:
    ev = {"event_id": f"call-{i}", "type": "call_completed", "occurred_at": T(10), "source": "pbx",
          "identity": {"phone": f"+1555000{i:04d}"}, "call_id": f"c-{i}", "direction": direction,
          "started_at": T(5), "ended_at": T(10), "outcome": outcome}
    if outcome == "answered":
        ev.update(answered_at=T(6), operator_id="op-1")
    return ev


def lead(i: int, channel: str, day: int = 1) -> dict:
    return {"event_id": f"ld-{i}", "type": "lead", "occurred_at": T(0, day=day), "source": "site",
            "identity": {"email": f"p{i}@example.org"}, "lead_id": f"L-{i}", "channel": channel}


def deal(i: int, person: int, day: int) -> dict:
    return {"event_id": f"dw-{i}", "type": "deal_won", "occurred_at": T(30, day=day), "source": "crm",
            "identity": {"email": f"p{person}@example.org"}, "deal_id": f"D-{i}", "revenue": "100.00",
            "currency": "USD"}


def snapshot() -> dict[tuple, float]:
    out = {}
    for metric in REGISTRY.collect():
        if not metric.name.startswith("leadflow_"):
            continue
        for s in metric.samples:
            if s.name.endswith("_created"):
                continue
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: dict, after: dict) -> dict[tuple, float]:
    keys = set(before) | set(after)
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys if after.get(k, 0.0) != before.get(k, 0.0)}


def d(changes: dict, name: str, **labels) -> float:
    return changes.get((name, tuple(sorted(labels.items()))), 0.0)


def test_business_metrics_count_once_as_events_flow(replay_events):
    events = [
        lead(1, "search_ads"), lead(2, "search_ads"), lead(3, "social_ads"),
        deal(1, person=1, day=5), deal(2, person=1, day=6), deal(3, person=3, day=20),
        # chat answered in 20 s (met), chat answered in 100 s (breached), messenger closed unanswered (missed)
        *conv_events("k1", "chat", "visitor", [(1, 0, "visitor"), (1, 20, "operator")], closed_at=(5, 0)),
        *conv_events("k2", "chat", "visitor", [(1, 0, "visitor"), (2, 40, "operator")]),
        *conv_events("k3", "messenger", "visitor", [(1, 0, "visitor"), (1, 30, "visitor")], closed_at=(9, 0)),
        # operator-initiated: no contact, no FRT
        *conv_events("k4", "chat", "operator", [(1, 0, "operator"), (1, 5, "visitor")]),
        call(1, "inbound", "missed"), call(2, "inbound", "abandoned"), call(3, "inbound", "answered"),
        call(4, "outbound", "missed"),
    ]
    before = snapshot()
    summary = replay_events(events)
    assert summary.rejected == 0, summary.first_rejections
    changes = delta(before, snapshot())

    assert d(changes, "leadflow_leads_total", channel="search_ads") == 2
    assert d(changes, "leadflow_leads_total", channel="social_ads") == 1
    # person 1: two deals convert lead 1 once; person 3's deal converts lead 3 (15 days later)
    assert d(changes, "leadflow_leads_converted_total", channel="search_ads") == 1
    assert d(changes, "leadflow_leads_converted_total", channel="social_ads") == 1
    assert d(changes, "leadflow_conversions_total", channel="search_ads") == 2
    assert d(changes, "leadflow_conversions_total", channel="social_ads") == 1

    assert d(changes, "leadflow_contacts_total", channel="chat") == 2
    assert d(changes, "leadflow_contacts_total", channel="messenger") == 1
    assert d(changes, "leadflow_contacts_total", channel="call") == 3
    assert d(changes, "leadflow_contacts_missed_total", channel="call", outcome="missed") == 1
    assert d(changes, "leadflow_contacts_missed_total", channel="call", outcome="abandoned") == 1
    assert d(changes, "leadflow_contacts_missed_total", channel="messenger", outcome="missed") == 1
    assert d(changes, "leadflow_contacts_missed_total", channel="chat", outcome="missed") == 0

    assert d(changes, "leadflow_first_response_seconds_count", channel="chat") == 2
    assert d(changes, "leadflow_first_response_seconds_sum", channel="chat") == pytest.approx(120)  # a float sum: the order of additions may differ
    assert d(changes, "leadflow_first_response_seconds_bucket", channel="chat", le="30.0") == 1
    assert d(changes, "leadflow_first_response_seconds_bucket", channel="chat", le="120.0") == 2
    assert d(changes, "leadflow_first_response_sla_total", channel="chat", result="met") == 1
    assert d(changes, "leadflow_first_response_sla_total", channel="chat", result="breached") == 1
    assert d(changes, "leadflow_first_response_sla_total", channel="messenger", result="breached") == 1

    # the same file again: every event is a duplicate, no business counter moves
    before = snapshot()
    replay_events(events)
    again = delta(before, snapshot())
    moved = {k: v for k, v in again.items()
             if k[0].startswith(("leadflow_leads", "leadflow_conv", "leadflow_contacts", "leadflow_first_response"))}
    assert moved == {}

    # a late reply to the missed messenger conversation: its first response now exists (observed once),
    # but it was already counted missed and SLA-breached; a second deal of person 3 converts nothing new
    before = snapshot()
    replay_events([
        {"event_id": "k3-late", "type": "message", "occurred_at": T(12), "source": "site-chat",
         "identity": {"visitor_id": "v-k3"}, "conversation_id": "k3", "author": "operator", "operator_id": "op-2"},
        deal(4, person=3, day=25),
    ])
    late = delta(before, snapshot())
    assert d(late, "leadflow_first_response_seconds_count", channel="messenger") == 1
    assert d(late, "leadflow_first_response_seconds_sum", channel="messenger") == pytest.approx(660)
    assert d(late, "leadflow_first_response_sla_total", channel="messenger", result="breached") == 0
    assert d(late, "leadflow_contacts_missed_total", channel="messenger", outcome="missed") == 0
    assert d(late, "leadflow_conversions_total", channel="social_ads") == 1
    assert d(late, "leadflow_leads_converted_total", channel="social_ads") == 0


def test_channel_labels_are_bounded(settings):
    label = business_metrics.ChannelLabels(settings)
    assert label("chat") == "chat" and label("search_ads") == "search_ads" and label("(none)") == "(none)"
    assert label("tiktok") == "other" and label(None) == "other" and label("") == "other"


def test_a_metrics_failure_never_fails_the_batch(replay_events, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("metrics bug")

    monkeypatch.setattr(business_metrics.EnrichMetrics, "_observe", broken)
    monkeypatch.setattr(business_metrics.AttributionMetrics, "_observe", broken)
    summary = replay_events([lead(901, "search_ads"), deal(901, person=901, day=5)])
    assert summary.accepted == 2 and summary.rejected == 0
    assert "business metrics: enrich batch not counted" in caplog.text
    assert "business metrics: attribution batch not counted" in caplog.text
