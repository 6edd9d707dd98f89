"""The `markov` attribution model (contract v1.1 section 1).

Removal effects depend on every journey, so no conversion's markov credit can be
stored when its person is recomputed. The stage keeps the journeys current instead
(migration 0025):

* converting paths are the eligible touches each stored model's row already lists
  (attribution_credits, written per person);
* non-converting paths: `journey_rows` writes, for every person of a batch, the
  touches of a person without a conversion (empty for anybody else, which also
  retires the journey of a person who converted or was absorbed by a merge).

The views of migration 0025 aggregate the transitions, solve the chain and credit
each conversion when a query asks (`credits_markov` is what the KPI queries read),
so markov figures are exact and current whatever was merged or arrived late.
`chain` reads the one-row summary that `leadflow kpis markov` prints. With rollups on, the
rollup stage keeps the transition counts (migration 0041, services/rollup/sql/markov/) and the
chain is solved from them (~500 ms -> tens of ms at 10M events); the views over the journeys stay
the reference path.
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.client import Client

from services.attribution.models import Touch

if TYPE_CHECKING:
    from leadflow.config import Settings

JOURNEY_COLUMNS = ["person_id", "version", "lookback_ms", "channels", "touch_at"]


def journey_rows(person_ids: list[str], deals: list[tuple], touches: dict[str, list[Touch]], *,
                 lookback: timedelta, version: int) -> list[tuple]:
    """One `journeys` row per person: the touches of a person without a conversion (in the
    (time, event_id) order load_people gives) that a lookback window ending at or after their
    last touch can still hold; empty arrays for everybody else."""
    converting = {deal[0] for deal in deals}
    lookback_ms = int(lookback.total_seconds() * 1000)
    rows = []
    for person in person_ids:
        mine = touches.get(person)
        if not mine or person in converting:
            rows.append((person, version, lookback_ms, [], []))
            continue
        if len(mine) > 1 and mine[0].at < mine[-1].at - lookback:  # most people have one touch
            cut = mine[-1].at - lookback
            mine = [t for t in mine if t.at >= cut]
        rows.append((person, version, lookback_ms, [t.channel for t in mine], [t.at for t in mine]))
    return rows


def chain_view(client: Client, settings: "Settings | None" = None, source: str = "auto") -> str:
    """The view holding the chain: `markov_chain_rollup` (the transition counts the rollup stage
    keeps, migration 0041) when the rollups can answer (source "auto") or are asked for, else
    `markov_chain` (every journey and credit, the reference path)."""
    from services.rollup.refresh import use_rollups

    return "markov_chain_rollup" if use_rollups(client, settings, "markov", source) else "markov_chain"


def chain(client: Client, settings: "Settings | None" = None, *, source: str = "auto") -> dict[str, Any]:
    """The chain over every journey of the warehouse:
    {"p_conversion": x, "paths": n, "removal_effects": {channel: re, ...}} (None without paths)."""
    paths, p_conversion, channels, effects = client.query(
        f"SELECT paths, p_conversion, channels, removal_effects FROM {chain_view(client, settings, source)}"
    ).result_rows[0]
    return {"p_conversion": None if not paths else float(p_conversion), "paths": int(paths),
            "removal_effects": {c: (None if e is None else float(e)) for c, e in zip(channels, effects)}}
