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
  derived.sql (optional) a statement run after each refresh that recomputes what is stored
              beside the rollup from the refreshed entities' items (`rollup_entities`):
              figures a sum cannot carry, such as operators' day peaks of concurrency.
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
import re
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from leadflow import metrics
from leadflow.warehouse import WarehouseError, scalar, stage_keys

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from leadflow.config import Settings

SQL_DIR = Path(__file__).resolve().parent / "sql"

# Entity kinds and how an id of each is written (services/rollup/dirty.py announces them).
KINDS = ("spend", "lead", "click", "deal", "person", "conversation", "call", "survey")
# Every id of a kind the facts hold now, as `key` (a rebuild also revisits the ids stored in the items).
ALL_IDS = {
    "spend": "SELECT DISTINCT concat(campaign_id, '\t', toString(date)) AS key FROM ad_spend",
    "lead": "SELECT DISTINCT lead_id AS key FROM leads",
    "click": "SELECT DISTINCT concat(toString(channel), '\t', campaign_id) AS key FROM clicks",
    "deal": "SELECT DISTINCT deal_id AS key FROM attribution_credits",
    "person": "SELECT DISTINCT person_id AS key FROM person_profiles",
    "conversation": "SELECT DISTINCT conversation_id AS key FROM conversation_facts",
    "call": "SELECT DISTINCT call_id AS key FROM calls",
    "survey": "SELECT DISTINCT event_id AS key FROM surveys",
}
# every id a grouping's items of a kind can name, where not ALL_IDS + the ids its items hold: markov's
# persons are those with a journey row (3.5M at 10M events, against 90k profiles), and every person
# its items name has one (only `leadflow forget` deletes journeys, and it deletes their items too).
# FINAL reads them once each in the journeys' order: a DISTINCT beside the ids of 11M items took the
# 10M markov rebuild to 1.8 GiB, a DISTINCT over the journeys alone +620 MiB, FINAL +110 MiB.
GROUPING_IDS = {
    ("markov", "person"): "SELECT person_id AS key FROM journeys FINAL",
}
SKIPPED_COLUMNS = ("entity", "sign")
# entities per statement of a rebuild (of each kind, at most) or of a bulk catch-up (of all kinds):
# chdb holds one statement's work in the process's memory (a 10M-event rebuild peaked at 2,397 MiB
# with 500,000, at 1,325 MiB with 100,000; with its ids kept in the warehouse and every kind spread
# over the statements, 1,060 MiB in 30 s instead of 1,400 MiB in 40 s; with 50,000, 963-965 MiB in
# 30-35 s against 1,056-1,068 MiB in 27-32 s)
REFRESH_CHUNK = 50_000


def groupings() -> tuple[str, ...]:
    """The groupings that have rollups (a folder under sql/ with a kpis.sql)."""
    return tuple(sorted(p.parent.name for p in SQL_DIR.glob("*/kpis.sql")))


def item_groupings() -> tuple[str, ...]:
    """The groupings with an item log of their own (campaigns reads the channels' items; markov's
    transition counts have items and no kpis.sql: the chain reads them, services/attribution/markov.py)."""
    folders = sorted(p.name for p in SQL_DIR.iterdir() if p.is_dir())
    return tuple(g for g in folders if any(item_sql(g, kind) for kind in KINDS))


def _optional_sql(grouping: str, name: str) -> str | None:
    path = SQL_DIR / grouping / f"{name}.sql"
    return path.read_text(encoding="utf-8") if path.exists() else None


@lru_cache(maxsize=None)
def item_sql(grouping: str, kind: str) -> str | None:
    return _optional_sql(grouping, kind)


@lru_cache(maxsize=None)
def derived_sql(grouping: str) -> str | None:
    return _optional_sql(grouping, "derived")


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
    if not getattr(settings, "rollups", False) or grouping not in groupings() + item_groupings():
        return False  # off: nothing keeps them current
    return current(client, settings)


def use_rollups(client: "Client", settings: "Settings | None", grouping: str, source: str = "auto") -> bool:
    """Whether a read of this grouping takes the rollups: `source` "rollups", "facts", or "auto"
    (the rollups when they can answer: `readable`; never without settings)."""
    if source == "auto":
        return settings is not None and readable(client, settings, grouping)
    if source not in ("facts", "rollups"):
        raise ValueError(f"unknown source {source!r}; facts or rollups")
    return source == "rollups"


def invalidate(client: "Client") -> bool:
    """Facts are about to change with nobody keeping the items current (rollups off): forget the
    stored fingerprint, so that whoever turns the rollups on again rebuilds them first instead of
    reading items that missed what changed meanwhile. Returns whether there was one to forget."""
    if not stored_fingerprint(client):
        return False
    client.command("INSERT INTO rollup_settings (name, fingerprint, version) VALUES ({n:String}, '', {v:UInt64})",
                   parameters={"n": ITEMS_SETTING, "v": time.time_ns()})
    return True


def current(client: "Client", settings: "Settings") -> bool:
    """Whether the stored items were computed with these settings and this item SQL."""
    return stored_fingerprint(client) == fingerprint(item_parameters(settings))


# The leads, conversations and calls of people, found by the identity values they hold now: their
# items depend on their person's profile (its deals and lead times), so refreshing a person
# refreshes them too. One pass over the facts per refresh, not one per attribution batch.
CONTACTS_OF_PEOPLE = """
WITH keys AS (SELECT identity_key FROM person_keys FINAL WHERE person_id IN (SELECT key FROM rollup_people))
SELECT 'lead', lead_id FROM leads WHERE identity_key IN (SELECT identity_key FROM keys)
UNION ALL
SELECT 'conversation', conversation_id FROM conversation_facts WHERE identity_key IN (SELECT identity_key FROM keys)
UNION ALL
SELECT 'call', call_id FROM calls WHERE identity_key IN (SELECT identity_key FROM keys)
"""


# the surveys of conversations and calls: their channel and operator come from them
SURVEYS_OF_CONTACTS = """
SELECT DISTINCT event_id FROM surveys
WHERE conversation_id IN (SELECT key FROM rollup_contacts) OR call_id IN (SELECT key FROM rollup_contacts)
"""


def with_contacts(client: "Client", ids: dict[str, Iterable[str]]) -> dict[str, set[str]]:
    """These entities (kind -> ids), the contacts of their people (CONTACTS_OF_PEOPLE) and the
    surveys of their conversations and calls."""
    out = {kind: set(kind_ids) for kind, kind_ids in ids.items()}
    people = sorted(out.get("person", ()))
    if people:
        stage_keys(client, "rollup_people", people)
        for kind, entity_id in client.query(CONTACTS_OF_PEOPLE).result_rows:
            out.setdefault(kind, set()).add(entity_id)
    contacts = sorted(out.get("conversation", set()) | out.get("call", set()))
    if contacts:
        stage_keys(client, "rollup_contacts", contacts)
        out.setdefault("survey", set()).update(i for (i,) in client.query(SURVEYS_OF_CONTACTS).result_rows)
    return out


def refresh_all(client: "Client", ids: dict[str, Iterable[str]], params: dict[str, Any]) -> int:
    """Refresh these entities (kind -> ids), and their people's contacts, in every grouping with
    items; returns rows written."""
    ids = with_contacts(client, ids)
    todo = {kind: sorted(set(kind_ids)) for kind, kind_ids in sorted(ids.items()) if kind_ids}
    stage_ids(client, todo)  # once for every grouping: each reads its kinds' tables
    return sum(refresh_grouping(client, grouping, todo, params, staged=True) for grouping in item_groupings())


def stage_ids(client: "Client", ids: dict[str, list[str]]) -> None:
    """The entities' ids in the session tables the item SQL reads (`rollup_ids_<kind>`) and every
    one of them in `rollup_entities`, whose stored items a refresh nets: a grouping without items of
    a kind finds none of its entities there, so one staging serves every grouping (staging per
    grouping was ~36 statements of a five-grouping refresh)."""
    for kind, kind_ids in ids.items():
        stage_keys(client, _ids_table(kind), kind_ids)
    stage_keys(client, "rollup_entities", [f"{kind}:{i}" for kind, kind_ids in ids.items() for i in kind_ids])


def model_view(grouping: str, model: str) -> str:
    """The rollup a model's KPI query reads, `{rollup:Identifier}` (migration 0037)."""
    return f"rollup_{grouping}_{model}"


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if "{" + k + ":" in sql}


_columns: dict[tuple[int, str], list[tuple[str, str]]] = {}


def item_columns(client: "Client", grouping: str) -> list[str]:
    """The stored columns of rollup_items_G after (entity, sign), in table order."""
    return [name for name, _ in item_column_types(client, grouping)]


def item_column_types(client: "Client", grouping: str) -> list[tuple[str, str]]:
    """(name, type) of the stored columns of rollup_items_G after (entity, sign), in table order
    (asked once per client)."""
    key = (id(client), grouping)
    if key not in _columns:
        _columns[key] = _item_columns(client, grouping)
    return _columns[key]


def _item_columns(client: "Client", grouping: str) -> list[tuple[str, str]]:
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position",
        parameters={"t": f"rollup_items_{grouping}"}).result_rows
    return [(name, type_) for (name, type_) in rows if name not in SKIPPED_COLUMNS]


def _ids_table(kind: str) -> str:
    return f"rollup_ids_{kind}"


def kind_sql(grouping: str, kind: str) -> str | None:
    """The kind's item SQL reading its ids from a temporary table of its own (several kinds are
    computed in one statement)."""
    sql = item_sql(grouping, kind)
    return None if sql is None else re.sub(r"\brollup_ids\b", _ids_table(kind), sql)


def diff_sql(grouping: str, kinds: Iterable[str], columns: list[tuple[str, str]]) -> str:
    """The difference between the entities' items now (each kind's item SQL over its ids) and the
    net of their stored rows (`rollup_entities`): per distinct row, new count - stored count,
    where not zero. The new items are cast to the stored types first, so both sides compare as
    stored."""
    table = f"rollup_items_{grouping}"
    names = ", ".join(f"`{c}`" for c, _ in columns)
    casts = ", ".join(f"CAST(`{c}`, '{t}') AS `{c}`" for c, t in columns)
    new = "".join(
        f" SELECT concat('{kind}:', toString(id)) AS entity, toInt64(1) AS n, {casts} FROM ({kind_sql(grouping, kind)})"
        f" UNION ALL" for kind in kinds)
    return (
        f"SELECT entity, toInt8(sum(n)) AS sign, {names} FROM ({new}"
        f" SELECT entity, -toInt64(sign) AS n, {names} FROM {table}"
        f" WHERE entity IN (SELECT key FROM rollup_entities)"
        f") GROUP BY entity, {names} HAVING sum(n) != 0")


def refresh(client: "Client", grouping: str, kind: str, ids: Iterable[str], params: dict[str, Any]) -> int:
    """Bring the stored items of these entities of one kind to what the facts say now. Returns rows written."""
    return refresh_grouping(client, grouping, {kind: ids}, params)


def refresh_grouping(client: "Client", grouping: str, ids: dict[str, Iterable[str]], params: dict[str, Any], *,
                     staged: bool = False) -> int:
    """Bring the stored items of these entities (kind -> ids) to what the facts say now, in one
    statement. Returns rows written. `staged`: the caller put these ids in the session tables
    already (`stage_ids`).

    The difference is computed and written inside the warehouse (no row passes through Python):
    it goes to a session temporary table first, so the rows written can be counted and a
    failed attempt leaves nothing half-written in the log."""
    todo = {kind: sorted(set(kind_ids)) for kind, kind_ids in sorted(ids.items()) if item_sql(grouping, kind)}
    todo = {kind: kind_ids for kind, kind_ids in todo.items() if kind_ids}
    if not todo:
        return 0
    started = time.perf_counter()
    table = f"rollup_items_{grouping}"
    columns = item_column_types(client, grouping)
    if not staged:
        stage_ids(client, todo)
    diff = f"rollup_diff_{grouping}"
    client.command(f"CREATE TEMPORARY TABLE IF NOT EXISTS {diff} ENGINE = Memory AS SELECT * FROM {table} LIMIT 0")
    client.command(f"TRUNCATE TABLE {diff}")
    sql = diff_sql(grouping, todo, columns)
    client.command(f"INSERT INTO {diff} {sql}", parameters=_used(sql, params))
    written = scalar(client, f"SELECT count() FROM {diff}") or 0
    if written:
        names = ", ".join(["entity", "sign"] + [f"`{c}`" for c, _ in columns])
        try:
            client.command(f"INSERT INTO {table} ({names}) SELECT {names} FROM {diff}")
        except Exception as exc:
            metrics.WAREHOUSE_WRITE_FAILURES.labels(table=table).inc()
            raise WarehouseError(f"insert into {table} failed: {exc}") from exc
    derived = derived_sql(grouping)
    if derived is not None:  # also when nothing was written: a retry after a crash right before it
        client.command(derived)
    kind_label = next(iter(todo)) if len(todo) == 1 else "several"
    metrics.ROLLUP_REFRESH_SECONDS.labels(grouping=grouping, kind=kind_label).observe(time.perf_counter() - started)
    metrics.ROLLUP_ITEM_ROWS.labels(grouping=grouping).inc(written)
    return written


def all_ids_sql(grouping: str, kind: str) -> str:
    """Every id of a kind the facts hold now (ALL_IDS) or the grouping's items still hold, once
    (column `key`); GROUPING_IDS where a grouping says otherwise."""
    if (grouping, kind) in GROUPING_IDS:
        return GROUPING_IDS[grouping, kind]
    prefix = kind + ":"
    return (f"SELECT DISTINCT key FROM ({ALL_IDS[kind]} UNION ALL "
            f"SELECT substring(entity, {len(prefix) + 1}) AS key FROM rollup_items_{grouping} "
            f"WHERE startsWith(entity, '{prefix}'))")


def rebuild(client: "Client", settings: "Settings", *, only: Iterable[str] | None = None,
            chunk: int = REFRESH_CHUNK, progress=None) -> dict[str, int]:
    """Reconcile every stored item with the facts (a new warehouse, changed settings,
    an erasure): every id the facts or the items hold, about `chunk` of each kind per statement.
    Returns rows written per grouping. `progress(grouping, done, total)`.

    The ids stay in the warehouse (a session table per kind, filled once): a statement's share
    (a range of ids in order) is read when it runs, so the process holds one part's ids, not
    millions."""
    params = item_parameters(settings)
    written: dict[str, int] = {}
    for grouping in (tuple(only) if only else item_groupings()):
        kinds = [kind for kind in KINDS if item_sql(grouping, kind) is not None]
        for kind in kinds:
            client.command(f"DROP TEMPORARY TABLE IF EXISTS {_rebuild_table(kind)}")
            client.command(f"CREATE TEMPORARY TABLE {_rebuild_table(kind)} ENGINE = Memory AS "
                           f"{all_ids_sql(grouping, kind)}")
        counts = {kind: scalar(client, f"SELECT count() FROM {_rebuild_table(kind)}") or 0 for kind in kinds}
        total, parts = sum(counts.values()), max(1, -(-max(counts.values(), default=0) // chunk))
        # the first id of each part, in id order (a part's ids are near each other in the facts'
        # primary keys: a statement reads few granules); every kind spread over all the parts (the
        # 90k deals of a 10M warehouse in one statement beside 100,000 ids of each other kind
        # took 1.4 GiB, a twenty-fifth of them in each 1.0 GiB)
        starts = {kind: [k for (k,) in client.query(
            f"SELECT key FROM (SELECT key, row_number() OVER (ORDER BY key) AS i FROM {_rebuild_table(kind)}) "
            f"WHERE (i - 1) % {-(-counts[kind] // parts)} = 0 ORDER BY key").result_rows]
            for kind in kinds if counts[kind]}
        n = done = 0
        for part in range(max(map(len, starts.values()), default=0)):
            ids = {kind: _part_ids(client, kind, first[part], first[part + 1] if part + 1 < len(first) else None)
                   for kind, first in starts.items() if part < len(first)}
            n += refresh_grouping(client, grouping, ids, params)
            done += sum(map(len, ids.values()))
            if progress is not None:
                progress(grouping, done, total)
        for kind in kinds:
            client.command(f"DROP TEMPORARY TABLE IF EXISTS {_rebuild_table(kind)}")
        written[grouping] = n
    return written


def _rebuild_table(kind: str) -> str:
    return f"rollup_rebuild_{kind}"


def _part_ids(client: "Client", kind: str, first: str, after_last: str | None) -> list[str]:
    """The ids of a rebuild's part: from `first` up to `after_last` (excluded; None: to the end)."""
    upper = "" if after_last is None else " AND key < {hi:String}"
    return [i for (i,) in client.query(f"SELECT key FROM {_rebuild_table(kind)} WHERE key >= {{lo:String}}{upper}",
                                       parameters={"lo": first, "hi": after_last}).result_rows]
