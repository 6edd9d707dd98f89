"""Person profiles (migration 0010) kept by the real pipeline: the attribution stage
rewrites a person's profile when a touch, a conversion, a payment, a new identity
value or a merge reaches it, and leaves a tombstone where a person stops counting."""
from __future__ import annotations

from decimal import Decimal

from leadflow import warehouse
from services.attribution.kpis import compute_kpis


def T(day: int, hour: int = 10) -> str:
    return f"2026-05-{day:02d}T{hour:02d}:00:00Z"


def ev(event_id: str, type_: str, day: int, identity: dict, hour: int = 10, **fields) -> dict:
    return {"event_id": event_id, "type": type_, "occurred_at": T(day, hour), "source": "test",
            "identity": identity, **fields}


def profiles(client) -> list[tuple]:
    """Non-empty profiles: (number of keys, deal ids, number of leads, first channel, value), sorted."""
    rows = client.query("SELECT keys, won, lead_times, first_channel, value FROM person_profiles FINAL "
                        "WHERE notEmpty(keys)").result_rows
    return sorted((len(keys), sorted(w[1] for w in won), len(leads), first, value)
                  for keys, won, leads, first, value in rows)


def contact_keys(client) -> list[int]:
    """How many of each non-empty profile's identity values a conversation or inbound call carries."""
    return sorted(n for (n,) in client.query("SELECT length(contact_keys) FROM person_profiles FINAL "
                                             "WHERE notEmpty(keys)").result_rows)


def test_profiles_follow_payments_new_keys_and_merges(replay_events, settings):
    replay_events([
        ev("c1", "ad_click", 1, {"visitor_id": "v1"}, hour=9, channel="search_ads", campaign_id="cmp"),
        ev("l1", "lead", 1, {"visitor_id": "v1", "email": "a@example.org"}, lead_id="L1", channel="search_ads"),
        ev("d1", "deal_won", 3, {"email": "b@example.org"}, deal_id="D1", revenue="100.00", currency="USD"),
    ])
    client = warehouse.connect(settings)
    assert profiles(client) == [
        (1, ["D1"], 0, "(none)", Decimal("100.000000")),  # b: a deal, no touch
        (2, [], 1, "search_ads", Decimal("0.000000")),  # v1 + a: a lead, first touch the click
    ]
    # a payment brings a new identity value (the phone) to b's person and adds to its value
    replay_events([ev("p1", "payment", 4, {"email": "b@example.org", "phone": "+15550001"},
                      payment_id="P1", amount="50.00", currency="USD")])
    assert profiles(client) == [
        (2, [], 1, "search_ads", Decimal("0.000000")),
        (2, ["D1"], 0, "(none)", Decimal("150.000000")),
    ]
    # a lead on a's email and the phone merges both people: one profile, one tombstone
    replay_events([ev("l2", "lead", 5, {"email": "a@example.org", "phone": "+15550001"},
                      lead_id="L2", channel="social_ads")])
    assert profiles(client) == [(4, ["D1"], 2, "search_ads", Decimal("150.000000"))]
    assert client.query("SELECT count() FROM person_profiles FINAL WHERE empty(keys)").result_rows == [(1,)]
    channels = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    # L1 (May 1) converts through D1 (May 3); L2 (May 5) came after the deal
    assert channels["search_ads"]["converted_leads"] == 1 and channels["social_ads"]["converted_leads"] == 0
    assert channels["search_ads"]["customers"] == 1 and channels["search_ads"]["ltv"] == 150.0


def test_a_deal_sent_again_to_another_person_leaves_the_first(replay_events, settings):
    replay_events([
        ev("d1", "deal_won", 3, {"email": "c@example.org"}, deal_id="D9", revenue="80.00", currency="USD"),
        ev("k1", "ad_click", 2, {"email": "d@example.org"}, channel="social_ads", campaign_id="cmp"),
        ev("s1", "conversation_started", 2, {"phone": "+15550002", "email": "d@example.org"}, hour=12,
           conversation_id="cv1", channel="chat", initiated_by="visitor"),
        ev("k2", "call_completed", 2, {"email": "d@example.org"}, hour=13, call_id="call1", direction="inbound",
           started_at=T(2, 12), ended_at=T(2, 13), outcome="missed"),
    ])
    client = warehouse.connect(settings)
    assert profiles(client) == [(1, ["D9"], 0, "(none)", Decimal("80.000000"))]
    assert contact_keys(client) == [0]
    service = {r["channel"]: r for r in compute_kpis(client, settings, "service")}
    # lost revenue = missed x r x v: chat's one other (not missed) contact has no converting person,
    # so no deal value v: null
    assert service["chat"]["lost_revenue"] is None
    # the CRM corrects the deal's contact: the later deal_won wins, the first person no longer converts
    replay_events([ev("d2", "deal_won", 3, {"email": "d@example.org"}, hour=11, deal_id="D9", revenue="80.00",
                      currency="USD")])
    assert profiles(client) == [(2, ["D9"], 0, "social_ads", Decimal("80.000000"))]
    # the conversation carries the email (the smaller value of its two), the call the email too
    assert contact_keys(client) == [1]
    service = {r["channel"]: r for r in compute_kpis(client, settings, "service")}
    # now the conversation's person won D9 within 90 days: r = 1, v = 80, missed = 0 -> 0
    assert service["chat"]["lost_revenue"] == 0.0
    # the call was missed and no other call exists: r is undefined
    assert service["call"]["missed_calls"] == 1 and service["call"]["lost_revenue"] is None
    channels = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert channels["social_ads"]["customers"] == 1 and sum(r["customers"] for r in channels.values()) == 1

