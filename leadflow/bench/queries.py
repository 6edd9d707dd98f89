"""Query latency: the median time of each KPI grouping over a warehouse of N events
(7 runs each: this machine's timings vary by ~10% from run to run), read from the
rollups (what dashboards and reports read, services/rollup/) and from every fact (the
reference path), for all time and for one month; and the summaries: markov (its chain from the
rollups' transition counts and from every journey), ltv's customers (from the rollups' purchase
days and from every deal and payment) and staffing (no rollup yet).

`stretched_rollups` measures the rollups again over three years of days: a copy in a
scratch database where each day's rows are repeated on k consecutive days (k = 1,095 /
the days the data spans), so the rollups hold the days x groups of a three-year history
(with every day as full as the real ones: an upper bound of the rows). A rollup query
costs days x groups, not events.
"""
from __future__ import annotations

import re
import statistics
import time
from datetime import date, timedelta
from typing import Callable

from leadflow import warehouse
from leadflow.config import Settings
from services.attribution.kpis.query import GROUPINGS, compute_kpis
from services.rollup import refresh as rollups

STRETCH_DAYS = 1095  # three years


def _median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1), out


def last_month(client) -> tuple[date, date]:
    """The calendar month of the newest event: the 'one month' period."""
    newest = client.query("SELECT toDate(max(occurred_at)) FROM raw_events").result_rows[0][0]
    first = newest.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def measure_queries(settings: Settings, repeats: int = 7, model: str = "linear", progress=None) -> dict:
    client = warehouse.open_warehouse(settings)  # a kept warehouse may predate a migration the SQL needs
    from services.rollup.stage import ensure_current

    rebuilt_s = time.perf_counter()
    if ensure_current(client, settings, progress=progress):  # a warehouse replayed before the rollups existed
        rebuilt_s = round(time.perf_counter() - rebuilt_s, 1)
    else:
        rebuilt_s = None
    events = client.query("SELECT count() FROM raw_events").result_rows[0][0]
    month = last_month(client)
    out: dict = {"events_in_warehouse": events, "month": [month[0].isoformat(), month[1].isoformat()],
                 "rollups_rebuilt_s": rebuilt_s}
    for grouping in GROUPINGS:
        out[grouping] = {}
        for source in ("rollups", "facts"):
            for label, (date_from, date_to) in (("all", (None, None)), ("month", month)):
                ms, rows = _median_ms(lambda: compute_kpis(client, settings, grouping, model=model, source=source,
                                                           date_from=date_from, date_to=date_to), repeats)
                out[grouping][f"{source}_{label}_ms"] = ms
                out[grouping]["rows"] = len(rows)
        out[grouping]["median_ms"] = out[grouping]["rollups_all_ms"]  # what a dashboard waits for
    out["summaries"] = measure_summaries(client, settings, repeats, month)
    out["stretched"] = stretched_rollups(client, settings, repeats, model)
    return out


def measure_summaries(client, settings: Settings, repeats: int, month: tuple[date, date]) -> dict:
    """markov (the chain from the rollups' transition counts and from every journey), ltv's
    customers (from the rollups' purchase days and from every deal and payment) and staffing
    (computed when asked: no rollup)."""
    from services.attribution.kpis.contact_centre import staffing
    from services.attribution.kpis.ltv import customers
    from services.attribution.markov import chain

    out = {}
    out["markov_ms"], _ = _median_ms(lambda: chain(client, settings, source="rollups"), repeats)
    out["markov_facts_ms"], _ = _median_ms(lambda: chain(client, settings, source="facts"), repeats)
    out["ltv_customers_ms"], _ = _median_ms(lambda: customers(client, settings, source="rollups"), repeats)
    out["ltv_customers_facts_ms"], _ = _median_ms(lambda: customers(client, settings, source="facts"), repeats)
    out["staffing_month_ms"], _ = _median_ms(
        lambda: staffing(client, settings, date_from=month[0], date_to=month[1]), repeats)
    return out


# read only for the days a period cuts through; the stretched copy is timed for all time
NOT_STRETCHED = ("rollup_operator_points",)
DAY_MS4 = 4 * 86_400_000  # a day in the operators' interval-end points (ms * 4 + order, migration 0038)


def _stretched_column(column: str, columns: list[str], first: date, k: int) -> str:
    """One column of a stretched copy of a rollup table (row i of k copies): `day` moves to
    first + (day - first) * k + i; a table keyed by the points' day (`pday`, days since 1970)
    moves that way too, and its other days and its points by as many days as `pday` moved."""
    if "pday" not in columns:
        if column == "day":
            return f"toDate32(addDays(toDate32('{first}'), dateDiff('day', toDate32('{first}'), day) * {k} + i)) AS day"
        return column
    base = (first - date(1970, 1, 1)).days
    shift = f"((pday - {base}) * {k - 1} + i)"
    if column == "pday":
        return f"toInt32(pday + {shift}) AS pday"
    if column in ("day", "first_day", "last_day"):
        return f"toDate32(addDays({column}, {shift})) AS {column}"
    if column == "point":
        return f"point + {shift} * {DAY_MS4} AS point"
    return column


def stretched_rollups(client, settings: Settings, repeats: int, model: str) -> dict:
    """The rollup queries with the rollups' days spread over three years (see the module doc)."""
    database = settings.clickhouse_database
    scratch = f"{database}_stretched"
    first, span = client.query("SELECT toDate(min(occurred_at)), dateDiff('day', min(occurred_at), max(occurred_at)) + 1 "
                               "FROM raw_events").result_rows[0]
    k = max(1, -(-STRETCH_DAYS // span))
    client.command(f"DROP DATABASE IF EXISTS {scratch}")
    client.command(f"CREATE DATABASE {scratch}")
    try:
        tables = client.query(
            "SELECT name, engine, create_table_query FROM system.tables WHERE database = {d:String} "
            "AND NOT startsWith(name, '.inner')", parameters={"d": database}).result_rows
        days = None
        rollup_views = []
        for name, engine, create in tables:
            stored = (name.startswith("rollup_") and not name.startswith("rollup_items_")
                      and engine.endswith("MergeTree") and name not in NOT_STRETCHED)
            columns = [c for (c,) in client.query(
                "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String} "
                "ORDER BY position", parameters={"d": database, "t": name}).result_rows] if stored else []
            if "day" in columns or "pday" in columns:
                client.command(f"CREATE TABLE {scratch}.{name} AS {database}.{name}")
                select = ", ".join(_stretched_column(c, columns, first, k) for c in columns)
                client.command(f"INSERT INTO {scratch}.{name} SELECT {select} FROM {database}.{name} "
                               f"ARRAY JOIN range({k}) AS i")
                if days is None and "day" in columns and "pday" not in columns:
                    days = client.query(f"SELECT uniqExact(day) FROM {scratch}.{name}").result_rows[0][0]
            elif engine == "View" and (name.startswith("rollup_") or _PARAMETERIZED.search(create)):
                # over the stretched tables (a parameterized view cannot be read as SELECT *)
                rollup_views.append(create.replace(f"{database}.", f"{scratch}."))
            elif engine != "MaterializedView":
                client.command(f"CREATE VIEW {scratch}.{name} AS SELECT * FROM {database}.{name}")
        _create_in_order(client, rollup_views)
        stretched = warehouse.connect(settings.model_copy(update={"clickhouse_database": scratch}))
        out: dict = {"days": days}
        for grouping in GROUPINGS:
            out[f"{grouping}_ms"], _ = _median_ms(
                lambda: compute_kpis(stretched, settings, grouping, model=model, source="rollups"), repeats)
        return out
    finally:
        client.command(f"DROP DATABASE IF EXISTS {scratch}")


_PARAMETERIZED = re.compile(r"\{\w+:\w")


def _create_in_order(client, creates: list[str]) -> None:
    """Create views that may read each other, each after those it reads (whatever the order)."""
    while creates:
        failed = []
        for create in creates:
            try:
                client.command(create)
            except Exception:  # reads a view not created yet: next round
                failed.append(create)
        if len(failed) == len(creates):
            client.command(failed[0])  # no progress: raise its error
        creates = failed


def render_queries(q: dict, target_ms: int) -> list[str]:
    lines = [f"KPI queries over {q['events_in_warehouse']:,} events, median of 7 (target <= {target_ms} ms), "
             f"rollups | facts, all time and month {q['month'][0]}..{q['month'][1]}:"]
    for g in GROUPINGS:
        r = q[g]
        lines.append(f"  {g:<10} rollups {r['rollups_all_ms']:>7.1f} / {r['rollups_month_ms']:>7.1f} ms   "
                     f"facts {r['facts_all_ms']:>7.1f} / {r['facts_month_ms']:>7.1f} ms   ({r['rows']} rows)")
    s = q.get("summaries") or {}
    if s:
        lines.append(f"  markov chain: rollups {s['markov_ms']:.0f} ms, facts {s.get('markov_facts_ms', 0):.0f} ms; "
                     f"ltv customers: rollups {s['ltv_customers_ms']:.0f} ms, "
                     f"facts {s.get('ltv_customers_facts_ms', 0):.0f} ms; "
                     f"no rollup: staffing (month) {s['staffing_month_ms']:.0f} ms")
    st = q.get("stretched")
    if st:
        lines.append(f"  rollups with the days stretched to three years ({st['days']} days): "
                     + ", ".join(f"{g} {st[f'{g}_ms']:.1f} ms" for g in GROUPINGS))
    if q.get("rollups_rebuilt_s"):
        lines.append(f"  (rollups rebuilt from the facts first: {q['rollups_rebuilt_s']} s)")
    return lines
