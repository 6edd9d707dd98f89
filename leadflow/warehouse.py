"""The warehouse client: ClickHouse through clickhouse-connect.

`chdb://DIR` selects the embedded engine (in-process, one engine path per
process), `http(s)://...` a ClickHouse server; both return the same client
class surface, so every query and insert below runs on either.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from leadflow import metrics
from leadflow.config import Settings
from leadflow.secret_guard import redact

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "clickhouse" / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_lock = threading.Lock()
_open: dict[tuple[str, str], Client] = {}


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached or refused a statement."""


def _pin_utc() -> None:
    """chdb reports the host timezone as the server's, and clickhouse-connect then shifts aware
    datetimes on insert (10:00Z stored as 07:00 under TZ=Europe/Moscow). leadflow works in UTC:
    pin the process timezone so every run stores the same instants."""
    if os.environ.get("TZ") != "UTC":
        os.environ["TZ"] = "UTC"
        time.tzset()


def connect(settings: Settings, *, create_database: bool = True) -> Client:
    """A client on the configured warehouse and database (shared per process).

    chdb allows one engine path per process, so clients are cached by DSN and
    a request for another chdb path closes the engine that is open.
    """
    dsn = settings.warehouse_dsn
    db = settings.clickhouse_database
    with _lock:
        client = _open.get((dsn, db))
        if client is not None:
            return client
        if dsn.startswith("chdb:"):
            _pin_utc()
            for (other_dsn, other_db), other in list(_open.items()):
                if other_dsn != dsn and other_dsn.startswith("chdb:"):
                    other.close()
                    del _open[(other_dsn, other_db)]
            Path(dsn[len("chdb://"):]).mkdir(parents=True, exist_ok=True)
        client = _new_client(dsn, db, create_database=create_database)
        _open[(dsn, db)] = client
        return client


def _new_client(dsn: str, db: str, *, create_database: bool) -> Client:
    try:
        if create_database:
            bootstrap = clickhouse_connect.get_client(dsn=dsn)
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {db}")
            if not dsn.startswith("chdb:"):
                bootstrap.close()
        return clickhouse_connect.get_client(dsn=dsn, database=db)
    except Exception as exc:  # clickhouse-connect raises several types
        raise WarehouseError(f"cannot open warehouse {redact(dsn)}: {redact(str(exc))}") from exc


# Versioned tables the KPI queries read with FINAL. A replay rewrites the same rows many
# times (a conversation, profile or credit per batch that touched it), so it leaves them in
# many parts and FINAL merges those on every read: at 10M events, compacting them once
# (4.4 s) took service 470-530 -> 400-410 ms and operators 465-487 -> 360-375 ms.
COMPACTED_TABLES = ("attribution_credits", "call_latest", "clicks", "conversation_facts", "person_profiles",
                    "surveys")


def compact(client: Client, stored: int, tables: Sequence[str] = COMPACTED_TABLES) -> list[str]:
    """Merge each table's parts into one (OPTIMIZE ... FINAL) after a replay that stored `stored`
    events, when those are at least a tenth of the warehouse's: the merge rewrites a whole table,
    so a small replay into a big warehouse leaves it to the background merges. Returns the
    tables compacted."""
    if stored <= 0 or stored * 10 < (scalar(client, "SELECT count() FROM raw_events") or 0):
        return []
    for table in tables:
        started = time.perf_counter()
        client.command(f"OPTIMIZE TABLE {table} FINAL")
        log.info("compacted %s in %.2f s", table, time.perf_counter() - started)
    return list(tables)


def stage_client(settings: Settings, shared: Client) -> Client:
    """The client for one stage of a pipeline; stages do their warehouse work off the event loop.

    chdb's client serializes calls on its engine handle with a lock, so the stages share it.
    A server session admits one query at a time and the stages keep temporary tables in
    theirs, so each stage gets a client with a session of its own.
    """
    if settings.warehouse_dsn.startswith("chdb:"):
        return shared
    return _new_client(settings.warehouse_dsn, settings.clickhouse_database, create_database=False)


def close_all() -> None:
    with _lock:
        for client in _open.values():
            try:
                client.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass
        _open.clear()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        text = self.path.read_text(encoding="utf-8")
        text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
        return [s.strip() for s in text.split(";") if s.strip()]


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if not m:
            raise WarehouseError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise WarehouseError("two migrations share a version number")
    return found


MIGRATION_LOCK = "schema_migrations_lock"


def migrate(client: Client, directory: Path = MIGRATIONS_DIR, *, lock_timeout_s: float = 600.0,
            stale_lock_s: float = 600.0) -> list[Migration]:
    """Apply the migrations not applied yet, in order, each once even when several processes
    start together: they take turns holding a lock (`migration_lock`). Returns those applied here."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    migrations = list_migrations(directory)
    if not _pending(client, migrations):
        return []  # the common start: nothing to do, no lock taken
    with migration_lock(client, timeout_s=lock_timeout_s, stale_s=stale_lock_s):
        applied = []
        for mig in _pending(client, migrations):  # read again under the lock
            for stmt in mig.statements():
                try:
                    client.command(stmt)
                except Exception as exc:
                    raise WarehouseError(f"migration {mig.path.name} failed: {exc}") from exc
            client.insert(
                "schema_migrations",
                [(mig.version, mig.name, datetime.now(timezone.utc))],
                column_names=["version", "name", "applied_at"],
            )
            applied.append(mig)
            log.info("applied migration %s", mig.path.name)
        return applied


def _pending(client: Client, migrations: list[Migration]) -> list[Migration]:
    done = {row[0] for row in client.query("SELECT version FROM schema_migrations").result_rows}
    return [m for m in migrations if m.version not in done]


@contextlib.contextmanager
def migration_lock(client: Client, *, timeout_s: float = 600.0, stale_s: float = 600.0) -> Iterator[None]:
    """A mutex in the warehouse: the table `schema_migrations_lock` exists while someone holds it.

    CREATE TABLE (without IF NOT EXISTS) succeeds for exactly one of several concurrent callers,
    on chdb and on a server alike; the others wait and try again. The table's comment names the
    holder (host:pid:thread): a lock whose holder was a process of this host that is gone (killed
    mid-migration), or older than `stale_s`, is dropped."""
    deadline = time.monotonic() + timeout_s
    holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    while True:
        try:
            client.command(f"CREATE TABLE {MIGRATION_LOCK} (holder String) ENGINE = Memory "
                           f"COMMENT {_quote(holder)}")
            break
        except Exception as exc:
            if "TABLE_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise WarehouseError(f"cannot take the migration lock: {exc}") from exc
        rows = client.query("SELECT comment, dateDiff('second', metadata_modification_time, now()) FROM system.tables "
                            "WHERE database = currentDatabase() AND name = {name:String}",
                            parameters={"name": MIGRATION_LOCK}).result_rows
        if rows and (_holder_gone(rows[0][0]) or rows[0][1] > stale_s):
            log.warning("dropping the migration lock of %s, held for %d s: its holder is gone", rows[0][0], rows[0][1])
            client.command(f"DROP TABLE IF EXISTS {MIGRATION_LOCK}")
            continue
        if time.monotonic() > deadline:
            raise WarehouseError(f"the migration lock ({MIGRATION_LOCK}) was not released within {timeout_s:.0f} s; "
                                 f"if no leadflow process is migrating, DROP TABLE {MIGRATION_LOCK}")
        time.sleep(random.uniform(0.05, 0.25))
    try:
        yield
    finally:
        client.command(f"DROP TABLE IF EXISTS {MIGRATION_LOCK}")


def _holder_gone(holder: str) -> bool:
    """Whether a lock holder `host:pid:thread` was a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def open_warehouse(settings: Settings) -> Client:
    """Connect, apply pending migrations, and apply the settings the DDL depends on."""
    client = connect(settings)
    migrate(client)
    apply_retention(client, settings.deadletter_retention_days)
    return client


def apply_retention(client: Client, days: int) -> None:
    """Dead letters keep original bytes: they expire after `days` (a TTL; changed only when it differs)."""
    engine = scalar(client, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
                            "AND name = 'dead_letters'") or ""
    if f"toIntervalDay({days})" in engine or f"INTERVAL {days} DAY" in engine:
        return
    client.command(f"ALTER TABLE dead_letters MODIFY TTL toDateTime(rejected_at) + INTERVAL {int(days)} DAY",
                   settings={"materialize_ttl_after_modify": 0})


def insert_rows(client: Client, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert a batch in one statement (counted and timed). Returns the number of rows."""
    data = rows if isinstance(rows, list) else list(rows)
    if not data:
        return 0
    started = time.perf_counter()
    try:
        # column-oriented data serializes ~3x faster than rows in clickhouse-connect
        client.insert(table, [list(col) for col in zip(*data)], column_names=list(columns), column_oriented=True,
                      column_types=column_types(client, table, columns))
    except Exception as exc:
        metrics.WAREHOUSE_WRITE_FAILURES.labels(table=table).inc()
        raise WarehouseError(f"insert into {table} failed: {exc}") from exc
    metrics.WAREHOUSE_WRITE_SECONDS.labels(table=table).observe(time.perf_counter() - started)
    metrics.WAREHOUSE_BATCHES.labels(table=table).inc()
    metrics.WAREHOUSE_ROWS.labels(table=table).inc(len(data))
    return len(data)


_column_types: "weakref.WeakKeyDictionary[Client, dict]" = weakref.WeakKeyDictionary()


def column_types(client: Client, table: str, columns: Sequence[str]) -> list:
    """The ClickHouse types of these columns, read once per client and table: clickhouse-connect
    otherwise runs a DESCRIBE TABLE before every insert (a statement per table per batch)."""
    known = _column_types.setdefault(client, {})
    key = (table, tuple(columns))
    if key not in known:
        known[key] = client.create_insert_context(table, column_names=list(columns)).column_types
    return known[key]


def stage_keys(client: Client, table: str, values: Iterable[str]) -> None:
    """Put a batch's lookup keys in a session temporary table `table` (column `key`).

    Queries then filter with `IN (SELECT key FROM table)`: a native insert of
    20k keys takes ~10 ms, where binding them as an array parameter costs ~6 us
    per key in ClickHouse's parser.
    """
    client.command(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} (key String) ENGINE = Memory")
    client.command(f"TRUNCATE TABLE {table}")
    keys = list(values)
    if keys:
        client.insert(table, [keys], column_names=["key"], column_type_names=["String"], column_oriented=True)


def scalar(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> Any:
    rows = client.query(sql, parameters=parameters).result_rows
    return rows[0][0] if rows else None
