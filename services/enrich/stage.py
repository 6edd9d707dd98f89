"""The enrich stage: stored events -> identity graph, fact rows, conversation facts.

One batch: link identities (in memory), write changed `person_keys`, write the
fact rows of single events, recompute the winners of the calls and the
conversations the batch touched from all of their stored events, then tell
attribution which people to recompute.
The runner commits the input offsets only after all of that is written, so a
crash replays the batch; every write is idempotent (fact tables dedup by
event_id, versioned rows are recomputed whole).

A retry is a replay: what a batch writes and whom it announces depends only on
the batch and the warehouse. A batch that fails leaves the in-memory graph
marked stale; the next batch first reloads it from `person_keys` (what a
restarted process does), so links the failed attempt made in memory but did not
write are made again and written. Whom to announce never depends on what
changed in memory: the current person of every event that can change a profile
(a touch, conversion or payment) or that links identity values (two or more),
and those holding an id sent again. Who absorbed whom is written to
`person_merges` before the `person_keys` rows of the merge, and attribution
tombstones the absorbed people's profiles from it (services/attribution/profiles.py).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord
from clickhouse_connect.driver.client import Client

from leadflow.config import Settings
from leadflow.stream import OffsetTracker, in_stage_thread, partition_count, send_all
from leadflow.topics import Stages, Topics
from leadflow.versions import VersionClock
from leadflow.warehouse import insert_rows, stage_keys
from services import business_metrics
from services.enrich import conversations as conv
from services.enrich.facts import CONVERSATION_TYPES, FACT_TABLES, PROFILE_TYPES, WINNER_IDS
from services.enrich.identity import IdentityGraph
from services.enrich.winners import write_call_winners
from services.ingest.suppression import carries, count_suppressed, load_digests
from services.rollup import refresh as rollups
from services.rollup.dirty import QUEUE_COLUMNS, Dirty


def load_conversation_events(client: Client, ids: list[str]) -> dict[str, list[conv.ConvEvent]]:
    """Every stored event of these conversations (a redelivered duplicate row counts once)."""
    stage_keys(client, "enrich_conversations", ids)
    result = client.query(
        "SELECT conversation_id, event_id, any(type), any(occurred_at), any(payload) FROM conversation_events "
        "WHERE conversation_id IN (SELECT key FROM enrich_conversations) GROUP BY conversation_id, event_id"
    )
    out: dict[str, list[conv.ConvEvent]] = defaultdict(list)
    for conv_id, event_id, event_type, occurred_at, payload in result.result_rows:
        out[conv_id].append(conv.ConvEvent(occurred_at, event_id, event_type, orjson.loads(payload)))
    return out


def load_holders(client: Client, ids: dict[str, set[str]]) -> set[str]:
    """Identity values that carry these ids (event type -> ids of its WINNER_IDS column) in any stored row."""
    if not ids:
        return set()
    stage_keys(client, "enrich_winner_ids", sorted({i for values in ids.values() for i in values}))
    sql = " UNION DISTINCT ".join(
        f"SELECT identity_key FROM {FACT_TABLES[event_type].table} "
        f"WHERE {WINNER_IDS[event_type]} IN (SELECT key FROM enrich_winner_ids)"
        for event_type in sorted(ids))
    return {key for (key,) in client.query(sql).result_rows if key}


# the rollup entity an event of each type changes (services/rollup/dirty.py), besides its people's
ROLLUP_ENTITY = {
    "ad_spend": ("spend", lambda e: f"{e['campaign_id']}\t{date.fromisoformat(e['date'])}"),
    "lead": ("lead", lambda e: e["lead_id"]),
    "ad_click": ("click", lambda e: f"{e['channel']}\t{e['campaign_id']}"),
    "call_completed": ("call", lambda e: e["call_id"]),
    "survey_response": ("survey", lambda e: e["event_id"]),
}


def rollup_dirty(events: list[dict], conversation_ids: set[str]) -> Dirty:
    """The rollup entities a written batch changed: its spend days, leads, click pairs, calls,
    surveys and conversations (the rollup stage adds the surveys of those conversations and calls:
    services/rollup/refresh.py with_contacts)."""
    dirty = Dirty()
    for event in events:
        entity = ROLLUP_ENTITY.get(event["type"])
        if entity is not None:
            dirty.add(entity[0], [entity[1](event)])
    dirty.add("conversation", conversation_ids)
    return dirty


# the versioned tables enrich writes (leadflow/versions.py)
VERSIONED_TABLES = ("person_keys", "conversation_facts", "call_latest", "attribution_queue", "rollup_queue")


@dataclass
class Written:
    """One written batch: the people to announce, its events and the conversations recomputed."""

    people: list[str]
    events: list[dict]
    conversations: tuple[dict, list[tuple]] | None
    dirty: Dirty


class EnrichStage:
    name = Stages.ENRICH

    def __init__(self, client: Client, producer: AIOKafkaProducer, topics: Topics, settings: Settings,
                 graph: IdentityGraph | None = None):
        """`graph`: the graph of a pipeline this process ran before on the same warehouse and
        drained (a replay in segments); otherwise it is loaded from the warehouse."""
        self.group_id = topics.group(self.name)
        self.topics = [topics.stored]
        self.changed_topic = topics.persons_changed
        self.dirty_topic = topics.rollup_dirty
        self.client = client
        self.producer = producer
        self.settings = settings
        if not settings.rollups:
            rollups.invalidate(client)  # the facts change and no rollup stage follows them
        if graph is None:
            graph = IdentityGraph()
            graph.load(client)
        self.graph = graph
        self.stale = False  # a batch failed after changing the graph: reload it before the next
        self.clock = VersionClock(VERSIONED_TABLES)
        self.clock.sync(client)
        self.emitted = OffsetTracker()
        self.dirty_emitted = OffsetTracker()  # the pipeline may share one with attribution
        self.announce_rollups = True  # False: a bulk load records them in rollup_queue only (Pipeline)
        self.missed_after = timedelta(hours=settings.missed_after_hours)
        self.business = business_metrics.EnrichMetrics(settings)

    async def handle(self, records: list[ConsumerRecord]) -> None:
        written = await in_stage_thread(self.process, records)
        await self.announce(written.people)
        if self.announce_rollups:
            await send_all(self.producer, self.dirty_topic, written.dirty.messages(
                await partition_count(self.producer, self.dirty_topic)), self.dirty_emitted)
        # counted once the batch is fully written (in the stage thread: a loop over the events)
        await in_stage_thread(self.business.observe, written.events, written.conversations)

    def process(self, records: list[ConsumerRecord]) -> "Written":
        """Write the batch's identity links, facts, call winners and conversations; returns what
        was written, with the people to announce to attribution. If it raises, the graph is
        reloaded from the warehouse before the next batch (the failed attempt may have linked
        values in memory that it never wrote)."""
        if self.stale:
            self.graph.load(self.client)
            self.clock.sync(self.client)
            self.stale = False
        try:
            return self._process(records)
        except BaseException:
            self.stale = True
            raise

    def _process(self, records: list[ConsumerRecord]) -> "Written":
        rows: dict[str, list[tuple]] = defaultdict(list)
        conversation_ids: set[str] = set()
        attribution_keys: set[str] = set()
        winner_ids: dict[str, set[str]] = defaultdict(set)  # event type -> ids of its WINNER_IDS column
        key_lists: list[list[str]] = []
        stored: list[dict] = []
        suppressed = load_digests(self.client)  # erasure: values forgotten after the sink stored the event
        for record in records:
            event = orjson.loads(record.value)
            if carries(event, suppressed):
                count_suppressed(self.name, (event["type"],))
                continue
            stored.append(event)
            event_type = event["type"]
            keys = sorted((event.get("identity") or {}).values())
            if keys:
                key_lists.append(keys)
                if event_type in PROFILE_TYPES or len(keys) > 1:
                    attribution_keys.add(keys[0])
            table = FACT_TABLES.get(event_type)
            if table is not None:
                rows[event_type].append(table.build(event))
            if event_type in WINNER_IDS:
                winner_ids[event_type].add(event[WINNER_IDS[event_type]])
            if event_type in CONVERSATION_TYPES:
                conversation_ids.add(event["conversation_id"])

        link = self.graph.link_all(key_lists)
        version = self.clock.next()
        # who absorbed whom, before the person_keys rows that make it (attribution tombstones from it)
        insert_rows(self.client, "person_merges", ["survivor", "absorbed", "version"],
                    [(s, a, version) for s, a in self.graph.merges(link)])
        insert_rows(self.client, "person_keys", ["identity_key", "person_id", "version"],
                    [(k, p, version) for k, p in link.changed_keys.items()])
        for event_type, table_rows in rows.items():
            table = FACT_TABLES[event_type]
            insert_rows(self.client, table.table, table.columns, table_rows)
        write_call_winners(self.client, winner_ids.get("call_completed", ()), version=version)
        conversations = None
        if conversation_ids:
            conversations = self._write_conversations(sorted(conversation_ids), version)

        # people whose touches, conversions or payments arrived, whose identity values were linked
        # (a merge: the survivor covers both histories now; attribution tombstones the absorbed
        # from person_merges), and who hold an id sent again. From the batch and the graph as it
        # stands, never from what changed in memory: a retried batch announces the same people.
        attribution_keys |= load_holders(self.client, winner_ids)
        people = sorted(set(self.graph.persons_of(sorted(attribution_keys)).values()))
        insert_rows(self.client, "attribution_queue", ["person_id", "version", "done"],
                    [(p, version, 0) for p in people])
        dirty = rollup_dirty(stored, conversation_ids) if self.settings.rollups else Dirty()
        insert_rows(self.client, "rollup_queue", QUEUE_COLUMNS, dirty.queue_rows(version, 0))
        insert_rows(self.client, "enriched_events", ["event_id"], [(e["event_id"],) for e in stored])
        return Written(people, stored, conversations, dirty)

    async def announce(self, people: list[str]) -> None:
        """Tell attribution these people changed."""
        await send_all(self.producer, self.changed_topic, [(p.encode(), p.encode()) for p in people], self.emitted)

    def _write_conversations(self, ids: list[str], version: int) -> tuple[dict, list[tuple]]:
        events = load_conversation_events(self.client, ids)
        fact_rows = [
            conv.conversation_row(cid, events[cid], version=version, missed_after=self.missed_after,
                                  hours=self.settings.business_hours)
            for cid in ids if events.get(cid)
        ]
        insert_rows(self.client, "conversation_facts", conv.COLUMNS, fact_rows)
        return events, fact_rows

