"""The rollup stage: dirty entities (services/rollup/dirty.py) -> their rollup items,
recomputed from the facts as they are now (services/rollup/refresh.py), for every
grouping that has rollups. Then the entities are marked done in `rollup_queue`.

A retry is a replay: refresh compares what the facts say with the net of what is
stored and writes the difference, so a batch handled twice, or again after a crash at
any line, leaves the same items.

When the settings the items depend on (windows, SLA targets, missed deadline) differ
from those of the stored items, the stage rebuilds every item before its first batch;
until then the KPI queries read the facts (services/attribution/kpis/query.py).
"""
from __future__ import annotations

import logging
import time

from aiokafka import ConsumerRecord
from clickhouse_connect.driver.client import Client

from leadflow.config import Settings
from leadflow.stream import in_stage_thread
from leadflow.topics import Stages, Topics
from leadflow.versions import VersionClock
from leadflow.warehouse import insert_rows
from services.rollup import refresh as rollups
from services.rollup.dirty import QUEUE_COLUMNS, Dirty

log = logging.getLogger(__name__)

def rebuild_now(client: Client, settings: Settings, *, progress=None) -> dict[str, int]:
    """Reconcile every item with the facts and record the settings they were computed with."""
    started = time.monotonic()
    written = rollups.rebuild(client, settings, progress=progress)
    insert_rows(client, "rollup_settings", ["name", "fingerprint", "version"],
                [(rollups.ITEMS_SETTING, rollups.fingerprint(rollups.item_parameters(settings)), time.time_ns())])
    log.info("rollups rebuilt in %.1f s (%s rows written)", time.monotonic() - started, sum(written.values()))
    return written


def ensure_current(client: Client, settings: Settings, *, progress=None) -> bool:
    """Rebuild every item if the stored ones were computed with other settings (or never).
    Returns True if it rebuilt."""
    if rollups.current(client, settings):
        return False
    rebuild_now(client, settings, progress=progress)
    return True


class RollupStage:
    name = Stages.ROLLUP

    def __init__(self, client: Client, topics: Topics, settings: Settings):
        self.group_id = topics.group(self.name)
        self.topics = [topics.rollup_dirty]
        self.client = client
        self.settings = settings
        self.params = rollups.item_parameters(settings)
        self.clock = VersionClock(("rollup_queue",))
        self.clock.sync(client)
        self.stale = False
        self.refreshed = 0
        ensure_current(client, settings)

    async def handle(self, records: list[ConsumerRecord]) -> None:
        await in_stage_thread(self.process, records)

    def process(self, records: list[ConsumerRecord]) -> None:
        if self.stale:
            self.clock.sync(self.client)
            self.stale = False
        try:
            self.apply(Dirty.parse(r.value for r in records))
        except BaseException:
            self.stale = True
            raise

    def apply(self, dirty: Dirty) -> int:
        """Recompute the items of these entities in every grouping; returns rows written."""
        written = rollups.refresh_all(self.client, dirty.ids, self.params)
        insert_rows(self.client, "rollup_queue", QUEUE_COLUMNS, dirty.queue_rows(self.clock.next(), 1))
        self.refreshed += sum(len(ids) for ids in dirty.ids.values())
        return written
