"""Person profiles (migration 0010): what the KPI queries need to know of a person,
written by the attribution stage whenever it recomputes the person.

A profile holds the person's identity values now (and those its conversations and
inbound calls carry), its winning deals, the times
of its winning leads, the channel of its first-ever touch and its lifetime value
(deal revenue + payments). Only people with a deal or a lead have one; a person
that was absorbed by a merge, or lost its last deal and lead, gets an empty row
at a newer version, so its old identity values count for nobody.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from leadflow.warehouse import insert_rows, stage_keys
from services.attribution.models import Touch
from services.attribution.sql import read_sql

NONE_CHANNEL = "(none)"
COLUMNS = ["person_id", "version", "keys", "contact_keys", "won", "lead_times", "first_channel", "value"]
CONTACT_KINDS = ("conversation", "call")  # touches that are contacts (conversations, inbound calls)


@dataclass
class People:
    """Everything the warehouse holds of a set of people, through the current identity graph."""

    keys: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # person -> identity values
    contact_keys: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # ... that contacts carry
    deals: list[tuple] = field(default_factory=list)  # (person, deal_id, won_at, revenue)
    touches: dict[str, list[Touch]] = field(default_factory=lambda: defaultdict(list))
    payments: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # person -> sum


def load_people(client: Client, person_ids: list[str]) -> People:
    """Identity values, deals, touches and payments of these people.

    Every lookup goes through primary keys (identity value, deal, lead,
    conversation, call, payment), so a batch costs what its people have, not
    what the warehouse holds.
    """
    people = People()
    stage_keys(client, "attribution_people", person_ids)
    person_of = dict(client.query(read_sql("person_keys")).result_rows)
    if not person_of:
        return people
    for key, person in person_of.items():
        people.keys[person].append(key)
    stage_keys(client, "attribution_keys", person_of)
    people.deals = [(person_of[key], deal_id, won_at, revenue) for deal_id, key, won_at, revenue
                    in client.query(read_sql("person_deals")).result_rows]
    for event_id, key, at, kind, channel, campaign, operators in client.query(read_sql("person_touches")).result_rows:
        people.touches[person_of[key]].append(Touch(event_id, at, kind, channel, campaign, tuple(operators)))
        if kind in CONTACT_KINDS:
            people.contact_keys[person_of[key]].add(key)
    for key, amount in client.query(read_sql("person_payments")).result_rows:
        people.payments[person_of[key]] += amount
    return people


def profile_rows(person_ids: list[str], people: People, *, version: int) -> list[tuple]:
    """The profile of each of these people that has a deal or a lead."""
    won: dict[str, list[tuple]] = defaultdict(list)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for person, deal_id, won_at, amount in people.deals:
        won[person].append((won_at, deal_id, float(amount)))
        revenue[person] += amount
    rows = []
    for person in person_ids:
        touches = people.touches.get(person, [])
        leads = sorted(t.at for t in touches if t.kind == "lead")
        if not won[person] and not leads:
            continue
        first = min(touches, key=lambda t: (t.at, t.event_id), default=None)
        rows.append((person, version, sorted(people.keys[person]), sorted(people.contact_keys.get(person, ())),
                     sorted(won[person]), leads,
                     first.channel if first else NONE_CHANNEL, revenue[person] + people.payments.get(person, 0)))
    return rows


def absorbed_people(client: Client) -> list[str]:
    """People the staged people (attribution_people) absorbed by a merge (person_merges, migration
    0014) whose profiles still hold identity values and none of them is theirs now: their profiles
    must become tombstones. Read from the warehouse, so a retried batch finds the same."""
    merged = [a for (a,) in client.query(
        "SELECT DISTINCT absorbed FROM person_merges WHERE survivor IN (SELECT key FROM attribution_people)").result_rows]
    if not merged:
        return []
    stage_keys(client, "attribution_absorbed", merged)
    profiled = client.query("SELECT person_id, keys FROM person_profiles FINAL "
                            "WHERE person_id IN (SELECT key FROM attribution_absorbed) AND notEmpty(keys)").result_rows
    if not profiled:
        return []
    stage_keys(client, "attribution_absorbed_keys", sorted({k for _, keys in profiled for k in keys}))
    owner = dict(client.query(
        "SELECT identity_key, argMax(person_id, version) FROM person_keys "
        "WHERE identity_key IN (SELECT key FROM attribution_absorbed_keys) GROUP BY identity_key").result_rows)
    return sorted(person for person, keys in profiled if all(owner.get(k) != person for k in keys))


def write_profiles(client: Client, person_ids: list[str], people: People, *, version: int,
                   absorbed: list[str] = ()) -> int:
    """Write the profiles of these people (after load_people staged them), with
    tombstones for those that had one and no longer qualify, and for `absorbed`
    (absorbed_people). Returns rows written."""
    rows = profile_rows(person_ids, people, version=version)
    written = {row[0] for row in rows}
    had = {person for (person,) in client.query(read_sql("profiled_people")).result_rows}
    gone = (had - written) | (set(absorbed) - set(person_ids))
    rows += [(person, version, [], [], [], [], NONE_CHANNEL, Decimal(0)) for person in sorted(gone)]
    return insert_rows(client, "person_profiles", COLUMNS, rows)


def refresh_profiles(client: Client, person_ids: list[str], *, version: int) -> int:
    """Recompute the profiles of these people from the warehouse (what the stage does per batch)."""
    return write_profiles(client, person_ids, load_people(client, person_ids), version=version)
