"""asterisk-cdr: Asterisk's Master.csv (cdr_csv), imported with `leadflow import asterisk-cdr FILE`.

No header; columns in cdr_csv's order: accountcode, src, dst, dcontext, clid, channel,
dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags,
then optionally uniqueid, userfield (18) and peeraccount, linkedid, sequence (21); 17 columns
is 16 plus uniqueid. Times are the PBX's local time without offset (`--timezone`, else the
adapter's `timezone`, else UTC). One call can leave several rows (a queue, a transfer, each
dialled phone): rows with the same linkedid (else uniqueid) are one call.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.ingest.sources.base import FileOptions, Mapping, SourceContext, Unmappable, event_id, identity, iso

NAME = "asterisk-cdr"
COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
           "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
OPTIONAL = ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")
WIDTHS = (16, 17, 18, 21)
OUTCOMES = {"ANSWERED": "answered", "BUSY": "busy", "FAILED": "failed", "CONGESTION": "failed",
            "NO ANSWER": "missed"}
RANK = ("answered", "busy", "failed", "missed")  # a call with one answered row was answered
EXTENSION = re.compile(r"^\d{2,5}$")  # an internal extension, not a customer's number
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
PEER = re.compile(r"^[^/]+/(?P<peer>.+?)(-[0-9a-f]+)?(;\d+)?$")


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_row(fields: list[str], tz: ZoneInfo) -> dict:
    if len(fields) not in WIDTHS:
        raise Unmappable(f"{len(fields)} columns; cdr_csv writes 16, 17, 18 or 21")
    row = dict(zip(COLUMNS + OPTIONAL, fields))
    for key in ("start", "answer", "end"):
        text = row[key].strip()
        if not text:
            row[key] = None
            continue
        try:  # fromisoformat: ~20x faster than strptime, which was most of an import's mapping time
            if not TIME.fullmatch(text):
                raise ValueError
            row[key] = datetime.fromisoformat(text).replace(tzinfo=tz)
        except ValueError:
            raise Unmappable(f"{key} is not a time like 2024-01-15 10:00:00: {text!r}") from None
    if row["start"] is None or row["end"] is None:
        raise Unmappable("start or end missing")
    if row["disposition"] not in OUTCOMES:
        raise Unmappable(f"unknown disposition {row['disposition']!r}")
    return row


def _peer(channel: str) -> str | None:
    match = PEER.match(channel or "")
    return match.group("peer") if match else None


def call_event(rows: list[dict], ctx: SourceContext) -> dict:
    first = min(rows, key=lambda r: r["start"])
    outcome = min((OUTCOMES[r["disposition"]] for r in rows), key=RANK.index)
    outbound = bool(EXTENSION.match(first["src"])) and not EXTENSION.match(first["dst"])
    customer = first["dst"] if outbound else first["src"]
    call = first.get("linkedid") or first.get("uniqueid")
    if not call:  # 16 columns: no id of Asterisk's, the row itself identifies the call
        call = "|".join((first["src"], first["dst"], first["channel"], first["start"].isoformat()))
    event = {
        "event_id": event_id(NAME, call),
        "type": "call_completed",
        "occurred_at": iso(max(r["end"] for r in rows)),
        "source": ctx.source,
        "identity": identity(phone=customer),
        "call_id": f"asterisk:{call}",
        "direction": "outbound" if outbound else "inbound",
        "started_at": iso(first["start"]),
        "ended_at": iso(max(r["end"] for r in rows)),
        "outcome": outcome,
    }
    if outcome == "answered":
        answered = min((r for r in rows if r["disposition"] == "ANSWERED" and r["answer"]), key=lambda r: r["answer"],
                       default=None)
        if answered is None:
            raise Unmappable("ANSWERED without an answer time")
        event["answered_at"] = iso(answered["answer"])
        operator = _peer(answered["channel"] if outbound else answered["dstchannel"])
        event["operator_id"] = operator or ctx.config.operator_id or "asterisk"
    queue = next((r["lastdata"].split(",")[0] for r in rows if r["lastapp"] == "Queue" and r["lastdata"]), None)
    if queue:
        event["queue"] = queue
    if not outbound and re.fullmatch(r"\+?\d{7,15}", first["dst"]):
        event["tracking_number"] = first["dst"]
    if ctx.config.campaign_id:
        event["campaign_id"] = ctx.config.campaign_id
    return event


def map_file(data: bytes, ctx: SourceContext, options: FileOptions) -> Mapping:
    out = Mapping()
    tz = zone(options.timezone or ctx.config.timezone)
    calls: dict[str, list[tuple[dict, bytes]]] = {}
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = next(csv.reader(io.StringIO(line.decode("utf-8"))))
            row = parse_row(fields, tz)
        except (Unmappable, UnicodeDecodeError, csv.Error, StopIteration) as exc:
            out.unmappable(line, f"line {number}: {exc}")
            continue
        key = row.get("linkedid") or row.get("uniqueid") or f"line:{number}"
        calls.setdefault(key, []).append((row, line))
    for parts in calls.values():
        raw = b"\n".join(line for _, line in parts)
        try:
            out.event(call_event([row for row, _ in parts], ctx), raw)
        except Unmappable as exc:
            out.unmappable(raw, str(exc))
    return out
