"""Read latency of the marketing rollups (issue 18): channels and campaigns from their
rollups (services/rollup/sql/channels/kpis.sql, campaigns/kpis.sql) against the reference
SQL over facts, on a simulated fortnight, then on ~3 years of rollup days.

    python -m leadflow.bench.rollup_marketing [--years 3] [--campaign-copies 10] [--repeats 7]

1. The simulated fortnight (tests/simdata's size: 14 days, 150 visitors a day) is replayed
   through the pipeline, its rollups rebuilt; both paths are timed (median of --repeats).
2. The fortnight's rollup rows are copied back in time, a fortnight per copy, until the
   rollups hold --years of days (and --campaign-copies times its campaigns, each with its
   own touches), then merged as background merges would; the rollup path is timed again
   (the facts stay a fortnight: only the rollup read is measured). Prints JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from leadflow import warehouse
from leadflow.broker import EmbeddedBroker
from leadflow.config import load_settings
from services.attribution.kpis.query import compute_kpis
from services.rollup.refresh import rebuild

DAYS = 14
GROUPINGS = ("channels", "campaigns")
PERIODS = {"all_time": (None, None), "one_month": (date(2026, 5, 1), date(2026, 6, 1))}


def timed(client, settings, grouping: str, source: str, period, repeats: int) -> dict:
    times, rows = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        rows = compute_kpis(client, settings, grouping, source=source, date_from=period[0], date_to=period[1])
        times.append(time.perf_counter() - started)
    return {"median_ms": round(statistics.median(times) * 1000, 1), "rows": len(rows)}


def measure(client, settings, sources, repeats: int) -> dict:
    return {f"{g} {p} {s}": timed(client, settings, g, s, PERIODS[p], repeats)
            for g in GROUPINGS for p in PERIODS for s in sources}


def widen(client, years: float, campaign_copies: int) -> dict:
    """Copies of the fortnight's rollup rows, earlier by a fortnight each; campaigns copied
    under new ids (suffix ~k) with their touches."""
    copies = int(years * 365 / DAYS)
    for table, key in (("rollup_channels", None), ("rollup_campaigns", "campaign_id"),
                       ("rollup_campaign_channels", "campaign_id")):
        cols = [c for (c,) in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
            "ORDER BY position", parameters={"t": table}).result_rows]
        exprs = []
        for c in cols:
            if c == "day":
                exprs.append(f"day - toInt32(k.1 * {DAYS}) AS day")
            elif c == key:
                exprs.append(f"if(k.2 = 0, {c}, concat({c}, '~', toString(k.2))) AS {c}")
            elif c == "touches":
                exprs.append("(arrayMap(x -> concat(x, '~', toString(k.2)), touches.1), touches.2) AS touches")
            else:
                exprs.append(c)
        pairs = f"arrayJoin(arrayFilter(p -> p != (0, 0), arrayFlatten(arrayMap(i -> arrayMap(j -> (i, j), " \
                f"range({campaign_copies if key else 1})), range({copies + 1})))))"
        client.command(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
                       f"FROM (SELECT *, {pairs} AS k FROM {table})")
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    return {t: client.query(f"SELECT count(), uniqExact(day) FROM {t}").result_rows[0]
            for t in ("rollup_channels", "rollup_campaigns", "rollup_campaign_channels")}


def run(workdir: Path, years: float, campaign_copies: int, repeats: int, log=print) -> dict:
    from leadflow.replay import replay
    from leadflow.simulator import SimulationConfig, write_jsonl

    path = workdir / "sim.jsonl"
    write_jsonl(SimulationConfig(days=DAYS, seed=11, start=date(2026, 5, 1), visitors_per_day=150), path)
    with EmbeddedBroker() as broker:
        settings = load_settings(kafka_bootstrap=broker.bootstrap, warehouse_dir=workdir / "chdb",
                                 clickhouse_database="bench_rollup", topic_prefix="bench-rollup",
                                 batch_max_seconds=0.1)
        log("replaying the simulated fortnight ...")
        asyncio.run(replay(settings, [path], show_progress=False))
    client = warehouse.connect(settings)
    log("rebuilding the rollups ...")
    started = time.perf_counter()
    written = rebuild(client, settings, only=["channels"])
    out: dict = {"rebuild_s": round(time.perf_counter() - started, 2), "items_written": written}
    client.command("OPTIMIZE TABLE rollup_channels FINAL")
    client.command("OPTIMIZE TABLE rollup_campaigns FINAL")
    client.command("OPTIMIZE TABLE rollup_campaign_channels FINAL")
    out["fortnight"] = measure(client, settings, ("facts", "rollups"), repeats)
    log(f"widening the rollups to {years} years ...")
    out["widened_rows_days"] = widen(client, years, campaign_copies)
    out["years"] = measure(client, settings, ("rollups",), repeats)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--campaign-copies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(Path(tmp), args.years, args.campaign_copies, args.repeats), indent=1))


if __name__ == "__main__":
    main()
