"""The ad_spend event both spend reports map to (google-ads-spend, meta-ads-spend).

A report restates its figures: the same (campaign, day) comes again in the next export with
the final cost. The event_id holds the figures, so importing the same file twice gives
duplicates, while a restated row is a new event whose `occurred_at` (the file's time) is
later: the contract keeps the latest per (campaign_id, date).
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime

from services.ingest.sources.base import FileOptions, SourceContext, Unmappable, event_id, iso

DAY_FORMATS = ("%Y-%m-%d", "%b %d, %Y", "%d/%m/%Y", "%m/%d/%Y")


def day(text: str) -> date:
    for fmt in DAY_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise Unmappable(f"not a day: {text!r}")


def spend_event(adapter: str, ctx: SourceContext, options: FileOptions, *, campaign_id: str, on: date, cost: str,
                currency: str, impressions: int | None, clicks: int | None, default_channel: str) -> dict:
    if not campaign_id:
        raise Unmappable("campaign id missing")
    figures = f"{cost}|{currency}|{impressions}|{clicks}"
    event = {
        "event_id": event_id(adapter, campaign_id, on.isoformat(), hashlib.sha256(figures.encode()).hexdigest()[:16]),
        "type": "ad_spend",
        "occurred_at": iso(options.reported_at),
        "source": ctx.source,
        "campaign_id": campaign_id,
        "channel": ctx.config.channel or default_channel,
        "date": on.isoformat(),
        "cost": cost,
        "currency": currency.strip().upper(),
    }
    if impressions is not None:
        event["impressions"] = impressions
    if clicks is not None:
        event["clicks"] = clicks
    return event
