"""Migrations under a lock: several starters at once against one warehouse apply each migration once.

chdb opens a directory in one process only, so the concurrent starters here are threads, each with a
client (a session) of its own on the real engine; the lock is a table whose CREATE succeeds for one
caller, the same statement on a ClickHouse server."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import clickhouse_connect
import pytest

from leadflow import warehouse


def _migrations(tmp_path):
    # 0002 is not idempotent: every extra application adds a row
    (tmp_path / "0001_counter.sql").write_text("CREATE TABLE IF NOT EXISTS applied (n UInt8) ENGINE = MergeTree ORDER BY n;")
    (tmp_path / "0002_count.sql").write_text("INSERT INTO applied SELECT 1 FROM numbers(1);\n"
                                             "SELECT sleep(0.2);")
    return tmp_path


def test_concurrent_migrations_apply_each_once(settings, tmp_path):
    directory = _migrations(tmp_path)
    warehouse.connect(settings)  # creates the database
    clients = [clickhouse_connect.get_client(dsn=settings.warehouse_dsn, database=settings.clickhouse_database)
               for _ in range(4)]
    start = threading.Barrier(len(clients))
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def starter(client) -> None:
        try:
            start.wait()
            applied.append([m.name for m in warehouse.migrate(client, directory)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=starter, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    check = clients[0]
    assert check.query("SELECT count() FROM applied").result_rows == [(1,)]
    assert check.query("SELECT version, count() FROM schema_migrations GROUP BY version ORDER BY version"
                       ).result_rows == [(1, 1), (2, 1)]
    assert sorted(applied) == [[], [], [], ["counter", "count"]]  # one starter applied both, the others none
    assert warehouse.scalar(check, "SELECT count() FROM system.tables WHERE database = currentDatabase() "
                                   "AND name = {n:String}", {"n": warehouse.MIGRATION_LOCK}) == 0  # released


def test_lock_of_a_killed_holder_is_dropped(settings, tmp_path):
    """A process killed mid-migration leaves the lock table behind: its pid is gone on this host."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    client = warehouse.connect(settings)
    client.command(f"CREATE TABLE {warehouse.MIGRATION_LOCK} (holder String) ENGINE = Memory "
                   f"COMMENT '{socket.gethostname()}:{gone}:1'")
    started = time.monotonic()
    applied = warehouse.migrate(client, _migrations(tmp_path), lock_timeout_s=30)
    assert [m.name for m in applied] == ["counter", "count"] and time.monotonic() - started < 10
    assert client.query("SELECT count() FROM applied").result_rows == [(1,)]


def test_lock_of_a_live_holder_is_waited_for(settings, tmp_path):
    client = warehouse.connect(settings)
    client.command(f"CREATE TABLE {warehouse.MIGRATION_LOCK} (holder String) ENGINE = Memory "
                   f"COMMENT '{socket.gethostname()}:{os.getpid()}:1'")
    with pytest.raises(warehouse.WarehouseError, match="was not released within 1 s"):
        warehouse.migrate(client, _migrations(tmp_path), lock_timeout_s=1)
    assert client.query("SELECT count() FROM schema_migrations").result_rows == [(0,)]
