"""The commands of the main job (issue 5), registered by leadflow/cli.py:

    leadflow run       [--fresh] [--days N --visitors-per-day V --seed S] [--metrics-port P] [--no-progress]
    leadflow simulate  --out FILE [--days N --seed S --visitors-per-day V --start D]
    leadflow simulate  --live [--rate R] [--duration S] [--days N --seed S ...]
    leadflow report    [--out FILE] [--model M] [--from D] [--to D] [--print]
    leadflow grafana   build [--out DIR]
    leadflow grafana   push --url URL --token T [--folder TITLE]
"""
from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Callable

from services.attribution.models import MODELS


class CommandUsageError(ValueError):
    """Unusable arguments argparse cannot see: leadflow.cli turns it into exit 2 with one line."""


UsageError = CommandUsageError


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def add_parsers(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    from leadflow.run import RUN_DAYS, RUN_SEED, RUN_START, RUN_VISITORS_PER_DAY

    p = sub.add_parser("run", help="the main job: simulate a month, run the whole pipeline, print the report",
                       description="Simulate a month of the business, replay it through the embedded broker and "
                                   "every stage into the warehouse, write var/report.html and print the report. "
                                   "Serves Prometheus /metrics while it runs.")
    common(p)
    p.add_argument("--days", type=int, default=RUN_DAYS, help=f"days to simulate (default {RUN_DAYS})")
    p.add_argument("--visitors-per-day", type=int, default=RUN_VISITORS_PER_DAY,
                   help=f"traffic of the simulated shop (default {RUN_VISITORS_PER_DAY})")
    p.add_argument("--seed", type=int, default=RUN_SEED, help=f"simulation seed (default {RUN_SEED})")
    p.add_argument("--start", type=_date, default=RUN_START, help=f"first simulated day (default {RUN_START})")
    p.add_argument("--out-dir", metavar="DIR", default="var", help="where the simulated file and report.html go")
    p.add_argument("--metrics-port", type=_port, default=None,
                   help="port of /metrics (default 9464, or a free port when it is taken; 0 = a free port)")
    p.add_argument("--model", choices=MODELS, default="linear", help="attribution model of the report")
    p.add_argument("--fresh", action="store_true", help="delete the embedded warehouse first")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("simulate", help="write a simulated business as JSON Lines, or produce it live",
                       description="A deterministic simulated business in the event contract: same seed, same "
                                   "bytes. With --live, events go through ingest validation to the raw topic at "
                                   "--rate per second, with the pipeline running behind it.")
    common(p)
    p.add_argument("--out", metavar="FILE", help="JSON Lines file to write (required without --live)")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--visitors-per-day", type=int, default=300)
    p.add_argument("--start", type=_date, default=RUN_START)
    p.add_argument("--live", action="store_true", help="produce to the broker instead of writing a file")
    p.add_argument("--rate", type=float, default=50.0, help="--live: events per second (default 50)")
    p.add_argument("--duration", type=float, default=None, help="--live: stop after this many seconds")
    p.add_argument("--metrics-port", type=_port, default=None, help="--live: port of /metrics")

    p = sub.add_parser("report", help="write the self-contained HTML report (charts, no CDN)")
    common(p)
    p.add_argument("--out", metavar="FILE", default="var/report.html", help="HTML file (default var/report.html)")
    p.add_argument("--model", choices=MODELS, default="linear", help="attribution model (default linear)")
    p.add_argument("--from", dest="date_from", type=_date, metavar="YYYY-MM-DD", help="first day of the period")
    p.add_argument("--to", dest="date_to", type=_date, metavar="YYYY-MM-DD", help="day after the period")
    p.add_argument("--print", dest="print_terminal", action="store_true", help="also print the terminal report")

    p = sub.add_parser("grafana", help="Grafana dashboards as code: rebuild them, or upload them")
    p.add_argument("action", choices=["build", "push"])
    p.add_argument("--config", metavar="FILE", help="TOML configuration file (build: SLA targets, time zone)")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--out", metavar="DIR", default=None, help="build: dashboards directory "
                                                                "(default deploy/grafana/dashboards)")
    p.add_argument("--url", help="push: Grafana URL, e.g. http://localhost:3000")
    p.add_argument("--token", help="push: service account token (or GRAFANA_TOKEN)")
    p.add_argument("--folder", default="leadflow", help="push: folder title (default leadflow)")


def cmd_run(args: argparse.Namespace) -> int:
    from leadflow.cli import settings_from
    from leadflow.run import main_job

    if args.days < 1 or args.visitors_per_day < 0:
        raise UsageError("leadflow run: --days must be >= 1 and --visitors-per-day >= 0")
    settings = settings_from(args)
    return main_job(settings, days=args.days, visitors_per_day=args.visitors_per_day, seed=args.seed,
                    start=args.start, out_dir=Path(args.out_dir), metrics_port=args.metrics_port,
                    fresh=args.fresh, show_progress=not args.no_progress, model=args.model)


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from leadflow.cli import settings_from
    from leadflow.run import render_counts, simulate_to_file, simulation_config

    try:
        cfg = simulation_config(args.days, args.visitors_per_day, args.seed, args.start)
    except ValueError as exc:
        raise UsageError(f"leadflow simulate: {exc}") from None
    if args.live:
        if args.rate <= 0:
            raise UsageError("leadflow simulate: --rate must be > 0")
        from leadflow.run import live

        settings = settings_from(args)
        result = asyncio.run(live(settings, cfg, args.rate, duration_s=args.duration,
                                  metrics_port=args.metrics_port))
        print(json.dumps(result))
        return 0
    if not args.out:
        raise UsageError("leadflow simulate: --out FILE is required (or --live)")
    out = Path(args.out)
    try:
        counts = simulate_to_file(cfg, out)
    except OSError as exc:
        raise UsageError(f"leadflow simulate: cannot write {out}: {exc.strerror or exc}") from None
    print(render_counts(counts, out))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from leadflow import warehouse
    from leadflow.cli import settings_from
    from leadflow.report import collect, render_terminal, write_html

    if args.date_from and args.date_to and args.date_from >= args.date_to:
        raise UsageError(f"leadflow report: empty period: --from {args.date_from} is not before --to {args.date_to}")
    settings = settings_from(args)
    client = warehouse.connect(settings)
    warehouse.migrate(client)
    data = collect(client, settings, model=args.model, date_from=args.date_from, date_to=args.date_to)
    path = write_html(data, args.out).resolve()
    if args.print_terminal:
        print(render_terminal(data, html_path=str(path)))
    else:
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB; {data.period_label}, model {data.model})")
    return 0


def cmd_grafana(args: argparse.Namespace) -> int:
    import os

    from leadflow import grafana
    from leadflow.cli import settings_from

    if args.action == "build":
        settings = settings_from(args)
        out = Path(args.out) if args.out else grafana.DASHBOARDS_DIR
        for path in grafana.write_dashboards(out, settings):
            print(path)
        return 0
    token = args.token or os.environ.get("GRAFANA_TOKEN")
    if not args.url or not token:
        raise UsageError("leadflow grafana push: --url and --token (or GRAFANA_TOKEN) are required")
    for line in grafana.push(args.url, token, folder_title=args.folder):
        print(line)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "simulate": cmd_simulate, "report": cmd_report, "grafana": cmd_grafana,
}
