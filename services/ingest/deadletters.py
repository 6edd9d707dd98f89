"""Reading dead letters back: `leadflow deadletters`."""
from __future__ import annotations

from leadflow import warehouse
from leadflow.config import Settings
from leadflow.table import render
from services.ingest.validate import describe_errors

PREVIEW_BYTES = 120


def list_dead_letters(settings: Settings, limit: int = 100) -> list[dict]:
    client = warehouse.open_warehouse(settings)
    result = client.query(
        "SELECT dead_letter_id, rejected_at, source, origin, event_id, event_type, error_kind, errors, raw_payload, "
        "raw_length, raw_sha256 "
        "FROM dead_letters FINAL ORDER BY rejected_at DESC, dead_letter_id LIMIT {limit:UInt32}",
        parameters={"limit": limit}, column_formats={"raw_payload": "bytes"},
    )
    rows = []
    for dl_id, at, source, origin, event_id, event_type, kind, errors, raw, raw_length, raw_sha256 in result.result_rows:
        rows.append({
            "dead_letter_id": dl_id,
            "rejected_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "source": source,
            "origin": origin,
            "event_id": event_id or None,
            "type": event_type or None,
            "error_kind": kind,
            "errors": [{"path": e["path"], "message": e["message"]} for e in errors],
            "raw": raw.decode("utf-8", "replace"),
            "raw_length": raw_length,  # of the whole original; `raw` keeps at most max_event_bytes of it
            "raw_sha256": raw_sha256,
        })
    return rows


def render_table(rows: list[dict]) -> str:
    if not rows:
        return "no dead letters"
    table = [
        [r["rejected_at"], r["source"], r["event_id"] or "-", r["type"] or "-",
         describe_errors((e["path"], e["message"]) for e in r["errors"])]
        for r in rows
    ]
    return render(["rejected_at", "source", "event_id", "type", "reasons"], table) + f"\n{len(rows)} dead letter(s)"
