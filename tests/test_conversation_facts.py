"""Conversation facts from a conversation's events, worked out by hand; any order gives the same row."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from leadflow.config import BusinessHours
from services.enrich.conversations import COLUMNS, ConvEvent, conversation_row
from services.enrich.hours import business_seconds

DAY = datetime(2026, 5, 1, tzinfo=timezone.utc)
ALWAYS = BusinessHours()


def at(h: int, m: int, s: float = 0) -> datetime:
    return DAY + timedelta(hours=h, minutes=m, seconds=s)


def ev(event_id, when, type_, **data):
    return ConvEvent(when, event_id, type_, {"event_id": event_id, "type": type_, **data})


def row(events, **kw):
    kw.setdefault("missed_after", timedelta(hours=24))
    kw.setdefault("hours", ALWAYS)
    return dict(zip(COLUMNS, conversation_row("conv-1", events, version=1, **kw)))


# a chat with two visitor turns, a bot reply, a transfer and a late close
CHAT = [
    ev("cs", at(10, 0), "conversation_started", channel="chat", initiated_by="visitor",
       identity={"visitor_id": "visitor_id:aa"}, campaign_id="camp"),
    ev("m1", at(10, 0, 5), "message", author="visitor"),
    ev("m2", at(10, 0, 10), "message", author="visitor"),
    ev("m3", at(10, 0, 12), "message", author="bot", template_id="bot-hi"),
    ev("m4", at(10, 0, 40), "message", author="operator", operator_id="op-a", template_id="t1"),
    ev("tr", at(10, 1), "conversation_transferred", from_operator_id="op-a", to_operator_id="op-b"),
    ev("m5", at(10, 2), "message", author="visitor"),
    ev("m6", at(10, 2, 30), "message", author="operator", operator_id="op-b"),
    ev("cc", at(10, 30), "conversation_closed", resolved=True),
]


def test_chat_with_turns_bot_transfer_and_late_close():
    r = row(CHAT)
    assert r["started"] == 1 and r["started_event_id"] == "cs" and r["identity_key"] == "visitor_id:aa"
    assert (r["channel"], r["initiated_by"], r["campaign_id"]) == ("chat", "visitor", "camp")
    assert r["visitor_messages"] == 3
    assert (r["first_visitor_at"], r["last_visitor_at"]) == (at(10, 0, 5), at(10, 2))
    # first human reply: m4 at 10:00:40, 35 s after the first visitor message (the bot does not count)
    assert (r["first_reply_at"], r["first_reply_operator"], r["frt_s"], r["frt_business_s"]) == (
        at(10, 0, 40), "op-a", 35.0, 35.0)
    # turn 1 (m1+m2) answered by the bot after 7 s; turn 2 (m5) by op-b after 30 s
    assert r["turns"] == [(at(10, 0, 5), 7.0, "bot", ""), (at(10, 2), 30.0, "operator", "op-b")]
    assert r["first_any_reply_at"] == at(10, 0, 12)
    assert (r["closed_at"], r["resolved"], r["missed_deadline"]) == (at(10, 30), 1, at(10, 30))
    assert r["transfers"] == [(at(10, 1), "op-a", "op-b")]
    assert r["operators"] == [("op-a", 1, 1, at(10, 0, 40), at(10, 0, 40)), ("op-b", 1, 0, at(10, 2, 30), at(10, 2, 30))]
    assert (r["last_operator"], r["last_event_at"]) == ("op-b", at(10, 2, 30))


def test_any_delivery_order_gives_the_same_row():
    expected = row(CHAT)
    rng = random.Random(7)
    for _ in range(300):
        shuffled = CHAT[:]
        rng.shuffle(shuffled)
        assert row(shuffled) == expected


def test_missed_chat_closed_without_reply():
    r = row([ev("cs", at(9, 0), "conversation_started", channel="chat", initiated_by="visitor",
                identity={"visitor_id": "visitor_id:bb"}),
             ev("m1", at(9, 1), "message", author="visitor"),
             ev("cc", at(9, 5), "conversation_closed")])
    assert r["first_any_reply_at"] is None and r["frt_s"] is None and r["turns"] == []
    assert r["missed_deadline"] == at(9, 5) and r["resolved"] is None


def test_never_closed_deadline_is_last_visitor_message_plus_24h():
    r = row([ev("cs", at(9, 0), "conversation_started", channel="chat", initiated_by="visitor",
                identity={"visitor_id": "visitor_id:bb"}),
             ev("m1", at(9, 1), "message", author="visitor"),
             ev("m2", at(11, 0), "message", author="visitor")])
    assert r["missed_deadline"] == at(11, 0) + timedelta(hours=24)
    assert r["turns"] == [] and r["closed_at"] is None


def test_proactive_chat_has_no_frt_but_has_turns():
    r = row([ev("cs", at(9, 0), "conversation_started", channel="chat", initiated_by="operator",
                identity={"visitor_id": "visitor_id:cc"}),
             ev("m0", at(9, 0, 1), "message", author="operator", operator_id="op-a"),
             ev("m1", at(9, 0, 20), "message", author="visitor"),
             ev("m2", at(9, 0, 50), "message", author="operator", operator_id="op-a")])
    assert r["frt_s"] is None and r["first_reply_at"] is None
    assert r["turns"] == [(at(9, 0, 20), 30.0, "operator", "op-a")]
    assert r["first_any_reply_at"] == at(9, 0, 1)


def test_events_before_the_start_is_known_give_a_row_that_counts_nowhere():
    r = row([ev("m1", at(9, 1), "message", author="visitor")])
    assert r["started"] == 0 and r["started_at"] is None


def test_earliest_start_and_earliest_close_win():
    r = row([ev("cs2", at(9, 5), "conversation_started", channel="messenger", initiated_by="bot",
                identity={"visitor_id": "visitor_id:z"}),
             ev("cs1", at(9, 0), "conversation_started", channel="chat", initiated_by="visitor",
                identity={"visitor_id": "visitor_id:y"}),
             ev("c2", at(9, 30), "conversation_closed", resolved=True),
             ev("c1", at(9, 20), "conversation_closed", resolved=False)])
    assert (r["started_event_id"], r["channel"], r["identity_key"]) == ("cs1", "chat", "visitor_id:y")
    assert (r["closed_at"], r["resolved"]) == (at(9, 20), 0)


def test_business_seconds_skip_nights_and_weekends():
    hours = BusinessHours(timezone="Europe/Moscow", weekdays=(0, 1, 2, 3, 4), start_hour=9, end_hour=18)
    msk = timezone(timedelta(hours=3))
    friday = datetime(2026, 5, 1, 17, 59, 30, tzinfo=msk)  # a Friday
    monday = datetime(2026, 5, 4, 9, 0, 30, tzinfo=msk)
    assert business_seconds(friday, monday, hours) == 60.0
    assert business_seconds(datetime(2026, 5, 2, 10, 0, tzinfo=msk), datetime(2026, 5, 2, 12, 0, tzinfo=msk),
                            hours) == 0.0
    # naive values are UTC (as the warehouse returns them): 07:00-08:00 UTC = 10:00-11:00 Moscow, Monday
    assert business_seconds(datetime(2026, 5, 4, 7, 0), datetime(2026, 5, 4, 8, 0), hours) == 3600.0
    hours_row = row(CHAT, hours=BusinessHours(start_hour=10, end_hour=11, weekdays=(4,)))  # Friday 10-11 UTC
    assert hours_row["frt_business_s"] == 35.0
    hours_row = row(CHAT, hours=BusinessHours(start_hour=11, end_hour=12, weekdays=(4,)))
    assert hours_row["frt_business_s"] == 0.0
