"""The compact identity graph against a plain dict-and-set reference, and its
round trip through the warehouse (person_keys -> persons -> load)."""
from __future__ import annotations

import copy
import random

import pytest

from leadflow.versions import VersionClock
from leadflow.warehouse import insert_rows
from services.enrich import identity
from services.enrich.identity import KINDS, IdentityGraph, IdentityGraphError


class ReferenceGraph:
    """The rules of docs/architecture.md written the obvious way."""

    def __init__(self) -> None:
        self.person_of: dict[str, str] = {}
        self.keys_of: dict[str, set[str]] = {}

    def link(self, keys: list[str], changed: dict[str, str], absorbed: set[str]) -> None:
        persons = {self.person_of[k] for k in keys if k in self.person_of}
        if persons:
            target = min(persons, key=lambda p: (-len(self.keys_of[p]), p))
        else:
            target = "p-" + keys[0].split(":")[1][:20]
            self.keys_of[target] = set()
        for other in persons - {target}:
            for k in self.keys_of.pop(other):
                self.person_of[k] = target
                self.keys_of[target].add(k)
                changed[k] = target
            absorbed.add(other)
        for k in keys:
            if k not in self.person_of:
                self.person_of[k] = target
                self.keys_of[target].add(k)
                changed[k] = target


def key_pool(rng: random.Random, n: int) -> list[str]:
    keys = set()
    while len(keys) < n:
        digest = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        keys.add(f"{rng.choice(KINDS)}:{digest}")
        if rng.random() < 0.2:  # the same high 64 bits, another low half: the index must tell them apart
            low = "".join(rng.choice("0123456789abcdef") for _ in range(16))
            if low[:4] != digest[16:20]:  # a person id is 80 bits: keep those distinct
                keys.add(f"{rng.choice(KINDS)}:{digest[:16]}{low}")
    return sorted(keys)


def random_events(rng: random.Random, pool: list[str], n: int) -> list[list[str]]:
    return [sorted(set(rng.sample(pool, rng.choice([1, 1, 2, 2, 3])))) for _ in range(n)]


def run_batches(graph: IdentityGraph, ref: ReferenceGraph, events: list[list[str]], rng: random.Random):
    changed_rows = []
    i = 0
    while i < len(events):
        batch = events[i:i + rng.randint(1, 25)]
        i += len(batch)
        want_changed, want_absorbed = {}, set()
        for keys in batch:
            ref.link(keys, want_changed, want_absorbed)
        got = graph.link_all(batch)
        assert got.changed_keys == want_changed
        assert got.absorbed == want_absorbed
        changed_rows.append(got.changed_keys)
    return changed_rows


@pytest.mark.parametrize("seed", range(8))
def test_links_match_the_reference_in_random_batches(seed):
    rng = random.Random(seed)
    pool = key_pool(rng, 120)
    graph, ref = IdentityGraph(), ReferenceGraph()
    run_batches(graph, ref, random_events(rng, pool, 400), rng)
    assert graph.persons_of(pool) == ref.person_of
    assert len(graph) == len(ref.person_of)
    for person, keys in ref.keys_of.items():
        root = graph.lookup([min(keys)])[min(keys)]
        assert {graph.key_of(n) for n in graph.members(int(graph.nodes.owner[root]))} == keys
        assert graph.persons_of([min(keys)]) == {min(keys): person}


@pytest.mark.parametrize("page", [37, 500_000])
def test_a_graph_loaded_from_the_warehouse_goes_on_like_the_one_in_memory(client, page, monkeypatch):
    monkeypatch.setattr(identity, "LOAD_PAGE", page)
    rng = random.Random(42)
    pool = key_pool(rng, 200)
    events = random_events(rng, pool, 600)
    graph, ref, clock = IdentityGraph(), ReferenceGraph(), VersionClock(["person_keys"])
    for changed in run_batches(graph, ref, events[:400], rng):
        insert_rows(client, "person_keys", ["identity_key", "person_id", "version"],
                    [(k, p, clock.next()) for k, p in changed.items()])
    loaded = IdentityGraph()
    assert loaded.load(client) == len(ref.person_of)
    assert loaded.persons_of(pool) == ref.person_of
    tail = events[400:]
    ref_in_memory = copy.deepcopy(ref)
    run_batches(loaded, ref, tail, random.Random(1))
    run_batches(graph, ref_in_memory, tail, random.Random(1))
    assert loaded.persons_of(pool) == graph.persons_of(pool) == ref.person_of


def test_an_empty_warehouse_loads_an_empty_graph(client):
    assert IdentityGraph().load(client) == 0


@pytest.mark.parametrize("key", ["email:abc", "fax:" + "0" * 32, "email:" + "A" * 32, "email" + "0" * 32])
def test_a_value_that_is_not_a_hashed_identity_is_refused(key):
    with pytest.raises(IdentityGraphError, match="not a hashed identity value"):
        IdentityGraph().link_all([[key]])
