"""Rendering KPI rows (query.compute_kpis) as a table for people, JSON or CSV.

* json: one array of objects with exactly the output keys of kpis.md, null where
  undefined (cli.md).
* csv: a header row of the output keys, then one line per group; numbers
  unrounded, empty cells for null.
* table: aligned, numbers right-aligned, units shown: seconds "12.5 s", rates
  as percentages "41.2%", money with two decimals, "—" for null. The lost
  revenue column is labelled as an estimate (kpis.md).
"""
from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Sequence

import orjson

from leadflow.table import render

NULL = "—"
FORMATS = ("table", "json", "csv")

MONEY_KEYS = frozenset({"spend", "cpl", "revenue", "cpa", "ltv", "lost_revenue",
                        "historic_ltv", "predicted_future_value", "predicted_ltv"})
RATE_KEYS = frozenset({
    "conversion_rate", "romi", "sla_rate", "transfer_rate", "contact_capture_rate", "answer_rate",
    "template_share", "csat", "operator_conversion_rate",
    "bot_containment_rate",
    "p_alive", "removal_effect",
})
SECONDS_KEYS = frozenset({
    "frt_median_s", "frt_p90_s", "frt_mean_s", "art_s", "wait_mean_s", "wait_median_s", "talk_mean_s",
    "handoff_wait_median_s", "handoff_wait_p90_s",
})
TEXT_KEYS = frozenset({"channel", "campaign_id", "operator_id"})
HEADERS = {"lost_revenue": "lost_revenue (est.)"}


def format_cell(key: str, value: Any) -> str:
    """One value as people read it."""
    if value is None:
        return NULL
    if key in TEXT_KEYS:
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    v = float(value)
    if key in MONEY_KEYS:
        return f"{v:,.2f}"
    if key in RATE_KEYS:
        return f"{v * 100:,.1f}%"
    if key in SECONDS_KEYS:
        return f"{v:,.1f} s"
    if key == "nps":
        return f"{v:,.1f}"
    if key == "conversions":
        return f"{v:,.2f}"
    return f"{v:,.3f}".rstrip("0").rstrip(".")


def _period(date_from: date | None, date_to: date | None) -> str:
    if date_from is None and date_to is None:
        return "all time"
    if date_to is None:
        return f"from {date_from}"
    if date_from is None:
        return f"before {date_to}"
    return f"{date_from} to {date_to} (end exclusive)"


def render_table(rows: Sequence[dict], grouping: str, keys: Sequence[str], *, model: str | None = None,
                 date_from: date | None = None, date_to: date | None = None) -> str:
    caption = f"{grouping}, {_period(date_from, date_to)}"
    if model is not None and grouping in ("channels", "campaigns"):
        caption += f", attribution model {model}"
    if not rows:
        return f"{caption}\nno rows (is the warehouse empty? `leadflow replay FILE` fills it)"
    body = [[format_cell(k, r[k]) for k in keys] for r in rows]
    right = [k not in TEXT_KEYS for k in keys]
    out = [caption, render([HEADERS.get(k, k) for k in keys], body, right)]
    if "lost_revenue" in keys:
        out.append("lost_revenue is an estimate: missed contacts x conversion share of the others x their mean deal")
    return "\n".join(out)


def render_json(rows: Sequence[dict]) -> str:
    return orjson.dumps(list(rows)).decode()


def render_csv(rows: Sequence[dict], keys: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for r in rows:
        w.writerow(["" if r[k] is None else (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in keys])
    return buf.getvalue().rstrip("\n")


def render_rows(rows: Sequence[dict], grouping: str, keys: Sequence[str], fmt: str, **caption: Any) -> str:
    if fmt == "json":
        return render_json(rows)
    if fmt == "csv":
        return render_csv(rows, keys)
    if fmt == "table":
        return render_table(rows, grouping, keys, **caption)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


# --- contract v1.1: `kpis markov` and `kpis ltv` ------------------------------------------------

def render_markov(chain: dict[str, Any], fmt: str) -> str:
    """{"p_conversion", "paths", "removal_effects"}: JSON as it is, CSV and table one row per channel."""
    rows = [{"channel": c, "removal_effect": e} for c, e in chain["removal_effects"].items()]
    if fmt == "json":
        return orjson.dumps(chain).decode()
    if fmt == "csv":
        return render_csv(rows, ("channel", "removal_effect"))
    caption = (f"markov chain over every journey: {chain['paths']:,} paths, "
               f"P(conversion) = {format_cell('p', chain['p_conversion'])}")
    if not rows:
        return f"{caption}\nno paths (is the warehouse empty? `leadflow replay FILE` fills it)"
    body = [[format_cell(k, r[k]) for k in ("channel", "removal_effect")] for r in rows]
    return "\n".join([caption, render(["channel", "removal_effect"], body, [False, True]),
                      "removal effect = share of conversions lost if the channel were removed from every journey"])


def render_ltv(result: dict[str, Any], fmt: str, *, date_to: date | None, horizon_days: int,
               by: str = "channel") -> str:
    """Predicted LTV rows; JSON {"rows": [...], "model": {...} | null}."""
    from services.attribution.kpis.ltv import output_keys

    keys = output_keys(by)
    if fmt == "json":
        return orjson.dumps(result).decode()
    if fmt == "csv":
        return render_csv(result["rows"], keys)
    calibration = f"purchases before {date_to}" if date_to else "all purchases"
    out = [f"predicted LTV by first-touch {by} ({calibration}; next {horizon_days} days)"]
    if not result["rows"]:
        return out[0] + "\nno customers (is the warehouse empty? `leadflow replay FILE` fills it)"
    body = [[format_cell(k, r[k]) for k in keys] for r in result["rows"]]
    out.append(render(list(keys), body, [k not in TEXT_KEYS for k in keys]))
    model = result["model"]
    if model is None:
        out.append("no prediction: it needs at least 20 customers and 5 repeat customers")
    else:
        bg, gg = model["bgnbd"], model["gamma_gamma"]
        out.append(f"BG/NBD r={bg['r']:.4g} alpha={bg['alpha']:.4g} a={bg['a']:.4g} b={bg['b']:.4g}; "
                   f"Gamma-Gamma p={gg['p']:.4g} q={gg['q']:.4g} v={gg['v']:.4g}; "
                   f"{model['customers']:,} customers (weeks as the time unit)")
    return "\n".join(out)
