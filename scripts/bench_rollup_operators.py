"""Time the operators KPIs from the rollup (services/rollup/sql/operators/kpis.sql) against the
reference over facts (services/attribution/kpis/sql/operators.sql), and the rollup alone when
it holds ~3 years of days. Prints medians in ms.

    .venv/bin/python scripts/bench_rollup_operators.py

The warehouse is the tests' simulated fortnight (tests/simdata.py's configuration), replayed
through the pipeline on an embedded broker into a temporary directory. The 3 years are its
items again, shifted by 14 days at a time (78 times), in a database of their own.
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leadflow import warehouse  # noqa: E402
from leadflow.broker import EmbeddedBroker  # noqa: E402
from leadflow.config import load_settings  # noqa: E402
from leadflow.replay import replay  # noqa: E402
from leadflow.simulator import SimulationConfig, write_jsonl  # noqa: E402
from services.attribution.kpis.query import kpi_parameters, load_sql  # noqa: E402
from services.rollup.refresh import kpis_sql, rebuild  # noqa: E402

SIM = dict(days=14, seed=11, start=date(2026, 5, 1), visitors_per_day=150)  # tests/simdata.py
COPIES = 79  # 79 x 14 days: 3 years
PERIODS = {"all time": (None, None), "one month": (date(2026, 5, 1), date(2026, 6, 1)),
           "one year": (date(2027, 1, 1), date(2028, 1, 1))}
# the item columns whose values are instants (the interval ends: ms * 4 + order)
SHIFTED = {"day": "day + {days}", "conc_b": "if(handled = 1, conc_b + {ms4}, 0)",
           "conc_e": "if(handled = 1, conc_e + {ms4}, 0)"}


def median_ms(client, sql: str, params: dict, runs: int = 15) -> float:
    used = {k: v for k, v in params.items() if "{" + k + ":" in sql}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.query(sql, parameters=used)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        settings = load_settings(kafka_bootstrap=broker.bootstrap, warehouse_dir=Path(tmp) / "chdb",
                                 clickhouse_database="bench_ops", topic_prefix="bench-ops", topic_partitions=3,
                                 batch_max_seconds=0.1, identity_secret="bench-rollup-operators-secret")
        path = Path(tmp) / "sim.jsonl"
        write_jsonl(SimulationConfig(**SIM), path)
        asyncio.run(replay(settings, [path], show_progress=False))
        client = warehouse.connect(settings)
        rebuild(client, settings, only=["operators"])
        reference, rollup = load_sql("operators"), kpis_sql("operators")
        print("simulated fortnight        reference ms   rollup ms")
        for name in ("all time", "one month"):
            params = kpi_parameters(settings, date_from=PERIODS[name][0], date_to=PERIODS[name][1])
            print(f"  {name:24} {median_ms(client, reference, params):12} {median_ms(client, rollup, params):11}")

        db = "bench_ops_3y"
        client.command(f"CREATE DATABASE {db}")
        for table in ("rollup_operators", "rollup_items_operators"):
            client.command(f"CREATE TABLE {db}.{table} AS bench_ops.{table}")
        mv = client.query("SELECT create_table_query FROM system.tables WHERE database = 'bench_ops' "
                          "AND name = 'rollup_operators_mv'").result_rows[0][0]
        client.command(mv.replace("bench_ops.", f"{db}."))
        columns = [n for (n,) in client.query(
            "SELECT name FROM system.columns WHERE database = 'bench_ops' AND table = 'rollup_items_operators' "
            "ORDER BY position").result_rows]
        for k in range(COPIES):
            exprs = [SHIFTED[c].format(days=14 * k, ms4=14 * k * 86_400_000 * 4) if c in SHIFTED
                     else f"concat(entity, '#{k}')" if c == "entity" else c for c in columns]
            client.command(f"INSERT INTO {db}.rollup_items_operators SELECT {', '.join(exprs)} "
                           "FROM bench_ops.rollup_items_operators")
        days, rows = client.query(f"SELECT uniqExact(day), count() FROM {db}.rollup_operators").result_rows[0]
        sql_3y = rollup.replace("FROM rollup_operators", f"FROM {db}.rollup_operators")
        print(f"rollup of {days} days ({rows} day x operator rows)   rollup ms")
        for name, (date_from, date_to) in PERIODS.items():
            params = kpi_parameters(settings, date_from=date_from, date_to=date_to)
            print(f"  {name:38} {median_ms(client, sql_3y, params):9}")


if __name__ == "__main__":
    main()
