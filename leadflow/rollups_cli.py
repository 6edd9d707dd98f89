"""`leadflow rollups status|rebuild`: the stored KPI rollups (services/rollup/)."""
from __future__ import annotations

import argparse
import sys
import time


def add_rollups_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("rollups", help="stored KPI rollups: status, or rebuild them from the facts")
    p.add_argument("action", choices=("status", "rebuild"),
                   help="status: what is stored and whether it is current; rebuild: recompute every item "
                        "from the facts (after a settings change or an erasure; stop the pipeline first)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    return p


def status(client, settings) -> dict:
    from services.rollup import refresh as rollups

    out: dict = {
        "current": rollups.current(client, settings),
        "pending_entities": int(client.query(
            "SELECT count() FROM (SELECT entity FROM rollup_queue GROUP BY entity "
            "HAVING argMax(done, version) = 0)").result_rows[0][0]),
        "groupings": {},
    }
    for grouping in rollups.groupings():
        tables = [t for (t,) in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {p:String}) "
            "AND engine LIKE '%MergeTree' ORDER BY name", parameters={"p": f"rollup_{grouping}"}).result_rows]
        out["groupings"][grouping] = {t: int(client.query(f"SELECT count() FROM {t}").result_rows[0][0]) for t in tables}
    return out


def cmd_rollups(args: argparse.Namespace) -> int:
    from leadflow import warehouse
    from leadflow.cli import settings_from
    from services.rollup.stage import rebuild_now

    settings = settings_from(args)
    client = warehouse.open_warehouse(settings)
    if args.action == "rebuild":
        started = time.monotonic()
        written = rebuild_now(client, settings, progress=lambda g, done, total: print(
            f"rollups: {g} {done:,}/{total:,} entities", file=sys.stderr, flush=True))
        print(f"rebuilt in {time.monotonic() - started:.1f} s: "
              + ", ".join(f"{g} {n:,} rows written" for g, n in written.items()))
        return 0
    report = status(client, settings)
    if args.format == "json":
        import orjson

        print(orjson.dumps(report).decode())
        return 0
    print(f"current for these settings: {'yes' if report['current'] else 'no (KPI queries read the facts)'}")
    print(f"entities waiting for the rollup stage: {report['pending_entities']:,}")
    for grouping, tables in report["groupings"].items():
        for table, rows in tables.items():
            print(f"{grouping:<10} {table:<34} {rows:>12,} rows")
    return 0
