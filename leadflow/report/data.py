"""Everything a report shows, read from the warehouse through the KPI layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from clickhouse_connect.driver.client import Client

from leadflow.config import Settings
from services.attribution.kpis import MODELS, compute_kpis
from services.attribution.kpis import extra
from leadflow.report import contact_centre

Row = dict[str, Any]


@dataclass
class ReportData:
    model: str
    date_from: date | None
    date_to: date | None
    currency: str
    warehouse: str
    generated_at: datetime
    events: int = 0
    first_event: datetime | None = None
    last_event: datetime | None = None
    channels: list[Row] = field(default_factory=list)
    campaigns: list[Row] = field(default_factory=list)
    operators: list[Row] = field(default_factory=list)
    service: list[Row] = field(default_factory=list)
    models: list[Row] = field(default_factory=list)
    missed_hours: list[Row] = field(default_factory=list)
    frt: list[Row] = field(default_factory=list)
    daily: list[Row] = field(default_factory=list)
    dead_letters: list[Row] = field(default_factory=list)
    sla_seconds: dict[str, float] = field(default_factory=dict)
    timezone: str = "UTC"
    # contact centre, issue 17 (leadflow/report/contact_centre.py)
    staffing: list[Row] = field(default_factory=list)
    slowest: dict[str, list[Row]] = field(default_factory=dict)
    recent_missed: dict[str, list[Row]] = field(default_factory=dict)
    # contract v1.1 (issue 16): predicted LTV by first-touch channel and the markov chain
    ltv: dict[str, Any] = field(default_factory=lambda: {"rows": [], "model": None})
    markov: dict[str, Any] = field(default_factory=dict)

    @property
    def predicted_ltv(self) -> dict[str, Row]:
        return {r["channel"]: r for r in self.ltv["rows"]}

    @property
    def period_label(self) -> str:
        if self.date_from is None and self.date_to is None:
            if self.first_event and self.last_event:
                return (f"all time ({self.first_event:%Y-%m-%d} to {self.last_event:%Y-%m-%d}, "
                        f"{self.events:,} events)")
            return "all time"
        a = self.date_from.isoformat() if self.date_from else "the beginning"
        b = self.date_to.isoformat() if self.date_to else "now"
        return f"{a} to {b} (exclusive)"

    # --- totals the reports headline -------------------------------------------------
    def total(self, rows: list[Row], key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return sum(vals) if vals else None

    @property
    def spend(self) -> float | None:
        return self.total(self.channels, "spend")

    @property
    def revenue(self) -> float:
        return self.total(self.channels, "revenue") or 0.0

    @property
    def leads(self) -> int:
        return int(self.total(self.channels, "leads") or 0)

    @property
    def missed_total(self) -> int:
        return sum(r["missed"] for r in self.missed_hours)

    @property
    def contacts_total(self) -> int:
        return sum(r["contacts"] for r in self.missed_hours)

    @property
    def lost_revenue(self) -> float | None:
        return self.total(self.service, "lost_revenue")

    @property
    def dead_letter_total(self) -> int:
        return sum(r["dead_letters"] for r in self.dead_letters)

    def worst_hours(self, n: int = 5) -> list[Row]:
        return extra.worst_hours(self.missed_hours, n)


def collect(client: Client, settings: Settings, *, model: str = "linear", date_from: date | None = None,
            date_to: date | None = None) -> ReportData:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; one of {', '.join(MODELS)}")
    period = {"date_from": date_from, "date_to": date_to}
    data = ReportData(model=model, date_from=date_from, date_to=date_to, currency=settings.reporting_currency,
                      warehouse=settings.warehouse_dsn, generated_at=datetime.now(timezone.utc),
                      sla_seconds=dict(settings.sla_seconds), timezone=settings.business_hours.timezone)
    n, first, last = client.query(
        "SELECT uniqExact(event_id), min(occurred_at), max(occurred_at) FROM raw_events").result_rows[0]
    data.events = int(n)
    data.first_event, data.last_event = (first, last) if n else (None, None)
    data.channels = compute_kpis(client, settings, "channels", model=model, **period)
    data.campaigns = compute_kpis(client, settings, "campaigns", model=model, **period)
    data.operators = compute_kpis(client, settings, "operators", **period)
    data.service = compute_kpis(client, settings, "service", **period)
    data.models = extra.attribution_models(client, settings, **period)
    data.missed_hours = extra.missed_by_hour(client, settings, **period)
    data.frt = extra.frt_distribution(client, settings, **period)
    data.daily = extra.marketing_daily(client, settings, model=model, **period)
    data.dead_letters = extra.dead_letter_reasons(client, settings)
    contact_centre.collect(data, client, settings, **period)
    collect_v11(client, data, settings)
    return data


def collect_v11(client: Client, data: ReportData, settings: Settings | None = None) -> None:
    """Contract v1.1 (issue 16): predicted LTV (the whole warehouse: LTV ignores the period)
    and the markov chain (all journeys, whatever the period)."""
    from services.attribution.kpis.ltv import predicted_ltv
    from services.attribution.markov import chain

    data.ltv = predicted_ltv(client, settings)
    data.markov = chain(client, settings)
