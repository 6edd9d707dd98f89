"""Run the KPI queries of `sql/` and return rows with exactly the output keys of kpis.md.

    rows = compute_kpis(client, settings, "channels", model="linear",
                        date_from=date(2026, 5, 1), date_to=date(2026, 6, 1))

Rows come back as one dict per group, sorted by the group key, with the keys of
kpis.md "Output keys" in that order: None where undefined, floats for money,
rates and seconds, ints for counts (docs/kpi-readings.md M3).
"""
from __future__ import annotations

import math
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from leadflow.config import Settings
from services.attribution.models import MODELS

SQL_DIR = Path(__file__).resolve().parent / "sql"

GROUPINGS = ("channels", "campaigns", "operators", "service")
DEFAULT_MODEL = "linear"

# Open ends of the period (docs/kpi-readings.md M1); Date32 covers both.
OPEN_FROM = date(1970, 1, 1)
OPEN_TO = date(2200, 1, 1)

OUTPUT_KEYS: dict[str, tuple[str, ...]] = {
    "channels": (
        "channel", "spend", "leads", "cpl", "converted_leads", "conversion_rate",
        "conversions", "revenue", "cpa", "romi", "customers", "ltv",
    ),
    "campaigns": (
        "campaign_id", "channel", "spend", "leads", "cpl", "converted_leads",
        "conversion_rate", "conversions", "revenue", "cpa", "romi",
    ),
    "operators": (
        "operator_id", "conversations", "frt_median_s", "frt_p90_s", "frt_mean_s",
        "art_s", "sla_rate", "transfers", "template_share", "csat", "nps",
        "operator_conversion_rate", "max_concurrency",
    ) + ("bot_conversations", "bot_contained", "bot_containment_rate", "handoff_wait_median_s",
         "handoff_wait_p90_s"),  # contract v1.1 section 4
    "service": (
        "channel", "conversations", "frt_median_s", "frt_p90_s", "frt_mean_s",
        "art_s", "sla_rate", "missed_conversations", "transfer_rate",
        "contact_capture_rate", "calls_offered", "answer_rate", "missed_calls",
        "abandoned_calls", "wait_mean_s", "wait_median_s", "talk_mean_s", "csat",
        "nps", "lost_revenue",
    ) + ("bot_conversations", "bot_contained", "bot_containment_rate", "handoff_wait_median_s",
         "handoff_wait_p90_s"),  # contract v1.1 section 4
}

# Keys that are counts (ints); every other non-key value is a float.
INT_KEYS = frozenset({
    "leads", "converted_leads", "customers", "conversations", "transfers", "max_concurrency",
    "missed_conversations", "calls_offered", "missed_calls", "abandoned_calls",
    "bot_conversations", "bot_contained",
})
# The group key columns (strings).
STR_KEYS = frozenset({"channel", "campaign_id", "operator_id"})
# Money keys (reporting currency).
MONEY_KEYS = frozenset({"spend", "cpl", "revenue", "cpa", "ltv", "lost_revenue"})

# Defaults of the contract's fixed numbers that Settings may not carry.
DEFAULT_CONVERSION_WINDOW_DAYS = 90.0  # converted_leads, operator conversion, lost revenue (M5, O4, L2)
DEFAULT_CAPTURE_WINDOW_HOURS = 24.0  # contact_capture_rate (S7)


@lru_cache(maxsize=None)
def load_sql(grouping: str) -> str:
    """The SQL text of one grouping (sql/<grouping>.sql)."""
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; one of {', '.join(GROUPINGS)}")
    return (SQL_DIR / f"{grouping}.sql").read_text(encoding="utf-8")


def _ms(value: float) -> int:
    return int(round(value))


def kpi_parameters(
    settings: "Settings",
    *,
    model: str = DEFAULT_MODEL,
    date_from: date | None = None,
    date_to: date | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The query parameters of every KPI query (each query uses a subset)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    date_from = date_from or OPEN_FROM
    date_to = date_to or OPEN_TO
    if date_from >= date_to:
        raise ValueError(f"empty period: from {date_from} is not before to {date_to}")
    conversion_days = float(getattr(settings, "conversion_window_days", DEFAULT_CONVERSION_WINDOW_DAYS))
    capture_hours = float(getattr(settings, "capture_window_hours", DEFAULT_CAPTURE_WINDOW_HOURS))
    if now is None:
        now = getattr(settings, "now", None)
    if now is not None:
        now = now.astimezone(timezone.utc) if now.tzinfo else now.replace(tzinfo=timezone.utc)
    sla = dict(settings.sla_seconds)
    return {
        "date_from": date_from,
        "date_to": date_to,
        "model": model,
        "credits": credits_view(model),
        "conversion_window_ms": _ms(conversion_days * 86_400_000),
        "capture_window_ms": _ms(capture_hours * 3_600_000),
        "missed_after_ms": _ms(float(settings.missed_after_hours) * 3_600_000),
        "now": now,
        "sla_channels": list(sla.keys()),
        "sla_seconds": [float(v) for v in sla.values()],
    }


def credits_view(model: str) -> str:
    """The view of one model's credits (migration 0025), the KPI queries' {credits:Identifier}."""
    return f"credits_{model}"


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if "{" + k + ":" in sql}


def _clean(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in STR_KEYS:
        return str(value)
    if key in INT_KEYS:
        return int(value)
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def compute_kpis(
    client: "Client",
    settings: "Settings",
    grouping: str,
    *,
    model: str = DEFAULT_MODEL,
    date_from: date | None = None,
    date_to: date | None = None,
    now: datetime | None = None,
    source: str = "auto",
) -> list[dict[str, Any]]:
    """KPIs of one grouping over [date_from, date_to) (None = open), one dict per group.

    `source`: "rollups" (the stored day x group partial results, services/rollup/), "facts"
    (the reference path: every fact, this folder's SQL) or "auto": the rollups when they
    can answer (services/rollup/refresh.py `readable`), else the facts."""
    from services.rollup import refresh as rollups

    load_sql(grouping)  # an unknown grouping fails here, whatever the source
    sql = rollups.kpis_sql(grouping) if rollups.use_rollups(client, settings, grouping, source) else load_sql(grouping)
    params = kpi_parameters(settings, model=model, date_from=date_from, date_to=date_to, now=now)
    params["rollup"] = rollups.model_view(grouping, model)
    result = client.query(sql, parameters=_used(sql, params))
    keys = OUTPUT_KEYS[grouping]
    names = list(result.column_names)
    if result.result_rows and names != list(keys):  # an empty result may come back without names
        raise RuntimeError(f"{grouping}.sql returns columns {names}, expected {list(keys)}")
    return [{k: _clean(k, v) for k, v in zip(keys, row)} for row in result.result_rows]
