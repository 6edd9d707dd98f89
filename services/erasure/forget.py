"""Erase the person who holds an identity value, and keep their values out from then on.

Order of work (each step reads the warehouse as the previous one left it, so running
`forget` again after a failure finishes the job):

1. hash the given value exactly as ingest does (schemas.identity, leadflow.privacy) and
   find its person through `persons`; collect every identity value the person holds now
   and every person id those values ever had;
2. suppress the values (`suppressed_keys`, digests only) before deleting anything, so the
   stages stop storing their events from this moment;
3. collect what is theirs: their events (any of their values), every event of a
   conversation one of those events belongs to, every event of one of their calls (so
   surveys about them too), their deals, the campaigns they clicked, and the dead letters
   whose original bytes hold one of their values (services/erasure/deadletters.py);
4. delete those rows from every table with mutations that rewrite the parts
   (`ALTER TABLE ... DELETE ... SETTINGS mutations_sync = 2`), recompute what others
   share with them (the first click of each campaign they clicked; the credits and
   profiles of the other people whose facts or winning ids were next to theirs), merge the
   rewritten tables (`OPTIMIZE TABLE ... FINAL`), and wait until the replaced parts are
   gone from disk.

No identity value, hash or person id ever appears in a statement's text (ClickHouse keeps
mutation commands in `system.mutations` and in files next to the data, and a server logs
queries): they go into a Memory table (nothing on disk) that every statement reads with
`IN (SELECT value FROM <work> WHERE what = '...')`, dropped at the end.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

from clickhouse_connect.driver.client import Client

from leadflow.config import Settings
from leadflow.privacy import IdentityHasher, suppression_digest
from leadflow.table import render
from leadflow.warehouse import insert_rows, scalar
from schemas.identity import normalize_email, normalize_phone
from services.attribution.profiles import load_people, write_profiles
from services.attribution.stage import COLUMNS as CREDIT_COLUMNS, credit_rows, rollup_dirty
from services.rollup import refresh as rollups
from services.rollup.dirty import Dirty
from services.enrich.facts import FACT_TABLES, WINNER_IDS
from services.erasure.deadletters import matching_dead_letters

# option of `leadflow forget` -> (identity kind, normalisation as ingest does it)
KINDS: dict[str, tuple[str, Callable[[str], str]]] = {
    "email": ("email", normalize_email),
    "phone": ("phone", normalize_phone),
    "crm_id": ("crm_contact_id", lambda v: v),
    "visitor_id": ("visitor_id", lambda v: v),
}

# table -> rows to delete, in terms of the work sets (what = key, person, event, conversation,
# call, deal, campaign, dead_letter). Every table that can hold an identity value, a person id
# or an event of theirs; ad_spend holds none.
_IN = "IN (SELECT value FROM {work} WHERE what = '{what}')"
DELETIONS: dict[str, str] = {
    "raw_events": "event_id {event}",
    "conversation_events": "conversation_id {conversation} OR event_id {event}",
    "enriched_events": "event_id {event}",
    "person_keys": "identity_key {key}",
    "clicks": "event_id {event} OR identity_key {key}",
    "leads": "event_id {event} OR identity_key {key}",
    "deals": "event_id {event} OR identity_key {key}",
    "payments": "event_id {event} OR identity_key {key}",
    "calls": "event_id {event} OR identity_key {key} OR call_id {call}",
    "call_latest": "call_id {call} OR identity_key {key}",
    "surveys": "event_id {event} OR identity_key {key}",
    "conversation_facts": "conversation_id {conversation} OR identity_key {key}",
    "attribution_credits": "person_id {person} OR deal_id {deal}",
    "person_profiles": "person_id {person} OR hasAny(keys, (SELECT groupArray(value) FROM {work} WHERE what = 'key'))",
    "attribution_queue": "person_id {person}",
    "journeys": "person_id {person}",  # their non-converting path (markov, migration 0025)
    "person_merges": "survivor {person} OR absorbed {person}",  # who absorbed whom (migration 0014)
    "click_firsts": "campaign_id {campaign}",  # the first click of the campaigns they clicked: recomputed
    "dead_letters": "dead_letter_id {dead_letter}",
}
_WHATS = ("key", "person", "event", "conversation", "call", "deal", "campaign", "dead_letter", "lead", "click",
          "survey", "entity")


class ErasureError(ValueError):
    """The value given to forget is not a valid identity value of its kind."""


@dataclass
class ErasureReport:
    option: str
    found: bool = False
    identity_values: dict[str, int] = field(default_factory=dict)  # kind -> values of the person
    suppressed: int = 0
    removed: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    recomputed_people: int = 0
    recomputed_campaigns: int = 0
    pending_parts: int = 0  # replaced parts still on disk when forget stopped waiting
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"option": self.option, "found": self.found, "identity_values": self.identity_values,
                "suppressed": self.suppressed, "removed": self.removed, "rows_removed": sum(self.removed.values()),
                "recomputed": {"people": self.recomputed_people, "campaigns": self.recomputed_campaigns},
                "pending_parts": self.pending_parts, "seconds": round(self.seconds, 3)}

    def render(self) -> str:
        who = "found" if self.found else "not found (its value is suppressed all the same)"
        values = ", ".join(f"{n} {kind}" for kind, n in sorted(self.identity_values.items()))
        lines = [f"person {who}; identity values suppressed: {self.suppressed} ({values})"]
        if self.removed:
            lines += ["", render(["table", "rows removed"], sorted(self.removed.items()), right=[False, True]),
                      f"{sum(self.removed.values())} row(s) removed"]
        else:
            lines.append("no rows held any of their values")
        lines.append(f"recomputed: {self.recomputed_people} other people's credits and profiles, "
                     f"the first click of {self.recomputed_campaigns} campaign(s)")
        if self.pending_parts:
            lines.append(f"{self.pending_parts} replaced part(s) are still on disk: ClickHouse removes them after "
                         "the tables' old_parts_lifetime")
        lines.append(f"done in {self.seconds:.1f}s")
        return "\n".join(lines)


def identity_key(option: str, value: str, hasher: IdentityHasher) -> str:
    """The keyed hash ingest gives this value (`option`: email, phone, crm_id, visitor_id)."""
    kind, normalize = KINDS[option]
    if not value:
        raise ErasureError(f"--{option.replace('_', '-')} must not be empty")
    try:
        return hasher.hash(kind, normalize(value))
    except ValueError as exc:
        raise ErasureError(str(exc)) from None


class _Work:
    """The Memory table holding this run's sets; statements read it, their text holds no value."""

    def __init__(self, client: Client):
        self.client = client
        self.table = f"erasure_work_{uuid.uuid4().hex[:12]}"
        client.command(f"CREATE TABLE {self.table} (what LowCardinality(String), value String) ENGINE = Memory")

    def add(self, what: str, values: Iterable[str]) -> list[str]:
        values = sorted({v for v in values if v})
        if values:
            insert_rows(self.client, self.table, ["what", "value"], [(what, v) for v in values])
        return values

    def values(self, sql: str) -> list[str]:
        return [row[0] for row in self.client.query(self.sql(sql)).result_rows]

    def sql(self, template: str) -> str:
        return template.format(work=self.table, **{w: _IN.format(work=self.table, what=w) for w in _WHATS})

    def drop(self) -> None:
        self.client.command(f"DROP TABLE IF EXISTS {self.table} SYNC")


def forget(client: Client, settings: Settings, option: str, value: str, *, wait_seconds: float = 120.0,
           on_step: Callable[[str], None] = lambda step: None) -> ErasureReport:
    started = time.monotonic()
    hasher = IdentityHasher(settings.identity_secret)
    given = identity_key(option, value, hasher)
    report = ErasureReport(option=option)
    work = _Work(client)
    rollup_tables: list[str] = []
    try:
        on_step("finding the person")
        work.add("given", [given])
        report.found = bool(work.values("SELECT person_id FROM persons WHERE identity_key IN "
                                        "(SELECT value FROM {work} WHERE what = 'given') LIMIT 1"))
        keys = work.add("key", [given] + work.values(
            "SELECT identity_key FROM persons WHERE person_id IN (SELECT person_id FROM persons WHERE identity_key IN "
            "(SELECT value FROM {work} WHERE what = 'given'))"))
        for key in keys:
            kind = key.partition(":")[0]
            report.identity_values[kind] = report.identity_values.get(kind, 0) + 1

        on_step("suppressing their identity values")
        report.suppressed = _suppress(client, keys)

        on_step("collecting their rows")
        _collect(work, keys, hasher, needles=_needles(option, value))
        # their conversations' and calls' other events carry no identity: a replay would store them again
        _suppress(client, [f"conversation:{c}" for c in work.values("SELECT value FROM {work} WHERE what = 'conversation'")]
                  + [f"call:{c}" for c in work.values("SELECT value FROM {work} WHERE what = 'call'")])
        other_keys = work.values(
            "SELECT DISTINCT arrayJoin(identity_keys) AS k FROM raw_events WHERE event_id {event} AND k NOT {key}")
        winner_ids = {t: work.values(f"SELECT DISTINCT {col} FROM {FACT_TABLES[t].table} WHERE event_id {{event}}")
                      for t, col in WINNER_IDS.items()}

        on_step("deleting")
        for table, condition in DELETIONS.items():
            where = work.sql(condition)
            n = scalar(client, f"SELECT count() FROM {table} WHERE {where}") or 0
            if n:
                client.command(f"ALTER TABLE {table} DELETE WHERE {where}", settings={"mutations_sync": 2})
                report.removed[table] = n

        on_step("recomputing what others share with them")
        report.recomputed_campaigns = _recompute_click_firsts(client, work)
        report.recomputed_people, others = _recompute_people(client, settings, work, other_keys, winner_ids)
        if settings.rollups:
            removed, rollup_tables = _refresh_rollups(client, settings, work, others)
        else:  # the items keep their contributions: whoever turns the rollups on rebuilds first
            removed, rollup_tables = {}, []
            rollups.invalidate(client)
        report.removed.update(removed)

        on_step("merging the rewritten tables")
        for table in list(report.removed) + rollup_tables:  # the rollups' maps may name their deals
            client.command(f"OPTIMIZE TABLE {table} FINAL")
    finally:
        work.drop()
    on_step("waiting for the replaced parts to leave the disk")
    report.pending_parts = wait_for_outdated_parts(client, list(report.removed) + rollup_tables, wait_seconds)
    report.seconds = time.monotonic() - started
    return report


def _needles(option: str, value: str) -> tuple[bytes, ...]:
    """The given value as typed and normalised, for a plain search of dead letters' bytes."""
    out = {value.strip().lower().encode()}
    try:
        out.add(KINDS[option][1](value).lower().encode())
    except ValueError:
        pass
    return tuple(n for n in out if len(n) >= 3)


def _suppress(client: Client, names: list[str]) -> int:
    """Add identity values (or `conversation:<id>`, `call:<id>`) to the suppression list, as digests."""
    at = datetime.now(timezone.utc)
    return insert_rows(client, "suppressed_keys", ["digest", "kind", "suppressed_at"],
                       [(suppression_digest(n), n.partition(":")[0], at) for n in names])


def _collect(work: _Work, keys: list[str], hasher: IdentityHasher, needles: tuple[bytes, ...]) -> None:
    """Fill the work sets from `key`: person ids, conversations, calls, events, deals, campaigns, dead letters."""
    has_key = "hasAny(identity_keys, (SELECT groupArray(value) FROM {work} WHERE what = 'key'))"
    # every id the person had: those person_keys recorded, and the id each value would found a person
    # with (services/enrich/identity.py: `p-` and the first 20 hex digits of its digest), which a person
    # founded and absorbed within one enrich batch left in attribution_queue only
    work.add("person", work.values("SELECT DISTINCT person_id FROM person_keys WHERE identity_key {key}")
             + [f"p-{key.partition(':')[2][:20]}" for key in keys])
    work.add("conversation", work.values(
        f"SELECT DISTINCT conversation_id FROM raw_events WHERE {has_key} AND conversation_id != '' "
        "UNION DISTINCT SELECT conversation_id FROM conversation_facts WHERE identity_key {key}"))
    work.add("call", work.values(
        f"SELECT DISTINCT call_id FROM raw_events WHERE {has_key} AND type = 'call_completed' "
        "UNION DISTINCT SELECT call_id FROM calls WHERE identity_key {key}"))
    work.add("event", work.values(
        f"SELECT DISTINCT event_id FROM raw_events WHERE {has_key} OR conversation_id {{conversation}} "
        "OR call_id {call}"))
    work.add("deal", work.values("SELECT DISTINCT deal_id FROM deals WHERE event_id {event} OR identity_key {key}"))
    work.add("campaign", work.values(
        "SELECT DISTINCT campaign_id FROM clicks WHERE event_id {event} OR identity_key {key}"))
    work.add("dead_letter", matching_dead_letters(work.client, set(keys), hasher, needles))
    # the rollup entities their rows feed (services/rollup/): recomputed once the rows are gone
    work.add("lead", work.values("SELECT DISTINCT lead_id FROM leads WHERE event_id {event} OR identity_key {key}"))
    work.add("click", work.values("SELECT DISTINCT concat(toString(channel), '\t', campaign_id) FROM clicks "
                                  "WHERE event_id {event} OR identity_key {key}"))
    work.add("survey", work.values("SELECT DISTINCT event_id FROM surveys WHERE event_id {event} OR identity_key {key}"))


def _recompute_click_firsts(client: Client, work: _Work) -> int:
    """The first click of each campaign they clicked, from the clicks that remain (migration 0008)."""
    campaigns = work.values("SELECT value FROM {work} WHERE what = 'campaign'")
    if campaigns:
        client.command(work.sql(
            "INSERT INTO click_firsts SELECT campaign_id, channel, minState(tuple(clicked_at, event_id)) "
            "FROM clicks WHERE campaign_id {campaign} GROUP BY campaign_id, channel"))
    return len(campaigns)


def _recompute_people(client: Client, settings: Settings, work: _Work, other_keys: list[str],
                      winner_ids: dict[str, list[str]]) -> tuple[int, Dirty]:
    """Credits and profiles of the other people next to theirs: those whose values were on the
    erased events (a conversation they shared), and those who hold an id the person held too
    (its winner may have moved). The person's own rows are gone; nobody else's facts changed."""
    holder_keys = set(other_keys)
    for event_type, ids in winner_ids.items():
        if ids:
            work.add(f"id_{event_type}", ids)
            holder_keys.update(work.values(
                f"SELECT DISTINCT identity_key FROM {FACT_TABLES[event_type].table} "
                f"WHERE {WINNER_IDS[event_type]} IN (SELECT value FROM {{work}} WHERE what = 'id_{event_type}')"))
    work.add("holder", holder_keys)
    people = work.values("SELECT DISTINCT person_id FROM persons WHERE identity_key IN "
                         "(SELECT value FROM {work} WHERE what = 'holder')")
    if not people:
        return 0, Dirty()
    version = time.time_ns()
    loaded = load_people(client, people)
    insert_rows(client, "attribution_credits", CREDIT_COLUMNS,
                credit_rows(loaded.deals, loaded.touches, lookback=timedelta(days=settings.lookback_days),
                            half_life=timedelta(days=settings.half_life_days), version=version))
    write_profiles(client, people, loaded, version=version)
    return len(people), rollup_dirty(client, people, loaded)


# rollup entity kind -> the work set holding its ids
_ROLLUP_WORK = {"person": "person", "conversation": "conversation", "call": "call", "deal": "deal", "lead": "lead",
                "click": "click", "survey": "survey"}


def _refresh_rollups(client: Client, settings: Settings, work: _Work, others: Dirty) -> tuple[dict[str, int], list[str]]:
    """Take their contributions out of the rollups (and recompute the other people's), then delete
    the item and queue rows named after their ids: the rollups keep the corrected sums only."""
    theirs = Dirty()
    for kind, what in _ROLLUP_WORK.items():
        theirs.add(kind, work.values(f"SELECT value FROM {{work}} WHERE what = '{what}'"))
    work.add("entity", theirs.entities())
    dirty = others
    for kind, ids in theirs.ids.items():
        dirty.add(kind, ids)
    rollups.refresh_all(client, dirty.ids, rollups.item_parameters(settings))
    named = work.sql("entity {entity}")
    removed = {}
    for table in ["rollup_queue"] + [f"rollup_items_{g}" for g in rollups.item_groupings()]:
        n = scalar(client, f"SELECT count() FROM {table} WHERE {named}") or 0
        if n:
            client.command(f"ALTER TABLE {table} DELETE WHERE {named}", settings={"mutations_sync": 2})
            removed[table] = n
    stored = [t for (t,) in client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE 'rollup\\_%' "
        "AND name NOT LIKE 'rollup\\_items\\_%' AND engine LIKE '%MergeTree'").result_rows]
    return removed, [t for t in stored if t not in removed]


def wait_for_outdated_parts(client: Client, tables: list[str], seconds: float) -> int:
    """Wait until the parts these tables replaced are removed from disk (the table's cleanup
    task does it: about a second with migration 0022's settings once loaded, then
    `old_parts_lifetime`). Returns the number still there when the wait ended."""
    if not tables:
        return 0
    deadline = time.monotonic() + seconds
    while True:
        pending = scalar(client, "SELECT count() FROM system.parts WHERE database = currentDatabase() "
                                 "AND table IN {tables:Array(String)} AND NOT active",
                         parameters={"tables": tables}) or 0
        if not pending or time.monotonic() >= deadline:
            return int(pending)
        time.sleep(0.25)
