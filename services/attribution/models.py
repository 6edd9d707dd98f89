"""The five attribution models of kpis.md, as pure functions (the sixth, `markov`
of contract v1.1, is global: services/attribution/markov.py).

`credit_touches` takes a conversion's touches (any order), keeps the eligible
ones (won_at - lookback <= touch_at <= won_at), orders them by (time,
event_id) and returns (touch, credit) pairs whose credits sum to 1. No
eligible touch gives an empty list: the caller credits `(none)`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

STORED_MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")  # credited per conversion
MARKOV = "markov"  # credited from the chain of every journey when asked (markov.py)
MODELS = STORED_MODELS + (MARKOV,)


@dataclass(frozen=True, slots=True)
class Touch:
    event_id: str
    at: datetime
    kind: str
    channel: str
    campaign_id: str
    operators: tuple[str, ...] = ()


def eligible(touches: list[Touch], won_at: datetime, lookback: timedelta) -> list[Touch]:
    start = won_at - lookback
    return sorted((t for t in touches if start <= t.at <= won_at), key=lambda t: (t.at, t.event_id))


def weights(model: str, ordered: list[Touch], won_at: datetime, half_life: timedelta) -> list[float]:
    n = len(ordered)
    if n == 0:
        return []
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "time_decay":
        hl = half_life.total_seconds()
        raw = [2.0 ** (-((won_at - t.at).total_seconds()) / hl) for t in ordered]
        total = sum(raw)
        return [w / total for w in raw]
    if model == "position_based":
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        middle = 0.2 / (n - 2)
        return [0.4] + [middle] * (n - 2) + [0.4]
    raise ValueError(f"unknown attribution model {model!r}; one of {', '.join(STORED_MODELS)}")


def credit_touches(model: str, touches: list[Touch], won_at: datetime, *, lookback: timedelta,
                   half_life: timedelta) -> list[tuple[Touch, float]]:
    ordered = eligible(touches, won_at, lookback)
    return list(zip(ordered, weights(model, ordered, won_at, half_life)))
