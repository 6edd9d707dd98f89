"""Fact rows of single events: one builder per table (migration 0002).

Each builder takes a stored event (the raw-topic JSON: identity hashed, money
already in the reporting currency) and returns the row for its table.
Conversation rows need all of a conversation's events: see conversations.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

from services.enrich.conversations import anchor_key

Event = dict[str, Any]


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _click(e: Event) -> tuple:
    return (e["event_id"], anchor_key(e.get("identity")), ts(e["occurred_at"]), e["channel"], e["campaign_id"])


def _lead(e: Event) -> tuple:
    return (e["lead_id"], e["event_id"], anchor_key(e.get("identity")), ts(e["occurred_at"]), e["channel"],
            e.get("campaign_id") or "", e.get("form") or "")


def _deal(e: Event) -> tuple:
    return (e["deal_id"], e["event_id"], anchor_key(e.get("identity")), ts(e["occurred_at"]), Decimal(e["revenue"]))


def _payment(e: Event) -> tuple:
    return (e["payment_id"], e["event_id"], anchor_key(e.get("identity")), ts(e["occurred_at"]),
            Decimal(e["amount"]), e.get("deal_id") or "")


def _spend(e: Event) -> tuple:
    return (e["campaign_id"], date.fromisoformat(e["date"]), e["event_id"], ts(e["occurred_at"]), e["channel"],
            Decimal(e["cost"]), e.get("impressions"), e.get("clicks"))


def _call(e: Event) -> tuple:
    started, answered, ended = ts(e["started_at"]), ts(e.get("answered_at")), ts(e["ended_at"])
    wait = (answered - started).total_seconds() if answered else None
    talk = (ended - answered).total_seconds() if answered else None
    return (e["call_id"], e["event_id"], ts(e["occurred_at"]), anchor_key(e.get("identity")), e["direction"],
            e["outcome"], e.get("operator_id") or "", e.get("campaign_id") or "", e.get("tracking_number") or "",
            e.get("queue") or "", started, answered, ended, wait, talk)


def _survey(e: Event) -> tuple:
    return (e["event_id"], ts(e["occurred_at"]), e["survey"], e["score"], anchor_key(e.get("identity")),
            e.get("conversation_id") or "", e.get("call_id") or "", e.get("operator_id") or "")


@dataclass(frozen=True)
class FactTable:
    table: str
    columns: list[str]
    build: Callable[[Event], tuple]


FACT_TABLES: dict[str, FactTable] = {
    "ad_click": FactTable("clicks", ["event_id", "identity_key", "clicked_at", "channel", "campaign_id"], _click),
    "lead": FactTable("leads", ["lead_id", "event_id", "identity_key", "lead_at", "channel", "campaign_id", "form"],
                      _lead),
    "deal_won": FactTable("deals", ["deal_id", "event_id", "identity_key", "won_at", "revenue"], _deal),
    "payment": FactTable("payments", ["payment_id", "event_id", "identity_key", "paid_at", "amount", "deal_id"],
                         _payment),
    "ad_spend": FactTable("ad_spend", ["campaign_id", "date", "event_id", "occurred_at", "channel", "cost",
                                       "impressions", "clicks"], _spend),
    "call_completed": FactTable("calls", ["call_id", "event_id", "occurred_at", "identity_key", "direction",
                                          "outcome", "operator_id", "campaign_id", "tracking_number", "queue",
                                          "started_at", "answered_at", "ended_at", "wait_s", "talk_s"], _call),
    "survey_response": FactTable("surveys", ["event_id", "responded_at", "survey", "score", "identity_key",
                                             "conversation_id", "call_id", "operator_id"], _survey),
}

CONVERSATION_TYPES = {"conversation_started", "message", "conversation_transferred", "conversation_closed"}
# events that can change some conversion's credits (touches and conversions)
ATTRIBUTION_TYPES = {"ad_click", "lead", "conversation_started", "call_completed", "deal_won"}
# events that can change a person's profile (services/attribution/profiles.py): also payments (ltv)
PROFILE_TYPES = ATTRIBUTION_TYPES | {"payment"}
# facts read through a winner per id (the *_winners views): an id sent again may move to
# another identity value, so the people who held it before are recomputed too
WINNER_IDS = {"lead": "lead_id", "deal_won": "deal_id", "payment": "payment_id", "call_completed": "call_id"}
