"""`leadflow kpis {channels|campaigns|operators|service}` (cli.md), and of contract v1.1
`leadflow kpis markov` (the chain behind the markov model) and `leadflow kpis ltv`
(predicted lifetime value by first-touch channel).

Registered by leadflow/cli.py: `add_kpis_parser(subparsers)` adds the command
(the caller adds the common --config/--warehouse/--debug options) and
`cmd_kpis(args)` runs it. Unusable arguments (bad grouping, model, format or
date, an empty period) exit 2 with one line, like every leadflow command.
"""
from __future__ import annotations

import argparse
import re
from datetime import date

from services.attribution.kpis.format import FORMATS, render_ltv, render_markov, render_rows
from services.attribution.kpis.query import DEFAULT_MODEL, GROUPINGS, MODELS, OUTPUT_KEYS

SUMMARIES = ("markov", "ltv")  # contract v1.1: whole-warehouse views beside the groupings


STAFFING_GROUPING = ("staffing",)  # contract v1.1 section 3: contact_centre_cli.cmd_staffing


class KpiArgumentError(ValueError):
    """Unusable arguments that argparse cannot see (leadflow.cli turns it into exit 2)."""


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: str) -> date:
    try:
        if not _DATE.match(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def add_kpis_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "kpis", help="print the KPIs of kpis.md by channel, campaign, operator or conversation channel",
        description="KPIs of kpis.md over the period [--from, --to) of UTC dates (default: all time).",
    )
    p.add_argument("grouping", choices=GROUPINGS + SUMMARIES + STAFFING_GROUPING,
                   help="rows: touch channel, campaign, operator or conversation channel; markov: the chain's "
                        "removal effects; ltv: predicted lifetime value by first-touch channel; "
                        "staffing: channel x hour of week (Erlang C)")
    p.add_argument("--from", dest="date_from", type=_date, metavar="YYYY-MM-DD", help="first day of the period")
    p.add_argument("--to", dest="date_to", type=_date, metavar="YYYY-MM-DD",
                   help="day after the period (exclusive)")
    p.add_argument("--model", choices=MODELS, default=DEFAULT_MODEL,
                   help=f"attribution model of conversions and revenue (default {DEFAULT_MODEL})")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (people), json or csv")
    p.add_argument("--source", choices=("auto", "rollups", "facts"), default="auto",
                   help="read the stored rollups, recompute from every fact (the reference path), or "
                        "auto: the rollups when they can answer (default)")
    p.add_argument("--channel", action="append", default=[], metavar="C",
                   help="staffing: only this conversation channel (repeatable)")
    p.add_argument("--horizon-days", type=_positive_days, default=None, metavar="N",
                   help="ltv: days ahead the prediction covers (default 365)")
    p.add_argument("--by", choices=("channel", "campaign"), default=None,
                   help="ltv: rows per first-touch channel (default) or first-touch campaign")
    return p


def _positive_days(value: str) -> int:
    try:
        days = int(value)
        if not 1 <= days <= 36500:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days from 1 to 36500: {value!r}") from None
    return days


def _summary(args: argparse.Namespace, client, settings) -> str:
    """`kpis markov` and `kpis ltv` (contract v1.1 sections 1 and 2)."""
    if args.date_from is not None:
        raise KpiArgumentError(f"leadflow kpis {args.grouping}: --from does not apply "
                               f"({'journeys are taken over all time' if args.grouping == 'markov' else 'use --to'})")
    if args.grouping == "markov":
        if args.date_to is not None:
            raise KpiArgumentError("leadflow kpis markov: --to does not apply (journeys are taken over all time)")
        from services.attribution.markov import chain

        return render_markov(chain(client, settings, source=args.source), args.format)
    from services.attribution.kpis.ltv import DEFAULT_HORIZON_DAYS, predicted_ltv

    horizon = args.horizon_days or DEFAULT_HORIZON_DAYS
    by = args.by or "channel"
    return render_ltv(predicted_ltv(client, settings, date_to=args.date_to, horizon_days=horizon, by=by,
                                    source=args.source), args.format,
                      date_to=args.date_to, horizon_days=horizon, by=by)


def cmd_kpis(args: argparse.Namespace) -> int:
    from leadflow import warehouse
    from leadflow.cli import settings_from

    if args.channel and args.grouping not in STAFFING_GROUPING:
        raise KpiArgumentError("leadflow kpis: --channel applies to staffing only")
    if args.grouping in STAFFING_GROUPING:
        from leadflow.contact_centre_cli import ContactCentreArgumentError, cmd_staffing

        try:
            return cmd_staffing(args)
        except ContactCentreArgumentError as exc:
            raise KpiArgumentError(str(exc)) from None

    if args.date_from is not None and args.date_to is not None and args.date_from >= args.date_to:
        raise KpiArgumentError(f"leadflow kpis: --from {args.date_from} must be before --to {args.date_to}")
    if args.grouping != "ltv" and (args.horizon_days is not None or args.by is not None):
        raise KpiArgumentError("leadflow kpis: --horizon-days and --by apply to `kpis ltv` only")
    settings = settings_from(args)
    from services.attribution.kpis.query import compute_kpis

    client = warehouse.connect(settings)
    warehouse.migrate(client)
    if args.source == "rollups":  # a grouping, or the markov chain's counts, or ltv's purchase days
        from services.rollup.refresh import readable

        if not readable(client, settings, args.grouping):
            raise KpiArgumentError(f"leadflow kpis {args.grouping}: no current rollups (rollups off, or other "
                                   "settings: `leadflow rollups rebuild`)")
    if args.grouping in SUMMARIES:
        print(_summary(args, client, settings))
        return 0
    rows = compute_kpis(client, settings, args.grouping, model=args.model,
                        date_from=args.date_from, date_to=args.date_to, source=args.source)
    print(render_rows(rows, args.grouping, OUTPUT_KEYS[args.grouping], args.format,
                      model=args.model, date_from=args.date_from, date_to=args.date_to))
    return 0
