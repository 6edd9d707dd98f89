"""Rollups (issue 18): the KPIs' partial results per day and group, stored and kept
current as facts change, so a dashboard reads days x groups instead of every fact.

Per grouping G, the folder `sql/G/` holds
  <kind>.sql  the item rows of the entities of one kind (KINDS): the ids to compute are in
              the temporary table `rollup_ids` (column `key`); the first column is `id`,
              then the columns of `rollup_items_G` after (entity, sign), in table order.
              Parameters: those of the reference query that are settings
              (`item_parameters`), never the period or "now": items are all-time and dated.
  kpis.sql    the grouping's KPIs read from `rollup_G`: the reference query's parameters
              and output columns (services/attribution/kpis/query.py).
and a migration creates `rollup_items_G` (entity String, sign Int8, ...: a signed log,
MergeTree ORDER BY entity) with materialized views from it into `rollup_G`
(AggregatingMergeTree by day and group).

An entity's current items are its rows whose net sign is not zero. `refresh` compares
them with the items computed now and writes the difference in one insert (-n for a row
gone, +1 for a row new): a restated deal, a moved touch, a late merge take the old
contribution out exactly. A retry reads the net again, so it writes only what the
failed attempt did not: a retry is a replay.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from leadflow import metrics
from leadflow.warehouse import insert_rows, stage_keys

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from leadflow.config import Settings

SQL_DIR = Path(__file__).resolve().parent / "sql"

# Entity kinds and how an id of each is written (services/rollup/dirty.py announces them).
KINDS = ("spend", "lead", "click", "deal", "person", "conversation", "call", "survey")
# Every id of a kind the facts hold now (a rebuild also revisits the ids stored in the items).
ALL_IDS = {
    "spend": "SELECT DISTINCT concat(campaign_id, '\t', toString(date)) FROM ad_spend",
    "lead": "SELECT DISTINCT lead_id FROM leads",
    "click": "SELECT DISTINCT concat(toString(channel), '\t', campaign_id) FROM clicks",
    "deal": "SELECT DISTINCT deal_id FROM attribution_credits",
    "person": "SELECT DISTINCT person_id FROM person_profiles",
    "conversation": "SELECT DISTINCT conversation_id FROM conversation_facts",
    "call": "SELECT DISTINCT call_id FROM calls",
    "survey": "SELECT DISTINCT event_id FROM surveys",
}
SKIPPED_COLUMNS = ("entity", "sign")


def groupings() -> tuple[str, ...]:
    """The groupings that have rollups (a folder under sql/ with a kpis.sql)."""
    return tuple(sorted(p.parent.name for p in SQL_DIR.glob("*/kpis.sql")))


def item_groupings() -> tuple[str, ...]:
    """The groupings with an item log of their own (campaigns reads the channels' items)."""
    return tuple(g for g in groupings() if any(item_sql(g, kind) for kind in KINDS))


@lru_cache(maxsize=None)
def item_sql(grouping: str, kind: str) -> str | None:
    path = SQL_DIR / grouping / f"{kind}.sql"
    return path.read_text(encoding="utf-8") if path.exists() else None


@lru_cache(maxsize=None)
def kpis_sql(grouping: str) -> str:
    return (SQL_DIR / grouping / "kpis.sql").read_text(encoding="utf-8")


def item_parameters(settings: "Settings") -> dict[str, Any]:
    """The parameters items are computed with: the reference's, without period, model and now."""
    from services.attribution.kpis.query import kpi_parameters

    params = kpi_parameters(settings)
    for key in ("date_from", "date_to", "model", "credits", "now"):
        params.pop(key, None)
    return params


@lru_cache(maxsize=1)
def _items_sql_digest() -> bytes:
    """The item SQL of every grouping, hashed once per process (it ships with the code)."""
    digest = hashlib.sha256()
    for path in sorted(SQL_DIR.glob("*/*.sql")):
        if path.name != "kpis.sql":
            digest.update(f"{path.parent.name}/{path.name}\0".encode() + path.read_bytes())
    return digest.digest()


def fingerprint(params: dict[str, Any]) -> str:
    """What the stored items depend on besides the facts: the settings and the item SQL of every
    grouping. Another value needs a rebuild (a new grouping, a changed item, another SLA)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(_items_sql_digest())
    return digest.hexdigest()[:16]


ITEMS_SETTING = "items"  # rollup_settings' row of the items' fingerprint (migration 0032)


def stored_fingerprint(client: "Client") -> str | None:
    rows = client.query("SELECT fingerprint FROM rollup_settings FINAL WHERE name = {n:String}",
                        parameters={"n": ITEMS_SETTING}).result_rows
    return rows[0][0] if rows else None


def readable(client: "Client", settings: "Settings", grouping: str, model: str = "linear") -> bool:
    """Whether the KPIs of this grouping can be read from the rollups: it has them and the
    items were computed with these settings. Every model can (markov's credits are summed
    from the markov chain when asked: `model_view`)."""
    if not getattr(settings, "rollups", False) or grouping not in groupings():
        return False  # off: nothing keeps them current
    return current(client, settings)


def current(client: "Client", settings: "Settings") -> bool:
    """Whether the stored items were computed with these settings and this item SQL."""
    return stored_fingerprint(client) == fingerprint(item_parameters(settings))


def refresh_all(client: "Client", ids: dict[str, Iterable[str]], params: dict[str, Any]) -> int:
    """Refresh these entities (kind -> ids) in every grouping with items; returns rows written."""
    return sum(refresh(client, grouping, kind, kind_ids, params)
               for grouping in item_groupings() for kind, kind_ids in sorted(ids.items()))


def model_view(grouping: str, model: str) -> str:
    """The rollup a model's KPI query reads, `{rollup:Identifier}` (migration 0037)."""
    return f"rollup_{grouping}_{model}"


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if "{" + k + ":" in sql}


_columns: dict[tuple[int, str], list[str]] = {}


def item_columns(client: "Client", grouping: str) -> list[str]:
    """The stored columns of rollup_items_G after (entity, sign), in table order (asked once per client)."""
    key = (id(client), grouping)
    if key not in _columns:
        _columns[key] = _item_columns(client, grouping)
    return _columns[key]


def _item_columns(client: "Client", grouping: str) -> list[str]:
    rows = client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position",
        parameters={"t": f"rollup_items_{grouping}"}).result_rows
    return [name for (name,) in rows if name not in SKIPPED_COLUMNS]


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def refresh(client: "Client", grouping: str, kind: str, ids: Iterable[str], params: dict[str, Any]) -> int:
    """Bring the stored items of these entities to what the facts say now. Returns rows written."""
    sql = item_sql(grouping, kind)
    ids = sorted(set(ids))
    if sql is None or not ids:
        return 0
    started = time.perf_counter()
    table = f"rollup_items_{grouping}"
    columns = item_columns(client, grouping)
    prefix = kind + ":"
    stage_keys(client, "rollup_ids", ids)
    stage_keys(client, "rollup_entities", [prefix + i for i in ids])
    cols = ", ".join(f"`{c}`" for c in columns)
    stored = client.query(
        f"SELECT entity, {cols}, sum(sign) AS n FROM {table} "
        f"WHERE entity IN (SELECT key FROM rollup_entities) GROUP BY entity, {cols} HAVING n != 0").result_rows
    new = client.query(sql, parameters=_used(sql, params)).result_rows
    old_count: Counter = Counter()
    old_rows: dict[Any, tuple] = {}
    for row in stored:
        key = _hashable(row[:-1])
        old_count[key] += row[-1]
        old_rows[key] = row[:-1]
    new_count: Counter = Counter()
    new_rows: dict[Any, tuple] = {}
    for row in new:
        full = (prefix + row[0],) + tuple(row[1:])
        key = _hashable(full)
        new_count[key] += 1
        new_rows[key] = full
    out = []
    for key in old_count.keys() | new_count.keys():
        delta = new_count.get(key, 0) - old_count.get(key, 0)
        if delta:
            row = new_rows.get(key) or old_rows[key]
            out.append((row[0], delta) + tuple(row[1:]))
    written = insert_rows(client, table, ["entity", "sign"] + columns, out)
    metrics.ROLLUP_REFRESH_SECONDS.labels(grouping=grouping, kind=kind).observe(time.perf_counter() - started)
    metrics.ROLLUP_ITEM_ROWS.labels(grouping=grouping).inc(written)
    return written


def stored_ids(client: "Client", grouping: str, kind: str) -> list[str]:
    prefix = kind + ":"
    rows = client.query(
        f"SELECT DISTINCT substring(entity, {len(prefix) + 1}) FROM rollup_items_{grouping} "
        "WHERE startsWith(entity, {p:String})", parameters={"p": prefix}).result_rows
    return [i for (i,) in rows]


def rebuild(client: "Client", settings: "Settings", *, only: Iterable[str] | None = None,
            chunk: int = 50_000, progress=None) -> dict[str, int]:
    """Reconcile every stored item with the facts (a new warehouse, changed settings,
    an erasure). Returns rows written per grouping."""
    params = item_parameters(settings)
    written: dict[str, int] = {}
    for grouping in (tuple(only) if only else item_groupings()):
        n = 0
        for kind in KINDS:
            if item_sql(grouping, kind) is None:
                continue
            ids = sorted({i for (i,) in client.query(ALL_IDS[kind]).result_rows} | set(stored_ids(client, grouping, kind)))
            for start in range(0, len(ids), chunk):
                n += refresh(client, grouping, kind, ids[start:start + chunk], params)
                if progress is not None:
                    progress(grouping, kind, min(start + chunk, len(ids)), len(ids))
        written[grouping] = n
    return written
