"""A simulated business replayed once per test session through the whole
pipeline (embedded broker -> stages -> warehouse), for tests that only read it
(extra KPI queries, reports, dashboard panel SQL).

    settings, client = simulated_warehouse(broker, chdb_dir, tmp_path_factory)

The first caller replays; later callers (any module) get the same database.
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import date

from leadflow import warehouse
from leadflow.config import load_settings

SIM_DAYS = 14
SIM_VISITORS_PER_DAY = 150
SIM_SEED = 11
SIM_START = date(2026, 5, 1)
# a period inside the simulated fortnight, for filtered checks
SIM_PERIOD = (date(2026, 5, 4), date(2026, 5, 11))

_cache: dict[str, tuple] = {}


def simulated_warehouse(broker, chdb_dir, tmp_path_factory):
    if "sim" not in _cache:
        from leadflow.simulator import SimulationConfig, write_jsonl
        from leadflow.replay import replay

        tag = uuid.uuid4().hex[:6]
        settings = load_settings(
            kafka_bootstrap=broker.bootstrap, warehouse_dir=chdb_dir, clickhouse_database=f"sim_{tag}",
            topic_prefix=f"sim-{tag}", topic_partitions=3, batch_max_seconds=0.1, rollups=True,
        )
        path = tmp_path_factory.mktemp("simulated") / "sim.jsonl"
        counts = write_jsonl(SimulationConfig(days=SIM_DAYS, seed=SIM_SEED, start=SIM_START,
                                              visitors_per_day=SIM_VISITORS_PER_DAY), path)
        summary = asyncio.run(replay(settings, [path], show_progress=False))
        client = warehouse.connect(settings)
        fit_ltv(client)
        _cache["sim"] = (settings, path, counts, summary)
    settings, path, counts, summary = _cache["sim"]
    # a live client each time: a test that opened another chdb path in this process closed this one
    return settings, warehouse.connect(settings), path, counts, summary


def fit_ltv(client) -> None:
    """Store a predicted-LTV fit, as `leadflow run` does (the dashboards read the newest one)."""
    from services.attribution.kpis.ltv import predicted_ltv

    predicted_ltv(client)
