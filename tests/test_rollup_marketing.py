"""Rollups of the marketing groupings (issue 18): channels and campaigns read from the
rollups (services/rollup/sql/channels/, sql/campaigns/, migration 0033) equal the
reference SQL over facts (services/attribution/kpis/sql/channels.sql, campaigns.sql)
cell for cell, after a rebuild and after restatements refreshed the way the rollup
stage does, and a refresh run twice (a replay) changes nothing.

The simulated month (tests/simdata.py) is copied once into this module's own
database, so that the restatements (late events replayed through the real pipeline)
change nobody else's facts."""
from __future__ import annotations

import asyncio
import json
import math
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from leadflow import warehouse
from leadflow.config import load_settings
from services.attribution.kpis.query import compute_kpis
from services.attribution.models import STORED_MODELS
from services.rollup.refresh import item_parameters, rebuild, refresh
from tests.simdata import SIM_PERIOD, SIM_START, simulated_warehouse

GROUPINGS = ("channels", "campaigns")
PERIODS = [
    (None, None),  # all time
    (SIM_START, date(2026, 6, 1)),  # one month
    SIM_PERIOD,
    (date(2026, 5, 6), date(2026, 5, 7)),  # one day
    (date(2025, 1, 1), date(2025, 2, 1)),  # no data
]
UTC = timezone.utc


def copy_warehouse(src, src_db: str, dst) -> None:
    """Every fact table of `src_db` into the migrated database of `dst`, except the tables
    materialized views feed (the copy's inserts feed them again) and the rollups."""
    targets = set()
    for (query,) in src.query("SELECT create_table_query FROM system.tables WHERE database = {d:String} "
                              "AND engine = 'MaterializedView'", parameters={"d": src_db}).result_rows:
        m = re.search(r"\bTO\s+`?\w+`?\.`?(\w+)`?", query)
        if m:
            targets.add(m.group(1))
    tables = src.query("SELECT name FROM system.tables WHERE database = {d:String} AND engine LIKE '%MergeTree'",
                       parameters={"d": src_db}).result_rows
    dst_db = dst.database
    for (name,) in tables:
        if name in targets or name.startswith("rollup_") or name.startswith("schema_migrations"):
            continue
        dst.command(f"INSERT INTO `{dst_db}`.`{name}` SELECT * FROM `{src_db}`.`{name}`")


@pytest.fixture(scope="module")
def wh(broker, chdb_dir, tmp_path_factory):
    sim_settings, sim_client, _path, _counts, _summary = simulated_warehouse(broker, chdb_dir, tmp_path_factory)
    settings = load_settings(
        kafka_bootstrap=broker.bootstrap, warehouse_dir=chdb_dir,
        clickhouse_database=f"{sim_settings.clickhouse_database}_mkt", topic_prefix=f"{sim_settings.topic_prefix}-mkt",
        topic_partitions=3, batch_max_seconds=0.1, identity_secret=sim_settings.identity_secret,
    )
    client = warehouse.connect(settings)
    warehouse.migrate(client)
    copy_warehouse(sim_client, sim_settings.clickhouse_database, client)
    rebuild(client, settings, only=["channels"])
    return settings, client


def same(key: str, got, want) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, float) and isinstance(want, float) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return got == want and type(got) is type(want)


def differences(client, settings, periods=PERIODS, models=STORED_MODELS) -> tuple[int, list[str]]:
    cells, bad = 0, []
    for grouping in GROUPINGS:
        for model in models:
            for date_from, date_to in periods:
                kw = dict(model=model, date_from=date_from, date_to=date_to)
                want = compute_kpis(client, settings, grouping, **kw)
                got = compute_kpis(client, settings, grouping, source="rollups", **kw)
                where = f"{grouping} {model} {date_from}..{date_to}"
                if [tuple(r.items())[0] for r in got] != [tuple(r.items())[0] for r in want]:
                    bad.append(f"{where}: rows {[next(iter(r.values())) for r in got]} != "
                               f"{[next(iter(r.values())) for r in want]}")
                    continue
                for g, w in zip(got, want):
                    assert tuple(g) == tuple(w)
                    for k in w:
                        cells += 1
                        if not same(k, g[k], w[k]):
                            bad.append(f"{where} [{next(iter(w.values()))}].{k}: rollup {g[k]!r} != facts {w[k]!r}")
    return cells, bad


def test_rollups_equal_the_reference_after_rebuild(wh):
    settings, client = wh
    cells, bad = differences(client, settings)
    assert not bad, f"{len(bad)} of {cells} cells differ:\n" + "\n".join(bad[:40])
    assert cells > 1000

