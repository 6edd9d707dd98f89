"""Crash at any line (issue 13): each stage's batch work is run directly, a fault is injected
right after one of its writes (the write is in the warehouse, the batch is not done), and the
process "restarts": FRESH stage objects (the identity graph reloaded from the warehouse, the
version clocks synced) get the same batch again, whole or split in halves. Output a crashed
stage produced but never handed on (the forward to enrich, the announcement to attribution) is
lost with the process. The warehouse must end up with every KPI cell of the independent
reference, and the sink's accepted/duplicate counts exact."""
from __future__ import annotations

from collections import Counter

import pytest
from aiokafka import ConsumerRecord

from leadflow.topics import Stages, topics_for
from services.attribution.stage import AttributionStage
from services.rollup.stage import RollupStage
from services.enrich.stage import EnrichStage
from services.ingest.sink import RawEventSink
from services.ingest.validate import AcceptedEvent, InputOccurrences, Validator
from tests.faults_inject import Fault, InjectedFault, inject, injected
from tests.test_retry_replay import SPARSE, WRITE_SITES, kpi_mismatches, scenario  # noqa: F401 (fixture)

BATCH = 200
# writes to the warehouse (the sinks' produce calls are not made here: a lost forward or
# announcement is the `lose` case of the driver)
INSERT_SITES = [(t, s) for t, s, kind in WRITE_SITES if kind == "insert" and s != Stages.DEADLETTER_SINK]



@pytest.fixture
def settings(settings):
    """The rollups on (off by default, leadflow/config.py)."""
    return settings.model_copy(update={"rollups": True})

def record(topic: str, offset: int, key: bytes | None, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=1_700_000_000_000 + offset,
                          timestamp_type=0, key=key, value=value, checksum=None, serialized_key_size=0,
                          serialized_value_size=len(value), headers=())


class Driver:
    """The four stages of a pipeline, batch after batch, restarted after every injected crash."""

    def __init__(self, client, settings, *, split: bool, lose: str | None = None):
        self.client, self.settings, self.topics = client, settings, topics_for(settings)
        self.split = split
        self.lose = lose  # a stage whose every batch dies once after all its writes, before handing its output on
        self.crashes: list[str] = []
        self.accepted = self.duplicates = 0
        self.offsets = Counter()
        for name in (Stages.WAREHOUSE_SINK, Stages.ENRICH, Stages.ATTRIBUTION, Stages.ROLLUP):
            self.restart(name)

    def restart(self, name: str) -> None:
        if name == Stages.WAREHOUSE_SINK:
            self.sink = RawEventSink(self.client, None, self.topics)
        elif name == Stages.ENRICH:
            self.enrich = EnrichStage(self.client, None, self.topics, self.settings)
        elif name == Stages.ROLLUP:
            self.rollup = RollupStage(self.client, self.topics, self.settings)
        else:
            self.attribution = AttributionStage(self.client, self.topics, self.settings)

    def call(self, name: str, records: list[ConsumerRecord], first: bool):
        if name == Stages.WAREHOUSE_SINK:
            out = self.sink.store(records)
        elif name == Stages.ENRICH:
            out = self.enrich.process(records)
        elif name == Stages.ROLLUP:
            out = self.rollup.process(records)
        else:
            out = self.attribution.process(records)
        if first and self.lose == name:
            raise InjectedFault(f"{name}: the process died before handing its output on")
        return out

    def deliver(self, name: str, records: list[ConsumerRecord], first: bool = True) -> list:
        """Run a batch; after a crash, restart the stage and deliver it again (in halves when
        `split`). Returns the outputs of the attempts that finished."""
        try:
            return [self.call(name, records, first)]
        except Exception as exc:
            if not injected(exc):
                raise
            self.crashes.append(str(exc))
            self.restart(name)
            parts = [records[:len(records) // 2], records[len(records) // 2:]] if self.split and len(records) > 1 \
                else [records]
            return [out for part in parts if part for out in self.deliver(name, part, first=False)]

    def produce(self, topic: str, messages: list[tuple[bytes | None, bytes]]) -> list[ConsumerRecord]:
        start = self.offsets[topic]
        self.offsets[topic] += len(messages)
        return [record(topic, start + i, k, v) for i, (k, v) in enumerate(messages)]

    def run(self, raw: list[tuple[bytes, bytes]]) -> None:
        for at in range(0, len(raw), BATCH):
            for stored in self.deliver(Stages.WAREHOUSE_SINK, self.produce(self.topics.raw, raw[at:at + BATCH])):
                self.accepted += stored.accepted.total()
                self.duplicates += stored.duplicates.total()
                for written in self.deliver(Stages.ENRICH, self.produce(self.topics.stored, stored.forward)):
                    people = [(p.encode(), p.encode()) for p in written.people]
                    dirty = [written.dirty]
                    if people:
                        dirty += self.deliver(Stages.ATTRIBUTION, self.produce(self.topics.persons_changed, people))
                    for announced in dirty:
                        if announced:
                            self.deliver(Stages.ROLLUP, self.produce(self.topics.rollup_dirty, announced.messages()))


@pytest.fixture(scope="module")
def raw_messages(scenario) -> list[tuple[bytes, bytes]]:  # noqa: F811
    """The scenario's valid lines as the raw topic holds them (validated, identity hashed)."""
    from leadflow.config import load_settings

    validator, occurrences, out = Validator(load_settings()), InputOccurrences(), []
    for line in scenario[0].read_bytes().splitlines():
        if line.strip():
            result = validator.check(line, origin="test", default_source="test", occurrences=occurrences)
            if isinstance(result, AcceptedEvent):
                out.append((result.key, result.value))
    return out


def check(driver: Driver, client, settings, scenario) -> None:  # noqa: F811
    _path, events, (_read, accepted, duplicates, _rejected) = scenario
    assert (driver.accepted, driver.duplicates) == (accepted, duplicates)
    cells, bad = kpi_mismatches(client, settings, events)
    assert cells > 500
    assert not bad, f"{len(bad)} of {cells} cells differ (crashes: {driver.crashes}):\n" + "\n".join(bad[:40])


@pytest.mark.parametrize("nth, split", [pytest.param(1, False, marks=pytest.mark.slow), (2, True)],
                         ids=["1st-write-same-batch", "2nd-write-split-batch"])
def test_a_crash_after_each_write(client, settings, scenario, raw_messages, nth, split):  # noqa: F811
    """Every write site of every stage crashes once, right after its nth write: then a fresh
    stage gets the batch again (the same, or in halves)."""
    driver = Driver(client, settings, split=split)
    with inject(*(Fault(t, stage=s, nth=1 if t in SPARSE else nth, after=True) for t, s in INSERT_SITES)) as armed:
        driver.run(raw_messages)
    assert armed.unfired() == []
    assert len(driver.crashes) == len(INSERT_SITES)
    check(driver, client, settings, scenario)


@pytest.mark.parametrize("stage", [pytest.param(Stages.WAREHOUSE_SINK, marks=pytest.mark.slow), Stages.ENRICH])
def test_a_crash_before_handing_the_output_on(client, settings, scenario, raw_messages, stage):  # noqa: F811
    """Every batch of the stage is written, then its forward to enrich (or its announcement to
    attribution) is lost: the fresh stage's redelivery hands on the same events (people)."""
    driver = Driver(client, settings, split=True, lose=stage)
    driver.run(raw_messages)
    assert len(driver.crashes) >= 6
    check(driver, client, settings, scenario)
