"""The winning row of each call (migration 0012): the latest (occurred_at, event_id)
of its stored call_completed rows, recomputed for the calls a batch touched and
written at a newer version. Idempotent: the same stored rows give the same winner."""
from __future__ import annotations

from collections.abc import Iterable

from clickhouse_connect.driver.client import Client

from leadflow.warehouse import stage_keys

_CALL_WINNERS = """
INSERT INTO call_latest (call_id, event_id, occurred_at, identity_key, direction, outcome, operator_id, campaign_id,
                         started_at, answered_at, ended_at, wait_s, talk_s, version)
SELECT call_id, w.1, w.2, w.3, w.4, w.5, w.6, w.7, w.8, w.9, w.10, w.11, w.12, {version:UInt64}
FROM
(
    SELECT call_id,
           argMax(tuple(event_id, occurred_at, identity_key, direction, outcome, operator_id, campaign_id,
                        started_at, answered_at, ended_at, wait_s, talk_s), tuple(occurred_at, event_id)) AS w
    FROM calls
    WHERE call_id IN (SELECT key FROM enrich_call_ids)
    GROUP BY call_id
)
"""


def write_call_winners(client: Client, call_ids: Iterable[str], *, version: int) -> None:
    """Recompute the winners of these calls from every stored row of theirs."""
    ids = sorted(set(call_ids))
    if not ids:
        return
    stage_keys(client, "enrich_call_ids", ids)
    client.command(_CALL_WINNERS, parameters={"version": version})
