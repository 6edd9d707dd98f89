"""The attribution stage: people whose touches, conversions, payments or identity
changed -> the credits of every conversion of theirs, under every stored model,
their profile (services/attribution/profiles.py) and their journey (the markov
model's non-converting path, services/attribution/markov.py).

Credits are stored one row per (deal, model) with all its touches, at a newer
version than before: a recomputation replaces the old set whole, so a touch
that left the window loses its credit and nothing is counted twice.

A retry is a replay: a batch reads everything it writes from the warehouse.
The people the batch's people absorbed by a merge (person_merges) get tombstones
for their profiles, whether or not enrich announced them.
"""
from __future__ import annotations

from datetime import timedelta

from aiokafka import AIOKafkaProducer, ConsumerRecord
from clickhouse_connect.driver.client import Client

from leadflow.config import Settings
from leadflow.stream import OffsetTracker, in_stage_thread, partition_count, send_all
from leadflow.topics import Stages, Topics
from leadflow.versions import VersionClock
from leadflow.warehouse import insert_rows
from services import business_metrics
from services.attribution.markov import JOURNEY_COLUMNS, journey_rows
from services.attribution.models import STORED_MODELS, credit_touches
from services.attribution.profiles import NONE_CHANNEL, absorbed_people, load_people, write_profiles
from services.rollup.dirty import QUEUE_COLUMNS, Dirty

COLUMNS = ["deal_id", "model", "version", "person_id", "won_at", "revenue", "touch_event_ids", "touch_kinds",
           "channels", "campaigns", "operators", "credits"]


def credit_rows(deals, touches_by_person, *, lookback: timedelta, half_life: timedelta, version: int) -> list[tuple]:
    rows = []
    for person, deal_id, won_at, revenue in deals:
        touches = touches_by_person.get(person, [])
        for model in STORED_MODELS:
            credited = credit_touches(model, touches, won_at, lookback=lookback, half_life=half_life)
            if credited:
                ts = [t for t, _ in credited]
                rows.append((deal_id, model, version, person, won_at, revenue, [t.event_id for t in ts],
                             [t.kind for t in ts], [t.channel for t in ts], [t.campaign_id for t in ts],
                             [list(t.operators) for t in ts], [c for _, c in credited]))
            else:
                rows.append((deal_id, model, version, person, won_at, revenue, [""], [""], [NONE_CHANNEL], [""],
                             [[]], [1.0]))
    return rows


# the versioned tables attribution writes (leadflow/versions.py)
VERSIONED_TABLES = ("attribution_credits", "person_profiles", "attribution_queue", "rollup_queue")

def rollup_dirty(client: Client, people: list[str], loaded) -> Dirty:
    """The rollup entities a recomputation of these (staged) people changed: their deals' credits,
    their profiles and those of everybody they absorbed (from person_merges, not from which
    profiles this attempt tombstoned: a retry finds the same). Their leads, conversations and calls
    the rollup stage finds itself (services/rollup/refresh.py with_contacts)."""
    dirty = Dirty()
    dirty.add("person", people)
    dirty.add("person", [a for (a,) in client.query(
        "SELECT DISTINCT absorbed FROM person_merges WHERE survivor IN (SELECT key FROM attribution_people)").result_rows])
    dirty.add("deal", [deal_id for _, deal_id, _, _ in loaded.deals])
    return dirty


class AttributionStage:
    name = Stages.ATTRIBUTION

    def __init__(self, client: Client, topics: Topics, settings: Settings, producer: AIOKafkaProducer | None = None):
        """`producer`: where the rollup stage is told what changed (None: nobody is told)."""
        self.group_id = topics.group(self.name)
        self.topics = [topics.persons_changed]
        self.client = client
        self.producer = producer
        self.dirty_topic = topics.rollup_dirty
        self.rollups = settings.rollups  # announce what the rollup stage must recompute
        self.dirty_emitted = OffsetTracker()  # the pipeline may share one with enrich
        self.announce_rollups = True  # False: a bulk load records them in rollup_queue only (Pipeline)
        self.lookback = timedelta(days=settings.lookback_days)
        self.half_life = timedelta(days=settings.half_life_days)
        self.clock = VersionClock(VERSIONED_TABLES)
        self.clock.sync(client)
        self.stale = False  # a batch failed: sync the versions before the next
        self.recomputed = 0
        self.business = business_metrics.AttributionMetrics(settings)
        self._uncounted: set[str] = set()  # new deals of a failed attempt (metrics count them once)

    async def handle(self, records: list[ConsumerRecord]) -> None:
        dirty = await in_stage_thread(self.process, records)
        if self.producer is not None and self.announce_rollups:
            await send_all(self.producer, self.dirty_topic,
                           dirty.messages(await partition_count(self.producer, self.dirty_topic)), self.dirty_emitted)

    def process(self, records: list[ConsumerRecord]) -> Dirty:
        if self.stale:
            self.clock.sync(self.client)
            self.stale = False
        try:
            return self._process(sorted({r.value.decode() for r in records}))
        except BaseException:
            self.stale = True
            raise

    def _process(self, people: list[str]) -> Dirty:
        version = self.clock.next()
        loaded = load_people(self.client, people)
        deals, touches = loaded.deals, loaded.touches
        rows = credit_rows(deals, touches, lookback=self.lookback, half_life=self.half_life, version=version)
        new_deals = self.business.uncredited(self.client, deals)
        if new_deals is not None:  # deals a failed attempt credited are still new to the metrics
            new_deals |= self._uncounted & {d[1] for d in deals}
            self._uncounted |= new_deals
        insert_rows(self.client, "attribution_credits", COLUMNS, rows)
        absorbed = absorbed_people(self.client)
        write_profiles(self.client, people, loaded, version=version, absorbed=absorbed)
        # the absorbed people's journeys end too (empty rows): nobody announces them any more
        insert_rows(self.client, "journeys", JOURNEY_COLUMNS,
                    journey_rows(people + [p for p in absorbed if p not in set(people)], deals, touches,
                                 lookback=self.lookback, version=version))
        dirty = rollup_dirty(self.client, people, loaded) if self.rollups else Dirty()
        insert_rows(self.client, "rollup_queue", QUEUE_COLUMNS, dirty.queue_rows(version, 0))
        insert_rows(self.client, "attribution_queue", ["person_id", "version", "done"],
                    [(p, version, 1) for p in people])
        self.business.observe(deals, touches, rows, new_deals)  # once the batch is fully written
        self._uncounted.clear()
        self.recomputed += len(deals)
        return dirty
