"""The five models on hand-worked paths (kpis.md)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.attribution.models import STORED_MODELS, Touch, credit_touches

WON = datetime(2026, 5, 20, 12, 0, tzinfo=timezone.utc)
LOOKBACK, HALF = timedelta(days=90), timedelta(days=7)


def touch(eid: str, days_before: float, channel: str = "x") -> Touch:
    return Touch(eid, WON - timedelta(days=days_before), "ad_click", channel, "")


def credits(model, touches):
    return [(t.event_id, round(c, 12)) for t, c in credit_touches(model, touches, WON, lookback=LOOKBACK,
                                                                   half_life=HALF)]


def test_one_touch_gets_everything_in_every_model():
    for model in STORED_MODELS:
        assert credits(model, [touch("a", 3)]) == [("a", 1.0)]


def test_two_touches():
    ts = [touch("b", 7), touch("a", 14)]  # given out of order
    assert credits("first_touch", ts) == [("a", 1.0), ("b", 0.0)]
    assert credits("last_touch", ts) == [("a", 0.0), ("b", 1.0)]
    assert credits("linear", ts) == [("a", 0.5), ("b", 0.5)]
    assert credits("position_based", ts) == [("a", 0.5), ("b", 0.5)]
    # weights 2^-2 and 2^-1 -> 1/3 and 2/3
    assert credits("time_decay", ts) == [("a", round(1 / 3, 12)), ("b", round(2 / 3, 12))]


def test_three_touches():
    ts = [touch("a", 14), touch("b", 7), touch("c", 0)]
    assert credits("linear", ts) == [(e, round(1 / 3, 12)) for e in "abc"]
    assert credits("position_based", ts) == [("a", 0.4), ("b", 0.2), ("c", 0.4)]
    # weights 1/4, 1/2, 1 -> total 7/4
    assert credits("time_decay", ts) == [("a", round(1 / 7, 12)), ("b", round(2 / 7, 12)), ("c", round(4 / 7, 12))]


def test_five_touches_position_based_and_decay():
    ts = [touch(e, d) for e, d in zip("abcde", (28, 21, 14, 7, 0))]
    assert credits("position_based", ts) == [("a", 0.4), ("b", round(0.2 / 3, 12)), ("c", round(0.2 / 3, 12)),
                                             ("d", round(0.2 / 3, 12)), ("e", 0.4)]
    total = 1 / 16 + 1 / 8 + 1 / 4 + 1 / 2 + 1
    assert credits("time_decay", ts) == [(e, round(w / total, 12)) for e, w in zip("abcde", (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1))]
    assert credits("first_touch", ts)[0] == ("a", 1.0) and credits("last_touch", ts)[-1] == ("e", 1.0)


def test_ties_are_broken_by_event_id():
    ts = [touch("z", 5), touch("m", 5), touch("a", 5)]
    assert [e for e, _ in credits("first_touch", ts)] == ["a", "m", "z"]
    assert credits("first_touch", ts)[0] == ("a", 1.0)
    assert credits("last_touch", ts)[-1] == ("z", 1.0)


def test_window_edges_and_touches_outside():
    ts = [touch("old", 90.0001), touch("edge", 90), touch("at-won", 0), touch("after", -0.001)]
    assert credits("linear", ts) == [("edge", 0.5), ("at-won", 0.5)]


def test_no_eligible_touch_gives_nothing_to_credit():
    assert credits("linear", []) == []
    assert credits("time_decay", [touch("old", 200)]) == []


def test_unknown_model_is_an_error():
    with pytest.raises(ValueError, match="unknown attribution model"):
        credit_touches("shapley", [touch("a", 1)], WON, lookback=LOOKBACK, half_life=HALF)
