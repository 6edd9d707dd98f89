"""Queries beyond the four KPI groupings, shared by the terminal report, the HTML
report and the Grafana dashboards (one SQL file each in `sql/`, never copied):

    missed_by_hour       missed contacts by hour of week (168 rows)
    frt_distribution     first response time buckets per channel, against its SLA
    attribution_models   conversions and revenue by channel under every model
    marketing_daily      spend, leads, conversions, revenue per day and channel
    dead_letter_reasons  dead letters grouped by reason
    markov_removal_effects  removal effects of the markov chain (contract v1.1 section 1)
    ltv_predictions      predicted LTV by first-touch channel, newest stored fit (v1.1 section 2)

They take the same parameters as the groupings (`query.kpi_parameters`), plus
optional filters (`channels`, `operators`, `campaigns`: empty = all) and `tz`
(the business hours' time zone, for the hour of week).
"""
from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable

from clickhouse_connect.driver.client import Client

from leadflow.config import Settings
from services.attribution.kpis.query import DEFAULT_MODEL, SQL_DIR, kpi_parameters
from services.attribution.markov import chain_view

EXTRA_QUERIES = ("missed_by_hour", "frt_distribution", "attribution_models", "marketing_daily",
                 "dead_letter_reasons")
# staffing (Erlang C) and the contacts drill-down, run by contact_centre.py (issue 17)
EXTRA_QUERIES += ("staffing", "contacts")
EXTRA_QUERIES += ("markov_removal_effects", "ltv_predictions")  # contract v1.1 (issue 16)


@lru_cache(maxsize=None)
def load_extra_sql(name: str) -> str:
    """The SQL text of one extra query (sql/<name>.sql)."""
    if name not in EXTRA_QUERIES:
        raise ValueError(f"unknown query {name!r}; one of {', '.join(EXTRA_QUERIES)}")
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def extra_parameters(
    settings: Settings,
    *,
    model: str = DEFAULT_MODEL,
    date_from: date | None = None,
    date_to: date | None = None,
    now: datetime | None = None,
    channels: Iterable[str] = (),
    operators: Iterable[str] = (),
    campaigns: Iterable[str] = (),
) -> dict[str, Any]:
    """Every parameter an extra query may use (each uses a subset)."""
    params = kpi_parameters(settings, model=model, date_from=date_from, date_to=date_to, now=now)
    params.update(
        tz=settings.business_hours.timezone,
        channels=list(channels),
        operators=list(operators),
        campaigns=list(campaigns),
    )
    return params


def _clean(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def run_extra(client: Client, settings: Settings, name: str, _more: dict[str, Any] | None = None,
              **kw: Any) -> list[dict[str, Any]]:
    """Run one extra query; rows as dicts in the query's column order. `_more`: parameters
    beyond extra_parameters() (contact_centre.py)."""
    sql = load_extra_sql(name)
    params = {k: v for k, v in {**extra_parameters(settings, **kw), **(_more or {})}.items() if "{" + k + ":" in sql}
    if "{chain:" in sql:
        params["chain"] = chain_view(client, settings)
    result = client.query(sql, parameters=params)
    names = list(result.column_names)
    return [{k: _clean(v) for k, v in zip(names, row)} for row in result.result_rows]


def missed_by_hour(client: Client, settings: Settings, **kw: Any) -> list[dict[str, Any]]:
    """168 rows (Monday 00:00 first): weekday, weekday_name, hour, contacts, missed,
    missed_conversations, missed_calls, miss_rate."""
    return run_extra(client, settings, "missed_by_hour", **kw)


def frt_distribution(client: Client, settings: Settings, **kw: Any) -> list[dict[str, Any]]:
    """Rows (channel, bucket, bucket_label, upper_s, conversations, sla_s, within_sla)."""
    return run_extra(client, settings, "frt_distribution", **kw)


def attribution_models(client: Client, settings: Settings, **kw: Any) -> list[dict[str, Any]]:
    """Rows (channel, model, conversions, revenue) for every model."""
    return run_extra(client, settings, "attribution_models", **kw)


def marketing_daily(client: Client, settings: Settings, **kw: Any) -> list[dict[str, Any]]:
    """Rows (t, channel, spend, leads, conversions, revenue) per UTC day."""
    return run_extra(client, settings, "marketing_daily", **kw)


def dead_letter_reasons(client: Client, settings: Settings) -> list[dict[str, Any]]:
    """Rows (error_kind, event_type, fields, dead_letters, example, last_rejected_at)."""
    return run_extra(client, settings, "dead_letter_reasons")


def markov_removal_effects(client: Client, settings: Settings, **kw: Any) -> list[dict[str, Any]]:
    """Rows (channel, removal_effect, p_conversion, paths), largest effect first."""
    return run_extra(client, settings, "markov_removal_effects", **kw)


def worst_hours(rows: list[dict[str, Any]], n: int = 5) -> list[dict[str, Any]]:
    """The n hours of the week with the most missed contacts (ties: higher miss rate, earlier hour)."""
    hit = [r for r in rows if r["missed"] > 0]
    return sorted(hit, key=lambda r: (-r["missed"], -(r["miss_rate"] or 0), r["weekday"], r["hour"]))[:n]
