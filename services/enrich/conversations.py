"""One conversation's fact row, from all of its events (any delivery order).

Pure: the same set of events always gives the same row. Readings:
docs/kpi-readings.md C1-C2, D5, S2, S3, S5, O5.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from leadflow.config import BusinessHours
from services.enrich.hours import business_seconds

COLUMNS = [
    "conversation_id", "version", "started", "started_event_id", "identity_key", "started_at", "channel",
    "initiated_by", "campaign_id", "visitor_messages", "first_visitor_at", "last_visitor_at", "first_reply_at",
    "first_reply_operator", "frt_s", "frt_business_s", "first_any_reply_at", "closed_at", "resolved",
    "missed_deadline", "turns", "transfers", "operators", "last_operator", "last_event_at",
    # bots and hand-over (contract v1.1 section 4, migration 0028)
    "bot_messages", "first_operator_at", "first_operator", "handoff_bot_at",
]


@dataclass(frozen=True, slots=True)
class ConvEvent:
    """The fields of one event that matter for its conversation."""

    at: datetime
    event_id: str
    type: str
    data: dict[str, Any]

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.at, self.event_id)


def anchor_key(identity: dict[str, str] | None) -> str:
    """The identity value a fact row carries: any of the event's (all are one person)."""
    return min(identity.values()) if identity else ""


def conversation_row(conversation_id: str, events: list[ConvEvent], *, version: int, missed_after: timedelta,
                     hours: BusinessHours) -> tuple:
    events = sorted(events, key=lambda e: e.order)
    starts = [e for e in events if e.type == "conversation_started"]
    messages = [e for e in events if e.type == "message"]
    closes = [e for e in events if e.type == "conversation_closed"]
    transfers = [e for e in events if e.type == "conversation_transferred"]

    start = starts[0] if starts else None
    sd = start.data if start else {}
    initiated_by = sd.get("initiated_by", "")

    visitor = [m for m in messages if m.data["author"] == "visitor"]
    first_visitor = visitor[0].at if visitor else None
    last_visitor = visitor[-1].at if visitor else None

    first_reply_at, first_reply_op, frt_s, frt_b = None, "", None, None
    if initiated_by == "visitor" and visitor:
        first_idx = messages.index(visitor[0])
        reply = next((m for m in messages[first_idx + 1:] if m.data["author"] == "operator"), None)
        if reply is not None:
            first_reply_at, first_reply_op = reply.at, reply.data.get("operator_id", "")
            frt_s = (reply.at - visitor[0].at).total_seconds()
            frt_b = frt_s if hours.always else business_seconds(visitor[0].at, reply.at, hours)

    turns = []
    i = 0
    while i < len(messages):
        if messages[i].data["author"] != "visitor":
            i += 1
            continue
        turn_start = messages[i]
        while i < len(messages) and messages[i].data["author"] == "visitor":
            i += 1
        if i < len(messages):
            resp = messages[i]
            kind = resp.data["author"]
            turns.append((turn_start.at, (resp.at - turn_start.at).total_seconds(), kind,
                          resp.data.get("operator_id", "") if kind == "operator" else ""))

    replies = [m for m in messages if m.data["author"] in ("operator", "bot")]
    first_any_reply = replies[0].at if replies else None
    close = closes[0] if closes else None
    closed_at = close.at if close else None
    resolved = close.data.get("resolved") if close else None
    if closed_at is not None:
        deadline = closed_at
    elif last_visitor is not None:
        deadline = last_visitor + missed_after
    else:
        deadline = None

    per_op: dict[str, list] = {}
    last_operator = ""
    for m in messages:
        if m.data["author"] != "operator":
            continue
        op = m.data.get("operator_id", "")
        last_operator = op
        stats = per_op.setdefault(op, [op, 0, 0, m.at, m.at])
        stats[1] += 1
        stats[2] += 1 if m.data.get("template_id") is not None else 0
        stats[4] = m.at
    operators = [tuple(v) for _, v in sorted(per_op.items())]

    bot_messages, first_operator_at, first_operator, handoff_bot_at = bot_handoff(messages)

    timeline = [e.at for e in messages + transfers]
    last_event_at = max(timeline) if timeline else None

    return (
        conversation_id, version, 1 if start else 0, start.event_id if start else "",
        anchor_key(sd.get("identity")), start.at if start else None, sd.get("channel", ""), initiated_by,
        sd.get("campaign_id", ""), len(visitor), first_visitor, last_visitor, first_reply_at, first_reply_op,
        frt_s, frt_b, first_any_reply, closed_at, None if resolved is None else int(resolved), deadline, turns,
        [(t.at, t.data["from_operator_id"], t.data["to_operator_id"]) for t in transfers], operators,
        last_operator, last_event_at, bot_messages, first_operator_at, first_operator, handoff_bot_at,
    )


def bot_handoff(messages: list[ConvEvent]) -> tuple[int, datetime | None, str, datetime | None]:
    """Bot messages, the first operator message (time, operator) and the last bot message
    before it, in (t, id) order (docs/kpi-readings.md B1-B3)."""
    bots = sum(1 for m in messages if m.data["author"] == "bot")
    last_bot: datetime | None = None
    for m in messages:
        if m.data["author"] == "operator":
            return bots, m.at, m.data.get("operator_id", ""), last_bot
        if m.data["author"] == "bot":
            last_bot = m.at
    return bots, None, "", None
