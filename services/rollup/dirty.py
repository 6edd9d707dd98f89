"""Dirty entities: what enrich and attribution tell the rollup stage to recompute.

After a stage writes its facts, it names the entities whose rollup items may have changed
(`Dirty`), records them in `rollup_queue` as pending (migration 0032: a restarted
embedded pipeline, whose broker is gone, announces them again) and sends one message per
entity to the `rollup.dirty` topic, keyed by the entity's id: every announcement of one
entity lands in one partition, so one rollup worker at a time recomputes it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from services.rollup.refresh import KINDS

QUEUE_COLUMNS = ["entity", "version", "done"]


class Dirty:
    """Entity kind -> ids (services/rollup/refresh.py KINDS)."""

    def __init__(self) -> None:
        self.ids: dict[str, set[str]] = defaultdict(set)

    def add(self, kind: str, ids: Iterable[str]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown rollup entity kind {kind!r}")
        self.ids[kind].update(i for i in ids if i)

    def __bool__(self) -> bool:
        return any(self.ids.values())

    def entities(self) -> list[str]:
        return sorted(f"{kind}:{i}" for kind, ids in self.ids.items() for i in ids)

    def messages(self) -> list[tuple[bytes, bytes]]:
        """(key, value) per entity: the key is the id, so one entity always maps to one partition."""
        return [(i.encode(), f"{kind}\t{i}".encode()) for kind, ids in sorted(self.ids.items()) for i in sorted(ids)]

    def queue_rows(self, version: int, done: int) -> list[tuple]:
        return [(e, version, done) for e in self.entities()]

    @classmethod
    def parse(cls, values: Iterable[bytes]) -> "Dirty":
        dirty = cls()
        for value in values:
            kind, _, entity_id = value.decode().partition("\t")
            dirty.add(kind, [entity_id])
        return dirty

    @classmethod
    def from_entities(cls, entities: Iterable[str]) -> "Dirty":
        dirty = cls()
        for entity in entities:
            kind, _, entity_id = entity.partition(":")
            dirty.add(kind, [entity_id])
        return dirty
