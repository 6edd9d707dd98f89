"""The rollup stage: dirty entities (services/rollup/dirty.py) -> their rollup items,
recomputed from the facts as they are now (services/rollup/refresh.py), for every
grouping that has rollups. Then the entities are marked done in `rollup_queue`.

A retry is a replay: refresh compares what the facts say with the net of what is
stored and writes the difference, so a batch handled twice, or again after a crash at
any line, leaves the same items.

A bulk load (`leadflow replay`) runs without the stage: enrich and attribution only record the
entities in `rollup_queue`, and `catch_up` refreshes them once at the end, in big chunks on
compacted tables (a 200k-event replay: 27 s of refreshes batch by batch, ~4 s at the end).

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
from leadflow.warehouse import insert_rows, scalar
from services.rollup import refresh as rollups
from services.rollup.dirty import PENDING_SQL, QUEUE_COLUMNS, Dirty

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


def apply(client: Client, dirty: Dirty, params: dict, clock: VersionClock) -> int:
    """Recompute the items of these entities in every grouping, then mark them done; returns rows written."""
    written = rollups.refresh_all(client, dirty.ids, params)
    insert_rows(client, "rollup_queue", QUEUE_COLUMNS, dirty.queue_rows(clock.next(), 1))
    return written


def catch_up(client: Client, settings: Settings, *, chunk: int = rollups.REFRESH_CHUNK, progress=None) -> int:
    """Refresh every entity `rollup_queue` holds as pending (what a bulk load deferred), about
    `chunk` entities at a time; returns how many. A failed attempt leaves the rest pending: run
    again. The pending entities stay in the warehouse: each chunk reads its share (the entities
    whose hash falls in it) when it runs."""
    rebuilt = ensure_current(client, settings)  # a rebuild brings every entity up to date
    pending = scalar(client, f"SELECT count() FROM ({PENDING_SQL})") or 0
    clock = VersionClock(("rollup_queue",))
    clock.sync(client)
    params = rollups.item_parameters(settings)
    if rebuilt:  # mark what was pending done, inside the warehouse (no writer runs beside a bulk load)
        client.command(f"INSERT INTO rollup_queue ({', '.join(QUEUE_COLUMNS)}) "
                       f"SELECT entity, {clock.next()}, 1 FROM ({PENDING_SQL})")
        return pending
    parts, done = -(-pending // chunk), 0
    for part in range(parts):
        entities = [e for (e,) in client.query(
            f"SELECT entity FROM ({PENDING_SQL}) WHERE cityHash64(entity) % {parts} = {part}").result_rows]
        apply(client, Dirty.from_entities(entities), params, clock)
        done += len(entities)
        if progress is not None:
            progress(done, pending)
    return pending


class RollupStage:
    name = Stages.ROLLUP
    max_records = 1_000  # messages a batch: each holds up to PACKED entities (services/rollup/dirty.py)

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

    def pause_after(self, batch_seconds: float) -> float:
        """Seconds the runner waits after a committed batch (settings.rollup_duty): what is announced
        meanwhile makes the next batch, whose cost is mostly per statement (planning the item
        SQL), not per entity."""
        return batch_seconds * (1 / self.settings.rollup_duty - 1)

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
        written = apply(self.client, dirty, self.params, self.clock)
        self.refreshed += sum(len(ids) for ids in dirty.ids.values())
        return written
