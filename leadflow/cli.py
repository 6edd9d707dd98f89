"""The `leadflow` command line (contract: docs/contract/cli.md).

Unusable arguments exit 2 with one readable line; runtime failures exit 1 with
one line (add `--debug` for the traceback).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

from leadflow.config import ConfigError, Settings, load_settings

SAMPLE_FILE = Path(__file__).resolve().parent / "samples" / "sample.jsonl"


class UsageError(Exception):
    """Bad arguments: exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, no usage dump
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML configuration file")
    p.add_argument("--warehouse", metavar="DIR", help="embedded warehouse directory (default ./var/warehouse)")
    p.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="leadflow", description="leadflow: lead-to-conversion pipeline")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("replay", help="run the pipeline over JSON Lines files, then exit")
    _common(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=["table", "json"], default="table", help="summary format")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("deadletters", help="list rejected events with their reasons, newest first")
    _common(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--limit", type=int, default=100)

    p = sub.add_parser("migrate", help="apply warehouse migrations")
    _common(p)

    p = sub.add_parser("serve", help="HTTP ingest (POST /v1/events) with the pipeline behind it")
    _common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--ingest-only", action="store_true",
                   help="only validate and produce (production: `leadflow worker` runs the stages)")
    p.add_argument("--no-auth", action="store_true",
                   help="accept requests without a write key (only on a loopback address)")
    p.add_argument("--processes", type=int, default=None,
                   help="with --ingest-only: ingest processes on the port (SO_REUSEPORT; default "
                        "ingest_processes, 1); about one per core")

    p = sub.add_parser("keys", help="write keys of HTTP ingest: create, list, revoke")
    keys = p.add_subparsers(dest="keys_action", required=True, parser_class=_Parser)
    k = keys.add_parser("create", help="create a key for a source; prints it once, on the last line")
    _common(k)
    k.add_argument("--source", required=True, help="the source of every event sent with the key")
    k.add_argument("--rate", type=float, default=None, help="quota in events per second (default key_default_rate)")
    k.add_argument("--burst", type=int, default=None, help="events allowed at once (default 2 s of the rate)")
    k = keys.add_parser("list", help="keys with their sources, quotas, creation and revocation (never the keys)")
    _common(k)
    k.add_argument("--format", choices=["table", "json"], default="table")
    k = keys.add_parser("revoke", help="revoke a key (ingest refuses it within seconds)")
    _common(k)
    k.add_argument("key_id")

    p = sub.add_parser("worker", help="run stages as consumer-group members against Kafka (production)")
    _common(p)
    p.add_argument("--stage", action="append", required=True,
                   choices=["warehouse-sink", "deadletter-sink", "enrich", "attribution", "rollup"],
                   help="a stage to run (repeat for several)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")

    from leadflow.commands import add_parsers as add_main_job_parsers

    add_main_job_parsers(sub, _common)  # run, simulate, report, grafana

    from leadflow.kpis_cli import add_kpis_parser

    _common(add_kpis_parser(sub))

    from leadflow.rollups_cli import add_rollups_parser

    _common(add_rollups_parser(sub))

    from leadflow.contact_centre_cli import add_contacts_parser

    _common(add_contacts_parser(sub))

    p = sub.add_parser("bench", help="throughput, freshness and query latency figures (make bench)")
    p.add_argument("--events", type=int, default=200_000, help="simulated lines for pipeline/ceiling")
    p.add_argument("--naive-events", type=int, default=20_000, help="lines for the per-event baseline")
    p.add_argument("--query-sizes", default="1000000", help="comma-separated warehouse sizes for query latency")
    p.add_argument("--fresh-seconds", type=float, default=60.0, help="live load duration (0 skips it)")
    p.add_argument("--rate", type=int, default=1000, help="live load events/s")
    p.add_argument("--workdir", default="var/bench", help="where data sets and warehouses are kept")
    p.add_argument("--out", default=None, help="JSON results file (default WORKDIR/bench-<commit>.json)")
    p.add_argument("--ingest", action="store_true",
                   help="only the HTTP ingest load figure (requests/s, p50/p99 with keys and quotas)")
    p.add_argument("--ingest-seconds", type=float, default=10.0, help="--ingest: seconds per load step")

    from services.ingest.sources.registry import FILE_ADAPTERS

    p = sub.add_parser("import", help="a vendor's export (CDR, spend report) through its adapter and the pipeline")
    _common(p)
    p.add_argument("adapter", choices=sorted(FILE_ADAPTERS), metavar="ADAPTER",
                   help="one of: " + ", ".join(sorted(FILE_ADAPTERS)))
    p.add_argument("file", metavar="FILE")
    p.add_argument("--timezone", metavar="TZ", help="zone of times without an offset (asterisk-cdr), e.g. Europe/Berlin")
    p.add_argument("--format", choices=["table", "json"], default="table", help="summary format")
    p.add_argument("--no-progress", action="store_true")

    # -- erasure (contract v1.1, section 5): leadflow forget ------------------------------
    p = sub.add_parser("forget", help="erase the person who holds an identity value; suppress their values")
    _common(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", metavar="E", help="an email of the person (compared trimmed, lower-cased)")
    who.add_argument("--phone", metavar="P", help="a phone of the person (any format ingest accepts)")
    who.add_argument("--crm-id", dest="crm_id", metavar="C", help="the person's CRM contact id")
    who.add_argument("--visitor-id", dest="visitor_id", metavar="V", help="a visitor (cookie) id of the person")
    p.add_argument("--format", choices=["table", "json"], default="table")

    p = sub.add_parser("schemas", help="JSON Schema of the event contract")
    p.add_argument("action", choices=["export"])
    p.add_argument("--out", metavar="DIR", default=None)
    return parser


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    from leadflow.secret_guard import check_identity_secret

    overrides: dict[str, Any] = dict(extra)
    if getattr(args, "warehouse", None):
        overrides["warehouse_dir"] = Path(args.warehouse)
    settings = load_settings(getattr(args, "config", None), **overrides)
    check_identity_secret(settings)
    return settings


def cmd_replay(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            raise UsageError(f"leadflow replay: file not found: {f}")
    settings = settings_from(args)
    from leadflow.replay import replay

    summary = asyncio.run(replay(settings, files, show_progress=not args.no_progress))
    if args.format == "json":
        import orjson

        print(orjson.dumps(summary.as_dict()).decode())
    else:
        print(summary.render())
    return 0


def cmd_deadletters(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("leadflow deadletters: --limit must be at least 1")
    settings = settings_from(args)
    from services.ingest.deadletters import list_dead_letters, render_table

    rows = list_dead_letters(settings, limit=args.limit)
    if args.format == "json":
        import orjson

        print(orjson.dumps(rows).decode())
    else:
        print(render_table(rows))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from leadflow import warehouse

    settings = settings_from(args)
    client = warehouse.connect(settings)
    applied = warehouse.migrate(client)
    warehouse.apply_retention(client, settings.deadletter_retention_days)
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.path.name}" for m in applied))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    extra = {k: v for k, v in (("http_host", args.host), ("http_port", args.port)) if v is not None}
    settings = settings_from(args, **extra)
    import uvloop

    from leadflow.serve import serve

    from services.ingest.http import is_loopback

    if args.ingest_only and not settings.kafka_bootstrap:
        raise UsageError("leadflow serve: --ingest-only needs LEADFLOW_KAFKA_BOOTSTRAP (workers must share the broker)")
    if args.no_auth:
        if not is_loopback(settings.http_host):
            raise UsageError(f"leadflow serve: --no-auth is allowed only on a loopback address, not {settings.http_host}")
        print(f"leadflow serve: WARNING: --no-auth: anyone who can reach {settings.http_host} may post events",
              file=sys.stderr, flush=True)
    processes = args.processes if args.processes is not None else settings.ingest_processes
    if not 1 <= processes <= 64:
        raise UsageError(f"leadflow serve: --processes must be between 1 and 64, not {processes}")
    if processes > 1:
        if not args.ingest_only:
            raise UsageError("leadflow serve: --processes needs --ingest-only (the embedded stages run in one process)")
        from leadflow.serve_processes import serve_processes

        serve_processes(settings, processes, auth=not args.no_auth)
        return 0
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, ingest_only=args.ingest_only, auth=not args.no_auth))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from leadflow import warehouse
    from services.ingest import keys

    settings = settings_from(args)
    client = warehouse.open_warehouse(settings)
    try:
        if args.keys_action == "create":
            rate = args.rate if args.rate is not None else settings.key_default_rate
            record, key = keys.create_key(client, args.source, rate, args.burst)
            print(f"created write key {record.key_id} for source {record.source} "
                  f"({record.rate:g} events/s, burst {record.burst}); it is shown only now:")
            print(key)
        elif args.keys_action == "revoke":
            record = keys.revoke_key(client, args.key_id)
            print(f"revoked write key {record.key_id} (source {record.source}); ingest refuses it within "
                  f"{settings.keys_refresh_s:g} s")
        else:
            rows = [k.as_dict() for k in keys.load_keys(client).values()]
            if args.format == "json":
                import orjson

                print(orjson.dumps(rows).decode())
            elif not rows:
                print("no write keys (`leadflow keys create --source NAME`)")
            else:
                from leadflow.table import render

                print(render(["key_id", "source", "rate", "burst", "created_at", "revoked_at"],
                             [[r["key_id"], r["source"], f"{r['rate']:g}", r["burst"], r["created_at"],
                               r["revoked_at"] or "-"] for r in rows]))
    except keys.KeyArgumentError as exc:
        raise UsageError(f"leadflow keys {args.keys_action}: {exc}") from None
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    from leadflow.worker import run_worker

    asyncio.run(run_worker(settings, tuple(dict.fromkeys(args.stage)), args.metrics_port))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from leadflow.commands import cmd_run as run  # simulate a month, replay it, report (leadflow/run.py)

    return _main_job(run)(args)


def _main_job(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    from leadflow.commands import CommandUsageError

    def call(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CommandUsageError as exc:
            raise UsageError(str(exc)) from None

    return call


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        sizes = [int(x) for x in args.query_sizes.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"leadflow bench: --query-sizes must be numbers: {args.query_sizes!r}") from None
    if args.events < 1000 or args.naive_events < 100 or args.rate < 1 or any(n < 1000 for n in sizes):
        raise UsageError("leadflow bench: --events >= 1000, --naive-events >= 100, --rate >= 1, sizes >= 1000")
    if args.ingest:
        from leadflow.bench.ingest import run_ingest_bench

        return run_ingest_bench(Path(args.workdir), args.ingest_seconds,
                                log=lambda msg: print(msg, file=sys.stderr, flush=True))
    from leadflow.bench.run import render_results, run_bench, save

    workdir = Path(args.workdir)
    results = run_bench(workdir, args.events, args.naive_events, sizes, args.fresh_seconds, args.rate,
                        log=lambda msg: print(msg, file=sys.stderr, flush=True))
    out = Path(args.out) if args.out else workdir / f"bench-{results['commit']}.json"
    save(results, out)
    print(render_results(results))
    print(f"\nfigures saved to {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"leadflow import: file not found: {path}")
    if args.timezone:
        try:
            ZoneInfo(args.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"leadflow import: unknown time zone {args.timezone!r} (e.g. Europe/Berlin)") from None
    settings = settings_from(args)
    from leadflow.importer import import_file

    summary = asyncio.run(import_file(settings, args.adapter, path, args.timezone, show_progress=not args.no_progress))
    if args.format == "json":
        import orjson

        print(orjson.dumps(summary.as_dict()).decode())
    else:
        print(summary.render())
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas import export_json_schemas

    out = Path(args.out) if args.out else Path(__file__).resolve().parents[1] / "schemas" / "jsonschema"
    for path in export_json_schemas(out):
        print(path)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from leadflow import warehouse
    from leadflow.privacy import IdentityHasher
    from services.erasure.forget import KINDS, ErasureError, forget, identity_key

    option = next(o for o in KINDS if getattr(args, o) is not None)
    settings = settings_from(args)
    try:  # a value that is not valid for its kind: exit 2 before touching the warehouse
        identity_key(option, getattr(args, option), IdentityHasher(settings.identity_secret))
    except ErasureError as exc:
        raise UsageError(f"leadflow forget: {exc}") from None
    report = forget(warehouse.open_warehouse(settings), settings, option, getattr(args, option),
                    on_step=lambda step: print(f"forget: {step}", file=sys.stderr, flush=True))
    if args.format == "json":
        import orjson

        print(orjson.dumps(report.as_dict()).decode())
    else:
        print(report.render())
    return 0


def cmd_kpis(args: argparse.Namespace) -> int:
    from leadflow.kpis_cli import KpiArgumentError, cmd_kpis as run

    try:
        return run(args)
    except KpiArgumentError as exc:
        raise UsageError(str(exc)) from None


def cmd_rollups(args: argparse.Namespace) -> int:
    from leadflow.rollups_cli import cmd_rollups as run

    return run(args)


def cmd_contacts(args: argparse.Namespace) -> int:
    from leadflow.contact_centre_cli import ContactCentreArgumentError, cmd_contacts as run

    try:
        return run(args)
    except ContactCentreArgumentError as exc:
        raise UsageError(str(exc)) from None


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "replay": cmd_replay, "deadletters": cmd_deadletters, "migrate": cmd_migrate, "serve": cmd_serve,
    "run": cmd_run, "schemas": cmd_schemas, "kpis": cmd_kpis, "bench": cmd_bench,
    "worker": cmd_worker, "import": cmd_import, "keys": cmd_keys, "forget": cmd_forget,
}
COMMANDS["contacts"] = cmd_contacts  # contract v1.1 section 4
COMMANDS["rollups"] = cmd_rollups  # issue 18
from leadflow.commands import COMMANDS as _MAIN_JOB_COMMANDS  # noqa: E402  simulate, report, grafana

COMMANDS.update({name: _main_job(fn) for name, fn in _MAIN_JOB_COMMANDS.items()})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from leadflow.secret_guard import install_log_redaction, redact

    install_log_redaction()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(redact(f"leadflow: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leadflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one readable line; the traceback only with --debug
        if debug:
            raise
        print(redact(f"leadflow: error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
