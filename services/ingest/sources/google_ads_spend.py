"""google-ads-spend: the Google Ads campaign report as CSV (Reports > download > CSV),
imported with `leadflow import google-ads-spend FILE`.

Two preamble lines (report name, date range), then the header `Day, Campaign, Campaign ID,
Currency code, Cost, ...` (Impr. and Clicks when present), one row per campaign and day;
numbers carry thousands separators ("1,234.56"); the `Total: ...` rows at the end are skipped.
"""
from __future__ import annotations

import csv

from services.ingest.sources.base import FileOptions, Mapping, SourceContext, Unmappable, count_int, decimal_text
from services.ingest.sources.spend import day, spend_event

NAME = "google-ads-spend"
REQUIRED = ("Day", "Campaign ID", "Currency code", "Cost")
IMPRESSIONS = ("Impr.", "Impressions")


def _header(lines: list[bytes]) -> tuple[int, list[str]]:
    for i, line in enumerate(lines[:10]):
        cells = [c.strip() for c in next(csv.reader([line.decode("utf-8-sig", "replace")]), [])]
        if all(name in cells for name in REQUIRED):
            return i, cells
    raise Unmappable("no header with Day, Campaign ID, Currency code and Cost in the first 10 lines")


def map_file(data: bytes, ctx: SourceContext, options: FileOptions) -> Mapping:
    out = Mapping()
    lines = data.splitlines()
    try:
        at, header = _header(lines)
    except Unmappable as exc:
        out.unmappable(data, str(exc))
        return out
    column = {name: i for i, name in enumerate(header)}
    impressions = next((column[n] for n in IMPRESSIONS if n in column), None)
    for number, line in enumerate(lines[at + 1:], start=at + 2):
        if not line.strip():
            continue
        try:
            cells = next(csv.reader([line.decode("utf-8")]))
            if cells and cells[0].strip().startswith("Total"):
                out.ignore(f"line {number}: a total row")
                continue
            if len(cells) < len(header):
                raise Unmappable(f"{len(cells)} cells, the header has {len(header)}")
            out.event(spend_event(
                NAME, ctx, options, campaign_id=cells[column["Campaign ID"]].strip(), on=day(cells[column["Day"]]),
                cost=decimal_text(cells[column["Cost"]], "Cost"), currency=cells[column["Currency code"]],
                impressions=count_int(cells[impressions], "Impr.") if impressions is not None else None,
                clicks=count_int(cells[column["Clicks"]], "Clicks") if "Clicks" in column else None,
                default_channel="search_ads"), line)
        except (Unmappable, UnicodeDecodeError, csv.Error) as exc:
            out.unmappable(line, f"line {number}: {exc}")
    return out
