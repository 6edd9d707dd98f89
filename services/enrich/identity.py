"""The identity graph: every identity value belongs to one person.

Values seen together on one event belong to the same person, transitively.
The graph lives in memory (key -> person, person -> keys) and in the
warehouse table `person_keys`, which is also how it survives a restart: the
stage loads the current mapping from the `persons` view at start.

Person ids are stable for people who never merge: a new person takes an id
derived from its first identity value. When a link joins two people, the one
with more identity values survives (ties: the smaller id), and every value of
the other is re-pointed with a newer version. Facts keep identity values, not
person ids, so nothing else is rewritten.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client


def person_id_for(first_key: str) -> str:
    kind, _, digest = first_key.partition(":")
    return f"p-{digest[:20] or kind}"


@dataclass
class LinkResult:
    changed_keys: dict[str, str] = field(default_factory=dict)  # identity_key -> new person_id
    absorbed: set[str] = field(default_factory=set)  # person ids that no longer exist


class IdentityGraph:
    def __init__(self) -> None:
        self.person_of: dict[str, str] = {}
        self.keys_of: dict[str, set[str]] = {}
        self._version = 0

    def load(self, client: Client) -> int:
        """Rebuild from the warehouse. Returns the number of identity values."""
        self.person_of.clear()
        self.keys_of.clear()
        rows = client.query("SELECT identity_key, person_id FROM persons").result_rows
        for key, person in rows:
            self.person_of[key] = person
            self.keys_of.setdefault(person, set()).add(key)
        return len(rows)

    def next_version(self) -> int:
        self._version = max(self._version + 1, time.time_ns())
        return self._version

    def link(self, keys: list[str], result: LinkResult) -> str | None:
        """Put all keys in one person; record what changed. Returns that person's id."""
        if not keys:
            return None
        persons = {self.person_of[k] for k in keys if k in self.person_of}
        if not persons:
            target = person_id_for(keys[0])
            # An id could in principle be taken by a person absorbed earlier: keep ids unique.
            while target in self.keys_of:
                target = target + "x"
            self.keys_of[target] = set()
        else:
            target = min(persons, key=lambda p: (-len(self.keys_of[p]), p))
            for other in persons - {target}:
                moved = self.keys_of.pop(other)
                for k in moved:
                    self.person_of[k] = target
                    result.changed_keys[k] = target
                self.keys_of[target] |= moved
                result.absorbed.add(other)
        for k in keys:
            if k not in self.person_of:
                self.person_of[k] = target
                self.keys_of[target].add(k)
                result.changed_keys[k] = target
        return target
