"""Versions of a stage's versioned rows (ReplacingMergeTree(version): the newest row wins).

A version is `max(previous + 1, now in ns)`, and never below what the warehouse already
holds in the tables the stage writes: the stage reads their maximum when it starts and
after a failed batch (`sync`), so a process whose clock is behind another's, or behind its
own before a restart, still writes rows that replace the older ones.
"""
from __future__ import annotations

import time
from typing import Sequence

from clickhouse_connect.driver.client import Client


class VersionClock:
    def __init__(self, tables: Sequence[str]):
        self.tables = tuple(tables)
        self.last = 0

    def sync(self, client: Client) -> int:
        """Move past the newest version the warehouse holds in these tables; returns it."""
        sql = "SELECT max(v) FROM (" + " UNION ALL ".join(
            f"SELECT max(version) AS v FROM {table}" for table in self.tables) + ")"
        held = int(client.query(sql).result_rows[0][0] or 0)
        self.last = max(self.last, held)
        return held

    def next(self) -> int:
        self.last = max(self.last + 1, time.time_ns())
        return self.last
