"""Dirty entities: what enrich and attribution tell the rollup stage to recompute.

After a stage writes its facts, it names the entities whose rollup items may have changed
(`Dirty`), records them in `rollup_queue` as pending (migration 0032: a restarted
embedded pipeline, whose broker is gone, announces them again) and sends them to the
`rollup.dirty` topic packed, up to PACKED entities a message (one message per entity was ~10 us of
producer and consumer Python each, ~650k of them per 1M events): a message holds only entities
whose id maps to the partition of its key (leadflow/stream.py partition_for), so every
announcement of one entity still lands in one partition and one rollup worker at a time
recomputes it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from leadflow.stream import partition_for
from services.rollup.refresh import KINDS

QUEUE_COLUMNS = ["entity", "version", "done"]
PACKED = 5_000  # entities per message at most
# the entities announced and not yet refreshed (the last row of each says so)
PENDING_SQL = "SELECT entity FROM rollup_queue GROUP BY entity HAVING argMax(done, version) = 0"


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

    def messages(self, partitions: int = 1) -> list[tuple[bytes, bytes]]:
        """(key, value) messages for a topic of this many partitions: the value is `kind\tid` lines
        of ids that all map to the partition of the key (one of them), so one entity always maps
        to one partition."""
        lines: dict[int, list[tuple[bytes, str]]] = defaultdict(list)
        for kind, ids in sorted(self.ids.items()):
            for i in sorted(ids):
                key = i.encode()
                lines[partition_for(key, partitions)].append((key, f"{kind}\t{i}"))
        return [(group[start][0], "\n".join(line for _, line in group[start:start + PACKED]).encode())
                for _, group in sorted(lines.items()) for start in range(0, len(group), PACKED)]

    def queue_rows(self, version: int, done: int) -> list[tuple]:
        return [(e, version, done) for e in self.entities()]

    @classmethod
    def parse(cls, values: Iterable[bytes]) -> "Dirty":
        dirty = cls()
        for value in values:
            for line in value.decode().split("\n"):
                kind, _, entity_id = line.partition("\t")
                dirty.add(kind, [entity_id])
        return dirty

    @classmethod
    def from_entities(cls, entities: Iterable[str]) -> "Dirty":
        dirty = cls()
        for entity in entities:
            kind, _, entity_id = entity.partition(":")
            dirty.add(kind, [entity_id])
        return dirty
