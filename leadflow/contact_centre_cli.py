"""`leadflow kpis staffing` and `leadflow contacts` (contract v1.1 sections 3 and 4).

Registered by leadflow/cli.py (contacts) and leadflow/kpis_cli.py (the `staffing`
grouping of `kpis`). Output: a table for people, JSON (one array of objects with exactly the
contract's keys) or CSV.
"""
from __future__ import annotations

import argparse
from datetime import date, datetime, timezone
from typing import Any, Sequence

from services.attribution.kpis.contact_centre import (
    CONTACT_KEYS,
    DEFAULT_CONTACTS_LIMIT,
    STAFFING_KEYS,
    WEEKDAYS,
    contacts,
    staffing,
)
from services.attribution.kpis.format import FORMATS, NULL, _period, render_csv, render_json
from leadflow.table import render


class ContactCentreArgumentError(ValueError):
    """Unusable arguments argparse cannot see (leadflow.cli turns it into exit 2)."""


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {value!r}")
    return n


def add_contacts_parser(subparsers) -> argparse.ArgumentParser:
    from leadflow.kpis_cli import _date

    p = subparsers.add_parser(
        "contacts", help="list contacts (conversations, inbound calls) to drill down into a KPI",
        description="One row per conversation or inbound call started in [--from, --to) (UTC dates), "
                    "newest first (contract v1.1 section 4).",
    )
    p.add_argument("--channel", action="append", default=[], metavar="C", help="only this channel (repeatable)")
    p.add_argument("--operator", action="append", default=[], metavar="O",
                   help="only contacts this operator handled (repeatable)")
    p.add_argument("--missed", action="store_true", help="only missed contacts")
    p.add_argument("--from", dest="date_from", type=_date, metavar="YYYY-MM-DD", help="first day of the period")
    p.add_argument("--to", dest="date_to", type=_date, metavar="YYYY-MM-DD", help="day after the period (exclusive)")
    p.add_argument("--limit", type=_positive, default=DEFAULT_CONTACTS_LIMIT,
                   help=f"at most this many rows (default {DEFAULT_CONTACTS_LIMIT})")
    p.add_argument("--slowest", action="store_true", help="answered contacts, slowest first response first")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (people), json or csv")
    return p


def _check(args: argparse.Namespace, settings: Any, command: str) -> None:
    if args.date_from is not None and args.date_to is not None and args.date_from >= args.date_to:
        raise ContactCentreArgumentError(f"{command}: --from {args.date_from} must be before --to {args.date_to}")
    known = settings.conversation_channels
    for ch in args.channel or []:
        if ch not in known:
            raise ContactCentreArgumentError(f"{command}: unknown channel {ch!r}; one of {', '.join(known)}")


def _open(args: argparse.Namespace, command: str):
    from leadflow import warehouse
    from leadflow.cli import settings_from

    settings = settings_from(args)
    _check(args, settings, command)
    client = warehouse.connect(settings)
    warehouse.migrate(client)
    return settings, client


# --- staffing ----------------------------------------------------------------------------------

def _num(v: float | None, fmt: str) -> str:
    return NULL if v is None else format(v, fmt)


def render_staffing_table(rows: Sequence[dict], caption: str) -> str:
    if not rows:
        return f"{caption}\nno rows (is the warehouse empty? `leadflow replay FILE` fills it)"
    headers = ["channel", "day", "hour", "contacts/h", "AHT", "target", "SL", "agents needed", "observed", "gap"]
    body = [[r["channel"], WEEKDAYS[r["weekday"]], f"{r['hour']:02d}:00", _num(r["contacts_per_hour"], ",.2f"),
             NULL if r["aht_s"] is None else f"{r['aht_s']:,.0f} s", _num(r["target_s"], ",.0f") + " s",
             f"{r['service_level'] * 100:.0f}%", NULL if r["agents_needed"] is None else str(r["agents_needed"]),
             _num(r["agents_observed"], ",.2f"), NULL if r["gap"] is None else f"{r['gap']:+,.2f}"]
            for r in rows]
    right = [False, False, False] + [True] * 7
    note = ("agents needed: Erlang C, the fewest agents answering the share SL of contacts within the target; "
            "observed: operators seen handling that channel in that hour, on average; gap = needed - observed "
            "(positive: understaffed)")
    return "\n".join([caption, render(headers, body, right), note])


def cmd_staffing(args: argparse.Namespace) -> int:
    settings, client = _open(args, "leadflow kpis staffing")
    rows = staffing(client, settings, date_from=args.date_from, date_to=args.date_to, channels=args.channel or [])
    if args.format == "json":
        print(render_json(rows))
    elif args.format == "csv":
        print(render_csv(rows, STAFFING_KEYS))
    else:
        tz = settings.business_hours.timezone
        print(render_staffing_table(rows, f"staffing by hour of week ({tz}), {_period(args.date_from, args.date_to)}"))
    return 0


# --- contacts ----------------------------------------------------------------------------------

def _iso(t: datetime) -> str:
    t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def for_machines(rows: Sequence[dict]) -> list[dict]:
    """started_at as RFC 3339 UTC text (JSON and CSV)."""
    return [{**r, "started_at": _iso(r["started_at"])} for r in rows]


def render_contacts_table(rows: Sequence[dict], caption: str) -> str:
    if not rows:
        return f"{caption}\nno contacts"
    headers = ["contact", "kind", "channel", "started (UTC)", "operators", "first response", "missed",
               "transfers", "csat", "nps", "converted", "revenue"]
    body = [[r["contact_id"], r["kind"], r["channel"], _iso(r["started_at"])[:19].replace("T", " "),
             ", ".join(r["operators"]) or NULL,
             NULL if r["first_response_s"] is None else f"{r['first_response_s']:,.1f} s",
             "missed" if r["missed"] else "", str(r["transfers"]), _num(r["csat"], ".0f"), _num(r["nps"], ".0f"),
             "yes" if r["person_converted"] else "", f"{r['revenue']:,.2f}"] for r in rows]
    right = [False] * 5 + [True, False, True, True, True, False, True]
    return "\n".join([caption, render(headers, body, right)])


def cmd_contacts(args: argparse.Namespace) -> int:
    settings, client = _open(args, "leadflow contacts")
    rows = contacts(client, settings, date_from=args.date_from, date_to=args.date_to, channels=args.channel,
                    operators=args.operator, missed_only=args.missed, limit=args.limit,
                    order="slowest" if args.slowest else "recent")
    if args.format == "json":
        print(render_json(for_machines(rows)))
    elif args.format == "csv":
        print(render_csv([{**r, "operators": " ".join(r["operators"])} for r in for_machines(rows)], CONTACT_KEYS))
    else:
        what = "slowest answered first" if args.slowest else "newest first"
        filters = [f"channel {', '.join(args.channel)}"] if args.channel else []
        filters += [f"operator {', '.join(args.operator)}"] if args.operator else []
        filters += ["missed only"] if args.missed else []
        caption = ", ".join([f"contacts, {_period(args.date_from, args.date_to)}", *filters,
                             f"{what}, at most {args.limit}"])
        print(render_contacts_table(rows, caption))
    return 0

