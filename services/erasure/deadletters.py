"""Which dead letters hold one of a person's identity values.

Dead letters keep the original bytes, so a value can be there in any form it was sent in:
`" Ada.Kim@Example.COM"`, `"+7 (916) 123-45-67"`, `"0079161234567"`, inside a message
text, in a line that is not even JSON. The person's values are known only as keyed
hashes (apart from the one given to `forget`), so every candidate string of a dead letter
is normalised as ingest would and hashed under each identity kind
(leadflow.privacy.hashes_in), and the hashes are compared with the person's; the given
value, as typed and normalised, is also searched for as plain bytes (case-insensitive).
What this cannot match: a value split or re-encoded beyond that (escaped unicode inside
an email, a phone spelled out in words).
"""
from __future__ import annotations

from clickhouse_connect.driver.client import Client

from leadflow.privacy import IdentityHasher, hashes_in

PAGE = 10_000


def holds(raw: bytes, keys: set[str], hasher: IdentityHasher, needles: tuple[bytes, ...] = ()) -> bool:
    """Whether these original bytes hold one of `keys` (keyed hashes) in a form we can recognise,
    or one of `needles` (lower-cased bytes) anywhere."""
    lowered = raw.lower()
    if any(n in lowered for n in needles) or any(k.encode() in raw for k in keys):
        return True
    return bool(hashes_in(raw, hasher) & keys)


def matching_dead_letters(client: Client, keys: set[str], hasher: IdentityHasher,
                          needles: tuple[bytes, ...] = ()) -> list[str]:
    """Ids of the stored dead letters that hold one of the person's values (read in pages)."""
    out, after = [], ""
    while True:
        rows = client.query(
            "SELECT dead_letter_id, raw_payload FROM dead_letters WHERE dead_letter_id > {after:String} "
            "ORDER BY dead_letter_id LIMIT {page:UInt32}",
            parameters={"after": after, "page": PAGE}, column_formats={"raw_payload": "bytes"}).result_rows
        out.extend(dl_id for dl_id, raw in rows if holds(raw, keys, hasher, needles))
        if len(rows) < PAGE:
            return sorted(set(out))
        after = rows[-1][0]
