"""Predicted lifetime value (contract v1.1 section 2): `leadflow kpis ltv`.

sql/ltv_customers.sql gives one row per customer of the calibration period (x,
t_x, T in days, the mean repeat-day value m, the historic value, the first-touch
channel); services/attribution/clv.py fits BG/NBD on (x, t_x, T) in weeks and
Gamma-Gamma on the repeat customers' (x, m), then predicts each customer's value
over the horizon. Rows are per first-touch channel (or campaign: `by="campaign"`,
customers whose first touch had no campaign are in no row):

    channel | campaign_id, customers, historic_ltv, predicted_future_value, predicted_ltv, p_alive

With fewer than MIN_CUSTOMERS customers or MIN_REPEAT repeat customers the model is
None and so are the predictions (historic figures stay).

The purchase days come from `ltv_purchase_days` (every won deal and payment) or, with rollups
on, from those the rollup stage keeps (`ltv_purchase_days_rollup`, migration 0042,
services/rollup/sql/ltv/): `purchases_view`.
"""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from leadflow.warehouse import insert_rows
from services.attribution.kpis.query import SQL_DIR

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from leadflow.config import Settings

MIN_CUSTOMERS = 20
MIN_REPEAT = 5
DEFAULT_HORIZON_DAYS = 365
VALUE_KEYS = ("customers", "historic_ltv", "predicted_future_value", "predicted_ltv", "p_alive")
KEYS = ("channel",) + VALUE_KEYS
GROUP_KEYS = {"channel": "channel", "campaign": "campaign_id"}  # --by -> the rows' key


def output_keys(by: str = "channel") -> tuple[str, ...]:
    return (GROUP_KEYS[by],) + VALUE_KEYS


@lru_cache(maxsize=None)
def _sql() -> str:
    return (SQL_DIR / "ltv_customers.sql").read_text(encoding="utf-8")


def purchases_view(client: "Client", settings: "Settings | None" = None, source: str = "auto") -> str:
    """Where the customers' purchase days are read: `ltv_purchase_days_rollup` (the rollup stage
    keeps them, migration 0042) when the rollups can answer (source "auto") or are asked for, else
    `ltv_purchase_days` (every won deal and payment, the reference path)."""
    from services.rollup.refresh import use_rollups

    return "ltv_purchase_days_rollup" if use_rollups(client, settings, "ltv", source) else "ltv_purchase_days"


def customers(client: "Client", settings: "Settings | None" = None, *, date_to: date | None = None,
              source: str = "auto") -> dict[str, np.ndarray]:
    """Columns of sql/ltv_customers.sql as numpy arrays (channel as an object array)."""
    result = client.query(_sql(), parameters={"date_to": date_to,
                                              "purchases": purchases_view(client, settings, source)})
    channel, campaign, x, t_x, t, m, value = result.result_columns or [()] * 7
    return {"channel": np.array(channel, dtype=object), "campaign": np.array(campaign, dtype=object),
            "x": np.array(x, dtype=float),
            "t_x": np.array(t_x, dtype=float) / 7.0, "T": np.array(t, dtype=float) / 7.0,
            "m": np.array([math.nan if v is None else float(v) for v in m], dtype=float),
            "value": np.array([float(v) for v in value], dtype=float)}


def _num(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def predict(c: dict[str, np.ndarray], *, horizon_days: int = DEFAULT_HORIZON_DAYS,
            by: str = "channel") -> dict[str, Any]:
    """{"rows": [...], "model": {...} | None} from the customers' columns (one fit over all of them)."""
    from services.attribution import clv

    n = len(c["x"])
    repeat = c["x"] > 0
    model = None
    future = alive = None
    if n >= MIN_CUSTOMERS and int(repeat.sum()) >= MIN_REPEAT:
        bg = clv.fit_bgnbd(c["x"], c["t_x"], c["T"])
        gg = clv.fit_gamma_gamma(c["x"][repeat], c["m"][repeat])
        model = {"bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b},
                 "gamma_gamma": {"p": gg.p, "q": gg.q, "v": gg.v}, "customers": n}
        model = {k: ({kk: float(vv) for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in model.items()}
        if gg.q > 1:  # the Gamma-Gamma mean exists
            future = bg.expected_purchases(horizon_days / 7.0, c["x"], c["t_x"], c["T"]) * gg.expected_value(
                c["x"], c["m"])
        alive = bg.p_alive(c["x"], c["t_x"], c["T"])
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(c[by]):
        if key != "":  # by campaign: a first touch without a campaign is in no row
            groups[key].append(i)
    rows = []
    for key in sorted(groups):
        idx = np.array(groups[key])
        historic = float(c["value"][idx].mean())
        fut = None if future is None else _num(future[idx].mean())
        rows.append({GROUP_KEYS[by]: key, "customers": len(idx), "historic_ltv": historic,
                     "predicted_future_value": fut, "predicted_ltv": None if fut is None else historic + fut,
                     "p_alive": None if alive is None else _num(alive[idx].mean())})
    return {"rows": rows, "model": model}


def predicted_ltv(client: "Client", settings: "Settings | None" = None, *, date_to: date | None = None,
                  horizon_days: int = DEFAULT_HORIZON_DAYS, by: str = "channel", source: str = "auto") -> dict[str, Any]:
    """`leadflow kpis ltv`: {"rows": [...], "model": {"bgnbd": ..., "gamma_gamma": ..., "customers": n} | None}.

    A fit of the whole warehouse (no --to) is also stored in `ltv_predictions` (migration
    0026) for the dashboards, which cannot fit in SQL."""
    result = predict(customers(client, settings, date_to=date_to, source=source), horizon_days=horizon_days, by=by)
    if date_to is None and by == "channel":
        store(client, result, horizon_days=horizon_days)
    return result


def store(client: "Client", result: dict[str, Any], *, horizon_days: int) -> None:
    now = datetime.now(timezone.utc)
    model = orjson.dumps(result["model"]).decode()
    insert_rows(client, "ltv_predictions", ["fitted_at", "horizon_days", *KEYS, "model"],
                [(now, horizon_days, *(r[k] for k in KEYS), model) for r in result["rows"]])
