"""Versions never go below what the warehouse holds (leadflow/versions.py), and a merge record
that a retry did not repeat never tombstones a live person (services/attribution/profiles.py)."""
from __future__ import annotations

import time
from decimal import Decimal

from leadflow import warehouse
from leadflow.versions import VersionClock
from tests.test_person_profiles import ev, profiles

HOUR_NS = 3600 * 10**9


def test_a_clock_moves_past_the_warehouse(client):
    ahead = time.time_ns() + HOUR_NS
    warehouse.insert_rows(client, "attribution_queue", ["person_id", "version", "done"], [("p", ahead, 1)])
    clock = VersionClock(["person_keys", "attribution_queue"])
    assert clock.sync(client) == ahead
    assert clock.next() == ahead + 1 and clock.next() == ahead + 2


def test_rows_of_a_process_whose_clock_was_ahead_are_still_replaced(replay_events, settings):
    """Another process (or this one before a restart) wrote a credit with a version an hour in
    the future; the next recomputation must replace it, not lose to it."""
    replay_events([
        ev("l1", "lead", 1, {"email": "a@example.org"}, lead_id="L1", channel="organic"),
        ev("d1", "deal_won", 3, {"email": "a@example.org"}, deal_id="D1", revenue="10.00", currency="USD"),
    ])
    client = warehouse.connect(settings)
    ahead = time.time_ns() + HOUR_NS
    client.command("INSERT INTO attribution_credits SELECT deal_id, model, {v:UInt64}, person_id, won_at, revenue, "
                   "['bogus'], [''], ['bogus'], [''], [[]], [1.0] FROM attribution_credits FINAL",
                   parameters={"v": ahead})
    replay_events([ev("c1", "ad_click", 1, {"email": "a@example.org"}, hour=9, channel="search_ads",
                      campaign_id="cmp")])
    rows = client.query("SELECT channels, version FROM attribution_credits FINAL WHERE model = 'first_touch'"
                        ).result_rows
    assert rows[0][0] == ["search_ads", "organic"] and rows[0][1] > ahead  # both touches, newest version


def test_a_merge_record_of_a_live_person_tombstones_nothing(replay_events, settings):
    """person_merges may hold a merge that a retried batch made the other way round (another
    split of the batch): the 'absorbed' person still holds its values, so it keeps its profile."""
    replay_events([
        ev("l1", "lead", 1, {"email": "a@example.org"}, lead_id="L1", channel="organic"),
        ev("d1", "deal_won", 3, {"email": "b@example.org"}, deal_id="D1", revenue="10.00", currency="USD"),
    ])
    client = warehouse.connect(settings)
    a, b = sorted(p for (p,) in client.query("SELECT person_id FROM person_profiles FINAL").result_rows)
    warehouse.insert_rows(client, "person_merges", ["survivor", "absorbed", "version"], [(a, b, 1), (b, a, 1)])
    replay_events([ev("c1", "ad_click", 1, {"email": "a@example.org"}, hour=9, channel="search_ads",
                      campaign_id="cmp"),
                   ev("c2", "ad_click", 1, {"email": "b@example.org"}, hour=9, channel="search_ads",
                      campaign_id="cmp")])
    assert profiles(client) == [
        (1, [], 1, "search_ads", Decimal("0.000000")),
        (1, ["D1"], 0, "search_ads", Decimal("10.000000")),
    ]
