"""The identity graph: every identity value belongs to one person.

Values seen together on one event belong to the same person, transitively.
The graph lives in memory and in the warehouse table `person_keys`, which is
also how it survives a restart: the stage loads the current mapping from the
`persons` view at start.

Person ids are stable for people who never merge: a new person takes an id
derived from its first identity value (`p-` and the first 20 hex digits of
its digest). When a link joins two people, the one with more identity values
survives (ties: the smaller id), and every value of the other is re-pointed
with a newer version. Facts keep identity values, not person ids, so nothing
else is rewritten.

Memory: a year of traffic holds tens of millions of identity values, so the
graph is kept in numpy columns, ~40 bytes per value (a Python dict of strings
took ~700). Identity values are `kind:32 hex digits` (leadflow.privacy), so a
value is stored as (kind code, high 64 bits, low 64 bits) and its string is
rebuilt when written. Each value is a node; a person is a circular list of
nodes whose `owner` is the person's root, the node whose value its id comes
from. A sorted index (high bits -> node) finds values; a batch looks all its
values up at once (`link_all`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from clickhouse_connect.driver.client import Client

from schemas import IDENTITY_KEYS

KINDS = tuple(sorted(IDENTITY_KEYS))
_KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}
_DIGEST = re.compile(r"[0-9a-f]{32}")


class IdentityGraphError(ValueError):
    pass


def parse_key(key: str) -> tuple[int, int, int]:
    """`kind:32 hex digits` -> (kind code, high 64 bits, low 64 bits)."""
    kind, _, digest = key.partition(":")
    code = _KIND_CODE.get(kind)
    if code is None or _DIGEST.fullmatch(digest) is None:
        raise IdentityGraphError(f"not a hashed identity value (kind:32 hex digits): {key!r}")
    return code, int(digest[:16], 16), int(digest[16:], 16)


@dataclass
class LinkResult:
    changed_keys: dict[str, str] = field(default_factory=dict)  # identity_key -> new person_id
    absorbed: set[str] = field(default_factory=set)  # person ids that no longer exist
    absorbed_roots: dict[str, int] = field(default_factory=dict)  # ... -> the node their id came from


LOAD_PAGE = 500_000
_LOAD_SQL = (
    "SELECT toUInt8(indexOf({kinds:Array(String)}, splitByChar(':', identity_key)[1])) AS kind, "
    "reinterpretAsUInt64(reverse(unhex(substring(identity_key, position(identity_key, ':') + 1, 16)))) AS hi, "
    "reinterpretAsUInt64(reverse(unhex(substring(identity_key, position(identity_key, ':') + 17, 16)))) AS lo, "
    "reinterpretAsUInt64(reverse(unhex(substring(person_id, 3, 16)))) AS pid_hi, "
    "reinterpretAsUInt16(reverse(unhex(substring(person_id, 19, 4)))) AS pid_lo, "
    "toUInt8(length(person_id) - 22) AS suffix, "
    "toUInt8(match(identity_key, '^[a-z_]+:[0-9a-f]{32}$') AND match(person_id, '^p-[0-9a-f]{20}x*$')) AS ok "
    "FROM persons WHERE identity_key > {after:String} ORDER BY identity_key LIMIT {limit:UInt64}"
)
_LOAD_ROW = np.dtype([("kind", "u1"), ("hi", "<u8"), ("lo", "<u8"), ("pid_hi", "<u8"), ("pid_lo", "<u2"),
                      ("suffix", "u1"), ("ok", "u1")])


class _Nodes:
    """Growable numpy columns, one row per identity value."""

    COLUMNS = {"kind": np.uint8, "hi": np.uint64, "lo": np.uint64, "owner": np.int32, "nxt": np.int32,
               "size": np.int32, "suffix": np.uint8}

    def __init__(self) -> None:
        self.n = 0
        for name, dtype in self.COLUMNS.items():
            setattr(self, name, np.zeros(0, dtype))

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.hi):
            return
        capacity = max(need, int(len(self.hi) * 1.5), 1024)
        for name in self.COLUMNS:
            old = getattr(self, name)
            new = np.zeros(capacity, old.dtype)
            new[:self.n] = old[:self.n]
            setattr(self, name, new)


class IdentityGraph:
    def __init__(self) -> None:
        self.nodes = _Nodes()
        self._index_hi = np.zeros(0, np.uint64)  # sorted high bits of every value
        self._index_node = np.zeros(0, np.int32)  # the node of each index entry

    def __len__(self) -> int:
        return self.nodes.n

    # -- keys and ids -------------------------------------------------------
    def key_of(self, node: int) -> str:
        nd = self.nodes
        return f"{KINDS[nd.kind[node]]}:{int(nd.hi[node]):016x}{int(nd.lo[node]):016x}"

    def person_id_of(self, node: int) -> str:
        nd = self.nodes
        root = int(nd.owner[node])
        return f"p-{int(nd.hi[root]):016x}{int(nd.lo[root]) >> 48:04x}" + "x" * int(nd.suffix[root])

    def _find(self, kinds: np.ndarray, his: np.ndarray, los: np.ndarray) -> np.ndarray:
        """The node of each value, -1 where unknown (vectorised; equal high bits are walked)."""
        found = np.full(len(his), -1, np.int64)
        size = len(self._index_hi)
        pos = np.searchsorted(self._index_hi, his)
        active = np.nonzero(pos < size)[0]
        while active.size:
            at = pos[active]
            same_hi = self._index_hi[at] == his[active]
            active, at = active[same_hi], at[same_hi]
            node = self._index_node[at]
            hit = (self.nodes.lo[node] == los[active]) & (self.nodes.kind[node] == kinds[active])
            found[active[hit]] = node[hit]
            active = active[~hit]
            pos[active] += 1
            active = active[pos[active] < size]
        return found

    def _index(self, new_nodes: np.ndarray) -> None:
        if not new_nodes.size:
            return
        his = self.nodes.hi[new_nodes]
        order = np.argsort(his, kind="stable")
        his, new_nodes = his[order], new_nodes[order]
        at = np.searchsorted(self._index_hi, his)
        self._index_hi = np.insert(self._index_hi, at, his)
        self._index_node = np.insert(self._index_node, at, new_nodes.astype(np.int32))

    def lookup(self, keys: list[str]) -> dict[str, int]:
        """key -> node of the known keys among `keys`."""
        if not keys:
            return {}
        parsed = np.array([parse_key(k) for k in keys], dtype=np.uint64).reshape(-1, 3)
        found = self._find(parsed[:, 0].astype(np.uint8), parsed[:, 1], parsed[:, 2])
        return {k: int(n) for k, n in zip(keys, found.tolist()) if n >= 0}

    def persons_of(self, keys: list[str]) -> dict[str, str]:
        return {k: self.person_id_of(n) for k, n in self.lookup(keys).items()}

    def members(self, root: int) -> list[int]:
        nxt = self.nodes.nxt
        out, node = [root], int(nxt[root])
        while node != root:
            out.append(node)
            node = int(nxt[node])
        return out

    # -- loading --------------------------------------------------------------
    def load(self, client: Client) -> int:
        """Rebuild from the warehouse. Returns the number of identity values."""
        self.__init__()
        pages = []
        after = ""
        while True:  # pages by identity value: a whole-table result would cost the engine ~200 bytes per value
            raw = client.raw_query(_LOAD_SQL, parameters={"kinds": list(KINDS), "after": after, "limit": LOAD_PAGE},
                                   fmt="RowBinary")
            page = np.frombuffer(raw, _LOAD_ROW)
            if not page.size:
                break
            if not (page["ok"].all() and page["kind"].all()):
                raise IdentityGraphError("person_keys holds identity values or person ids this version cannot read")
            pages.append(page)
            last = page[-1]
            after = f"{KINDS[last['kind'] - 1]}:{int(last['hi']):016x}{int(last['lo']):016x}"
            if page.size < LOAD_PAGE:
                break
        if not pages:
            return 0
        rows = np.concatenate(pages)
        del pages
        rows = rows[np.lexsort((rows["suffix"], rows["pid_lo"], rows["pid_hi"]))]
        n = len(rows)
        kind, hi, lo = rows["kind"] - 1, rows["hi"], rows["lo"]
        pid_hi, pid_lo, suffix = rows["pid_hi"], rows["pid_lo"], rows["suffix"]
        # persons are runs of equal ids; the root is the member whose value the id comes from
        starts = np.concatenate(([True], (pid_hi[1:] != pid_hi[:-1]) | (pid_lo[1:] != pid_lo[:-1])
                                 | (suffix[1:] != suffix[:-1])))
        group = np.cumsum(starts) - 1
        first = np.nonzero(starts)[0]
        is_root = (hi == pid_hi) & ((lo >> np.uint64(48)).astype(np.uint16) == pid_lo)
        root_rows = np.nonzero(is_root)[0]
        roots = np.full(len(first), -1, np.int64)
        roots[group[root_rows]] = root_rows
        if (roots < 0).any():
            raise IdentityGraphError("person_keys has a person without the identity value its id comes from")
        nd = self.nodes
        nd.reserve(n)
        nd.n = n
        nd.kind[:n], nd.hi[:n], nd.lo[:n], nd.suffix[:n] = kind, hi, lo, suffix
        nd.owner[:n] = roots[group]
        sizes = np.diff(np.append(first, n))
        nd.size[:n] = 0
        nd.size[roots] = sizes
        every = np.arange(n)
        nxt = every + 1
        nxt[np.append(first[1:], n) - 1] = first  # each person's last member points back to its first
        nd.nxt[:n] = nxt
        self._index(every)
        return n

    # -- linking ---------------------------------------------------------------
    def link_all(self, key_lists: list[list[str]]) -> LinkResult:
        """Link the values of each list, in order (one list per event). Records what changed."""
        result = LinkResult()
        distinct = sorted({k for keys in key_lists for k in keys})
        node_of = self.lookup(distinct)
        first_new = self.nodes.n
        self.nodes.reserve(len(distinct) - len(node_of))
        for keys in key_lists:
            if keys:
                self._link(keys, node_of, result)
        self._index(np.arange(first_new, self.nodes.n))
        return result

    def merges(self, result: LinkResult) -> list[tuple[str, str]]:
        """(survivor, absorbed) of each person a link_all absorbed; the survivor is the person
        that holds the absorbed one's values now (after every link of the batch)."""
        return sorted((self.person_id_of(node), absorbed) for absorbed, node in result.absorbed_roots.items())

    def _new_node(self, key: str, person: int | None) -> int:
        """A node for a new value: it joins `person` (a root), or founds a person when None."""
        kind, hi, lo = parse_key(key)
        nd = self.nodes
        node = nd.n
        nd.n += 1
        nd.kind[node], nd.hi[node], nd.lo[node] = kind, hi, lo
        nd.owner[node] = node
        nd.nxt[node] = node
        nd.size[node] = 1
        nd.suffix[node] = 0
        if person is not None:
            nd.owner[node] = person
            self._splice(person, node, 1)
        return node

    def _link(self, keys: list[str], node_of: dict[str, int], result: LinkResult) -> None:
        nd = self.nodes
        roots = {int(nd.owner[node_of[k]]) for k in keys if k in node_of}
        target = None
        if roots:
            ids = {root: self.person_id_of(root) for root in roots}
            target = min(roots, key=lambda r: (-int(nd.size[r]), ids[r]))
            for other in roots - {target}:
                moved = self.members(other)
                for node in moved:
                    nd.owner[node] = target
                    result.changed_keys[self.key_of(node)] = ids[target]
                self._splice(target, other, len(moved))
                result.absorbed.add(ids[other])
                result.absorbed_roots[ids[other]] = other
        # unknown values join the target; without one, the first (keys[0]: sorted, all unknown) founds it
        for k in keys:
            if k not in node_of:
                node_of[k] = node = self._new_node(k, target)
                if target is None:
                    target = node
                result.changed_keys[k] = self.person_id_of(target)

    def _splice(self, target: int, other: int, count: int) -> None:
        """Join the circular member list of `other` into `target`'s."""
        nd = self.nodes
        nd.nxt[target], nd.nxt[other] = nd.nxt[other], nd.nxt[target]
        nd.size[target] += count
        nd.size[other] = 0
