"""Every topic name and consumer group, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from leadflow.config import Settings


@dataclass(frozen=True)
class Topics:
    prefix: str

    @property
    def raw(self) -> str:
        """Valid events, identity hashed, keyed by conversation/call/person."""
        return f"{self.prefix}.events.raw"

    @property
    def deadletter(self) -> str:
        """Rejected input: original bytes, every error, source and time."""
        return f"{self.prefix}.events.deadletter"

    @property
    def stored(self) -> str:
        """Events the warehouse sink stored for the first time (duplicates removed)."""
        return f"{self.prefix}.events.stored"

    @property
    def persons_changed(self) -> str:
        """Person ids whose touches, conversions or identity changed: attribution recomputes them."""
        return f"{self.prefix}.persons.changed"

    @property
    def rollup_dirty(self) -> str:
        """Entities (kind and id) whose rollup items may have changed: the rollup stage recomputes them."""
        return f"{self.prefix}.rollup.dirty"

    def all(self) -> list[str]:
        return [self.raw, self.deadletter, self.stored, self.persons_changed, self.rollup_dirty]

    def group(self, stage: str) -> str:
        """Consumer group of a stage (one group per stage, shared by all its workers)."""
        return f"{self.prefix}-{stage}"


class Stages:
    WAREHOUSE_SINK = "warehouse-sink"
    DEADLETTER_SINK = "deadletter-sink"
    ENRICH = "enrich"
    ATTRIBUTION = "attribution"
    ROLLUP = "rollup"


def topics_for(settings: Settings) -> Topics:
    return Topics(settings.topic_prefix)
