"""Query latency: the median time of each KPI grouping over a warehouse of N events
(7 runs each: this machine's timings vary by ~10% from run to run)."""
from __future__ import annotations

import statistics
import time

from leadflow import warehouse
from leadflow.config import Settings
from services.attribution.kpis.query import GROUPINGS, compute_kpis


def measure_queries(settings: Settings, repeats: int = 7, model: str = "linear") -> dict:
    client = warehouse.open_warehouse(settings)  # a kept warehouse may predate a migration the SQL needs
    events = client.query("SELECT count() FROM raw_events").result_rows[0][0]
    out: dict = {"events_in_warehouse": events}
    for grouping in GROUPINGS:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            rows = compute_kpis(client, settings, grouping, model=model)
            times.append(time.perf_counter() - started)
        out[grouping] = {"median_ms": round(statistics.median(times) * 1000, 1), "rows": len(rows)}
    return out
