"""The attribution stage: people whose touches, conversions, payments or identity
changed -> the credits of every conversion of theirs, under every stored model,
their profile (services/attribution/profiles.py) and their journey (the markov
model's non-converting path, services/attribution/markov.py).

Credits are stored one row per (deal, model) with all its touches, at a newer
version than before: a recomputation replaces the old set whole, so a touch
that left the window loses its credit and nothing is counted twice.
"""
from __future__ import annotations

import time
from datetime import timedelta

from aiokafka import ConsumerRecord
from clickhouse_connect.driver.client import Client

from leadflow import business_metrics
from leadflow.config import Settings
from leadflow.stream import in_stage_thread
from leadflow.topics import Stages, Topics
from leadflow.warehouse import insert_rows
from services.attribution.markov import JOURNEY_COLUMNS, journey_rows
from services.attribution.models import STORED_MODELS, credit_touches
from services.attribution.profiles import NONE_CHANNEL, load_people, write_profiles

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


class AttributionStage:
    name = Stages.ATTRIBUTION

    def __init__(self, client: Client, topics: Topics, settings: Settings):
        self.group_id = topics.group(self.name)
        self.topics = [topics.persons_changed]
        self.client = client
        self.lookback = timedelta(days=settings.lookback_days)
        self.half_life = timedelta(days=settings.half_life_days)
        self._version = 0
        self.recomputed = 0
        self.business = business_metrics.AttributionMetrics(settings)

    async def handle(self, records: list[ConsumerRecord]) -> None:
        await in_stage_thread(self.process, records)

    def process(self, records: list[ConsumerRecord]) -> None:
        people = sorted({r.value.decode() for r in records})
        loaded = load_people(self.client, people)
        deals, touches = loaded.deals, loaded.touches
        self._version = max(self._version + 1, time.time_ns())
        rows = credit_rows(deals, touches, lookback=self.lookback, half_life=self.half_life, version=self._version)
        new_deals = self.business.uncredited(self.client, deals)
        insert_rows(self.client, "attribution_credits", COLUMNS, rows)
        write_profiles(self.client, people, loaded, version=self._version)
        insert_rows(self.client, "journeys", JOURNEY_COLUMNS,
                    journey_rows(people, deals, touches, lookback=self.lookback, version=self._version))
        self.business.observe(deals, touches, rows, new_deals)
        insert_rows(self.client, "attribution_queue", ["person_id", "version", "done"],
                    [(p, self._version, 1) for p in people])
        self.recomputed += len(deals)
