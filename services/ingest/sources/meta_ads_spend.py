"""meta-ads-spend: Meta Ads Insights rows at campaign level by day (level=campaign,
time_increment=1), as the API's JSON ({"data": [...]}, a list, or JSON Lines) or a CSV export
with the same column names; imported with `leadflow import meta-ads-spend FILE`.

Row fields: date_start, date_stop, campaign_id, campaign_name, spend (a string), account_currency,
optional impressions and clicks (strings too).
"""
from __future__ import annotations

import csv
import io

import orjson

from services.ingest.sources.base import FileOptions, Mapping, SourceContext, Unmappable, count_int, decimal_text
from services.ingest.sources.spend import day, spend_event

NAME = "meta-ads-spend"


def rows(data: bytes) -> list[tuple[dict | None, bytes]]:
    """(row, its original bytes) from JSON, JSON Lines or CSV; a row that cannot be read is None."""
    text = data.lstrip()
    if text.startswith((b"{", b"[")):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:  # JSON Lines: one row per line
            return [(_json_row(line), line) for line in text.splitlines() if line.strip()]
        items = doc.get("data", [doc]) if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            return [(None, data)]
        return [(item if isinstance(item, dict) else None, orjson.dumps(item)) for item in items]
    lines = data.decode("utf-8-sig", "replace").splitlines()
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    return [(row, lines[i + 1].encode()) for i, row in enumerate(reader)]


def _json_row(line: bytes) -> dict | None:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def map_file(data: bytes, ctx: SourceContext, options: FileOptions) -> Mapping:
    out = Mapping()
    for row, raw in rows(data):
        try:
            if row is None:
                raise Unmappable("not an Insights row (JSON object or CSV line)")
            if row.get("date_stop") and row.get("date_stop") != row.get("date_start"):
                raise Unmappable("a row over several days: export with time_increment=1")
            out.event(spend_event(
                NAME, ctx, options, campaign_id=str(row.get("campaign_id") or "").strip(),
                on=day(str(row.get("date_start") or "")), cost=decimal_text(row.get("spend"), "spend"),
                currency=str(row.get("account_currency") or ""),
                impressions=count_int(row.get("impressions"), "impressions"),
                clicks=count_int(row.get("clicks"), "clicks"), default_channel="social_ads"), raw)
        except Unmappable as exc:
            out.unmappable(raw, str(exc))
    return out
