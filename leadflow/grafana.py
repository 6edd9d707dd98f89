"""Grafana dashboards as code (deploy/grafana/), generated from the KPI layer.

Every ClickHouse panel's SQL is built here from the SQL files of
services/attribution/kpis/sql (the four groupings and the shared extra
queries): their server-side parameters ({date_from:Date32}, {model:String},
...) become Grafana macros and variables ($__fromTime, $__toTime, ${model},
${channel:singlequote}, ...), and a thin wrapper selects, filters or pivots the
rows for the panel. No KPI SQL is written twice: `leadflow grafana build`
regenerates deploy/grafana/dashboards/*.json, and a test checks the committed
files are what the generator makes and runs every panel on the engine.

`leadflow grafana push --url URL --token T` uploads the dashboards (grafana-client).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from leadflow.config import Settings, load_settings
from services.attribution.kpis.extra import load_extra_sql
from services.attribution.kpis.query import (
    DEFAULT_CAPTURE_WINDOW_HOURS,
    DEFAULT_CONVERSION_WINDOW_DAYS,
    GROUPINGS,
    MODELS,
    load_sql,
)
from services.rollup.refresh import kpis_sql

REPO = Path(__file__).resolve().parents[1]
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
FOLDER_UID = "leadflow"

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "leadflow-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "leadflow-prometheus"}

# the period of a panel: Grafana's time range, as whole UTC days [from, to)
PERIOD_FROM = "toDate32($__fromTime)"
PERIOD_TO = "toDate32(addSeconds($__toTime, -1)) + 1"

_PARAM = re.compile(r"\{(\w+):([^{}]+)\}")


# --- SQL of the KPI layer with Grafana macros --------------------------------------------------

def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


def grafana_values(settings: Settings) -> dict[str, str]:
    """What each KPI query parameter becomes in a panel (filters default to `[]` = all)."""
    conversion_days = float(getattr(settings, "conversion_window_days", DEFAULT_CONVERSION_WINDOW_DAYS))
    capture_hours = float(getattr(settings, "capture_window_hours", DEFAULT_CAPTURE_WINDOW_HOURS))
    sla = dict(settings.sla_seconds)
    return {
        "date_from": PERIOD_FROM,
        "date_to": PERIOD_TO,
        "model": "'${model}'",
        "credits": "credits_${model}",
        "conversion_window_ms": f"toInt64({int(round(conversion_days * 86_400_000))})",
        "capture_window_ms": f"toInt64({int(round(capture_hours * 3_600_000))})",
        "missed_after_ms": f"toInt64({int(round(float(settings.missed_after_hours) * 3_600_000))})",
        "now": "CAST(NULL AS Nullable(DateTime64(3, 'UTC')))",
        "sla_channels": _sql_list(list(sla)),
        "sla_seconds": "CAST([" + ", ".join(repr(float(v)) for v in sla.values()) + "] AS Array(Float64))",
        "tz": "'" + settings.business_hours.timezone + "'",
        "channels": "CAST([] AS Array(String))",
        "operators": "CAST([] AS Array(String))",
        "campaigns": "CAST([] AS Array(String))",
        **contact_centre_values(settings),
    }


def contact_centre_values(settings: Settings) -> dict[str, str]:
    """The parameters of staffing.sql and contacts.sql (issue 17) in a panel."""
    return {
        "service_level": f"toFloat64({float(settings.service_level)!r})",
        "call_target_s": f"toFloat64({float(settings.call_target_seconds)!r})",
        "missed_only": "toUInt8(0)",
        "order": "'recent'",
        "limit": f"toUInt64({CONTACTS_PANEL_LIMIT})",
    }


def kpi_sql(name: str, settings: Settings, **filters: str) -> str:
    """The SQL of a grouping or an extra query with every parameter replaced for Grafana.

    `filters` override parameters, e.g. channels="[${channel:singlequote}]"."""
    # a grouping: its rollup when rollups are on (services/rollup), else the SQL over the facts
    grouping = settings.rollups and name in ("channels", "campaigns", "operators", "service")
    sql = kpis_sql(name) if grouping else load_sql(name) if name in GROUPINGS else load_extra_sql(name)
    values = {**grafana_values(settings), "rollup": f"rollup_{name}_${{model}}",
              "chain": "markov_chain_rollup" if settings.rollups else "markov_chain", **filters}

    def sub(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"{name}.sql: no Grafana value for parameter {m.group(1)}")
        return values[m.group(1)]

    # whole-line comments stay in the SQL file (they document it), not in every panel
    lines = [line for line in _PARAM.sub(sub, sql).splitlines() if not line.lstrip().startswith("--")]
    body = "\n".join(lines).strip()
    where = f"services/rollup/sql/{name}/kpis.sql" if grouping else f"services/attribution/kpis/sql/{name}.sql"
    return f"-- {where} (leadflow grafana build)\n{body}"


def wrap(select: str, name: str, settings: Settings, tail: str = "", **filters: str) -> str:
    """SELECT ... FROM (<kpi sql>) <tail>: a panel's view of one KPI query."""
    inner = kpi_sql(name, settings, **filters).replace("\n", "\n    ")
    return f"SELECT {select}\nFROM\n(\n    {inner}\n)\n{tail}".rstrip()


# --- panel building blocks ---------------------------------------------------------------------

class _Layout:
    def __init__(self) -> None:
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _ch_target(sql: str, *, time_series: bool = False) -> dict:
    return {"refId": "A", "datasource": CLICKHOUSE, "editorType": "sql", "format": 0 if time_series else 1,
            "queryType": "timeseries" if time_series else "table", "rawSql": sql}


def _organize(columns: list[tuple[str, str]]) -> dict:
    """Column order and labels: also the list of columns the panel expects from its query."""
    return {"id": "organize", "options": {
        "indexByName": {c: i for i, (c, _) in enumerate(columns)},
        "renameByName": {c: label for c, label in columns if label and label != c},
        "excludeByName": {},
    }}


def _units(columns: list[tuple[str, str]], units: dict[str, str]) -> list[dict]:
    return [{"matcher": {"id": "byName", "options": c},
             "properties": [{"id": "unit", "value": units[c]}]} for c, _ in columns if c in units]


def _panel(layout: _Layout, kind: str, title: str, w: int, h: int, *, description: str = "",
           datasource: dict = CLICKHOUSE, targets: list[dict], columns: list[tuple[str, str]] | None = None,
           units: dict[str, str] | None = None, options: dict | None = None, defaults: dict | None = None,
           transformations: list[dict] | None = None, overrides: list[dict] | None = None) -> dict:
    overrides = (_units(columns, units or {}) if columns else []) + (overrides or [])
    tr = ([_organize(columns)] if columns else []) + (transformations or [])
    return {
        "id": layout.id(), "type": kind, "title": title, "description": description,
        "gridPos": layout.place(w, h), "datasource": datasource, "targets": targets,
        "fieldConfig": {"defaults": defaults or {}, "overrides": overrides},
        "options": options or {}, "transformations": tr,
    }


def _select(columns: list[tuple[str, str]]) -> str:
    return ", ".join(c for c, _ in columns)


def _money(settings: Settings) -> str:
    return f"currency{settings.reporting_currency}"


def _query_var(name: str, label: str, sql: str, *, multi: bool = True) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": CLICKHOUSE,
            "query": sql, "definition": sql, "refresh": 2, "sort": 1,
            "multi": multi, "includeAll": multi, "current": {"selected": True, "text": ["All"],
                                                            "value": ["$__all"]},
            "options": [], "hide": 0}


def _model_var() -> dict:
    return {"name": "model", "label": "attribution model", "type": "custom", "query": ",".join(MODELS),
            "multi": False, "includeAll": False, "hide": 0,
            "current": {"selected": True, "text": "linear", "value": "linear"},
            "options": [{"selected": m == "linear", "text": m, "value": m} for m in MODELS]}


def _dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["leadflow"],
        "timezone": "utc", "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        # `make run` simulates May 2026; a year back keeps it in view (pick any period in the time picker)
        "time": {"from": "now-1y", "to": "now"}, "refresh": "", "liveNow": False,
        "annotations": {"list": []}, "links": [],
        "templating": {"list": variables}, "panels": panels,
    }


STAT_OPTIONS = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "none", "textMode": "value_and_name", "justifyMode": "auto",
                "orientation": "horizontal"}
TABLE_OPTIONS = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}


def _barchart(orientation: str, x_field: str, stacking: str = "none") -> dict:
    return {"orientation": orientation, "xField": x_field, "stacking": stacking, "showValue": "auto",
            "groupWidth": 0.7, "barWidth": 0.9, "legend": {"showLegend": True, "displayMode": "list",
                                                           "placement": "bottom"},
            "tooltip": {"mode": "multi"}, "xTickLabelRotation": 0}


# --- the dashboards ----------------------------------------------------------------------------

CHANNEL_FILTER = "[${channel:singlequote}]"


def marketing_dashboard(settings: Settings) -> dict:
    money = _money(settings)
    lay = _Layout()
    ch_in = "WHERE channel IN (${channel:singlequote})"
    channel_cols = [("channel", "channel"), ("spend", "spend"), ("leads", "leads"), ("cpl", "CPL"),
                    ("converted_leads", "converted leads"), ("conversion_rate", "conversion"),
                    ("conversions", "conversions"), ("revenue", "revenue"), ("cpa", "CPA"), ("romi", "ROMI"),
                    ("customers", "customers"), ("ltv", "LTV")]
    campaign_cols = [("campaign_id", "campaign"), ("channel", "channel"), ("spend", "spend"), ("leads", "leads"),
                     ("cpl", "CPL"), ("converted_leads", "converted leads"), ("conversion_rate", "conversion"),
                     ("conversions", "conversions"), ("revenue", "revenue"), ("cpa", "CPA"), ("romi", "ROMI")]
    units = {"spend": money, "cpl": money, "revenue": money, "cpa": money, "ltv": money,
             "conversion_rate": "percentunit", "romi": "percentunit", "conversions": "none", "leads": "none"}
    total_cols = [("total_spend", "ad spend"), ("total_leads", "leads"), ("total_cpl", "CPL"),
                  ("total_conversions", "conversions"), ("total_revenue", "attributed revenue"),
                  ("total_romi", "ROMI (all revenue vs spend)")]
    total_units = {"total_spend": money, "total_cpl": money, "total_revenue": money, "total_romi": "percentunit",
                   "total_leads": "none", "total_conversions": "none"}
    panels = [
        _panel(lay, "stat", "Totals for the selected channels", 24, 4,
               description="Sums over the channel rows of the KPI layer (channels.sql) for the period and model.",
               targets=[_ch_target(wrap(
                   "sum(spend) AS total_spend, sum(leads) AS total_leads,\n"
                   "       total_spend / nullIf(total_leads, 0) AS total_cpl,\n"
                   "       sum(conversions) AS total_conversions, sum(revenue) AS total_revenue,\n"
                   "       (total_revenue - total_spend) / nullIf(total_spend, 0) AS total_romi",
                   "channels", settings, ch_in))],
               columns=total_cols, units=total_units, options={**STAT_OPTIONS,
                                                         "reduceOptions": {**STAT_OPTIONS["reduceOptions"],
                                                                           "fields": "/.*/"}}),
        _panel(lay, "table", "KPIs by channel", 24, 9,
               description="kpis.md marketing KPIs by touch channel under the selected model (channels.sql).",
               targets=[_ch_target(wrap(_select(channel_cols), "channels", settings, ch_in + "\nORDER BY revenue DESC"))],
               columns=channel_cols, units=units, options=TABLE_OPTIONS),
        _panel(lay, "barchart", "Spend vs attributed revenue by channel", 12, 10,
               targets=[_ch_target(wrap("channel, ifNull(spend, 0) AS spend, revenue", "channels", settings,
                                        ch_in + "\nORDER BY revenue DESC"))],
               columns=[("channel", "channel"), ("spend", "spend"), ("revenue", "attributed revenue")],
               defaults={"unit": money}, options=_barchart("horizontal", "channel")),
        _panel(lay, "barchart", "Attributed revenue by channel under each model", 12, 10,
               description="The six attribution models side by side (attribution_models.sql).",
               targets=[_ch_target(wrap(
                   "channel, " + ", ".join(f"sumIf(revenue, model = '{m}') AS {m}" for m in MODELS),
                   "attribution_models", settings, "GROUP BY channel\nORDER BY linear DESC",
                   channels=CHANNEL_FILTER))],
               columns=[("channel", "channel")] + [(m, m) for m in MODELS],
               defaults={"unit": money}, options=_barchart("vertical", "channel")),
        _panel(lay, "timeseries", "Spend, leads and attributed revenue per day", 24, 8,
               description="marketing_daily.sql: spend by its date, leads by their day, revenue by the day won.",
               targets=[_ch_target(wrap(
                   "t, sum(spend) AS spend, sum(revenue) AS revenue, sum(leads) AS leads",
                   "marketing_daily", settings, "WHERE $__timeFilter(t)\nGROUP BY t\nORDER BY t",
                   channels=CHANNEL_FILTER), time_series=True)],
               columns=[("t", "day"), ("spend", "spend"), ("revenue", "attributed revenue"), ("leads", "leads")],
               units={"spend": money, "revenue": money, "leads": "none"},
               defaults={"custom": {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 8,
                                    "showPoints": "never"}},
               options={"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi"}}),
        _panel(lay, "table", "KPIs by campaign", 16, 8,
               description="kpis.md marketing KPIs by campaign (campaigns.sql), for the selected campaigns "
                           "and channels.",
               targets=[_ch_target(wrap(_select(campaign_cols), "campaigns", settings,
                                        "WHERE campaign_id IN (${campaign:singlequote})\n"
                                        "  AND channel IN (${channel:singlequote})\nORDER BY revenue DESC"))],
               columns=campaign_cols,
               units=units, options=TABLE_OPTIONS),
        _panel(lay, "barchart", "LTV by acquisition channel", 8, 8,
               description="Deal revenue and payments per customer, by the channel of their first-ever touch.",
               targets=[_ch_target(wrap("channel, ltv, customers", "channels", settings,
                                        ch_in + " AND ltv IS NOT NULL\nORDER BY ltv DESC"))],
               columns=[("channel", "channel"), ("ltv", "LTV"), ("customers", "customers")],
               units={"ltv": money, "customers": "none"},
               options=_barchart("horizontal", "channel"),
               transformations=[{"id": "filterFieldsByName", "options": {"include": {"names": ["channel", "ltv"]}}}]),
    ] + markov_ltv_panels(lay, settings)
    variables = [
        _model_var(),
        _query_var("channel", "channel", wrap("channel", "channels", settings, "ORDER BY channel")),
        _query_var("campaign", "campaign", wrap("campaign_id", "campaigns", settings,
                                                "WHERE channel IN (${channel:singlequote})\nORDER BY campaign_id")),
    ]
    return _dashboard("leadflow-marketing", "Marketing attribution",
                      "Spend, leads, CPL, conversion, CPA, revenue, ROMI and LTV by channel and campaign under "
                      "six attribution models (kpis.md, contract v1.1). The period is the time picker's, in whole "
                      "UTC days.",
                      panels, variables)


# --- contact centre, issue 17: staffing gap heatmap, bots, the contacts drill-down ------------------

CONTACTS_PANEL_LIMIT = 500
CONTACTS_PANEL_TITLE = "Contacts (drill-down)"
WEEKDAY_NAMES = "['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']"
BOT_COLUMNS = [("bot_conversations", "bot chats"), ("bot_containment_rate", "bot contained"),
               ("handoff_wait_median_s", "hand-over median"), ("handoff_wait_p90_s", "hand-over p90")]
BOT_UNITS = {"bot_conversations": "none", "bot_containment_rate": "percentunit", "handoff_wait_median_s": "s",
             "handoff_wait_p90_s": "s"}


def _heat_table(defaults_color: str) -> dict:
    return {"color": {"mode": defaults_color},
            "custom": {"align": "center", "cellOptions": {"type": "color-background", "mode": "basic"}, "width": 44}}


def staffing_gap_panel(lay: _Layout, settings: Settings) -> dict:
    """Gap (agents needed - observed) summed over the selected channels, by hour of week: the
    report's heatmap, from staffing.sql."""
    heat_cols = [("day", "day")] + [(f"h{h:02d}", f"{h:02d}") for h in range(24)]
    return _panel(
        lay, "table", "Staffing gap by hour of week (heatmap)", 24, 8,
        description="staffing.sql: agents Erlang C needs to answer "
                    f"{settings.service_level:.0%} of contacts within each channel's target (calls "
                    f"{settings.call_target_seconds:.0f} s) minus the operators seen handling the channel in that "
                    f"hour, averaged over the period, summed over the selected channels "
                    f"({settings.business_hours.timezone}). Positive: understaffed. Empty: no contacts.",
        targets=[_ch_target(wrap(
            f"{WEEKDAY_NAMES}[weekday + 1] AS day,\n       "
            + ",\n       ".join(f"if(countIf(hour = {h} AND gap IS NOT NULL) = 0, NULL, sumIf(gap, hour = {h})) "
                                  f"AS h{h:02d}" for h in range(24)),
            "staffing", settings, "GROUP BY weekday\nORDER BY weekday", channels=CHANNEL_FILTER))],
        columns=heat_cols, options={**TABLE_OPTIONS, "cellHeight": "md"},
        defaults={**_heat_table("continuous-GrYlRd"), "decimals": 1},
        overrides=[{"matcher": {"id": "byName", "options": "day"},
                    "properties": [{"id": "custom.cellOptions", "value": {"type": "auto"}},
                                   {"id": "custom.width", "value": 64}]}])


def staffing_table_panel(lay: _Layout, settings: Settings) -> dict:
    cols = [("channel", "channel"), ("day", "day"), ("hour", "hour"), ("contacts_per_hour", "contacts / h"),
            ("aht_s", "AHT"), ("target_s", "target"), ("agents_needed", "agents needed"),
            ("agents_observed", "agents seen"), ("gap", "gap")]
    return _panel(
        lay, "table", "Staffing by channel and hour of week (Erlang C)", 24, 10,
        description="staffing.sql, the rows of `leadflow kpis staffing` (contract v1.1 section 3).",
        targets=[_ch_target(wrap(
            f"channel, {WEEKDAY_NAMES}[weekday + 1] AS day, hour, contacts_per_hour, aht_s, target_s, "
            "agents_needed, agents_observed, gap", "staffing", settings,
            "WHERE contacts_per_hour > 0\nORDER BY gap DESC, channel, weekday, hour", channels=CHANNEL_FILTER))],
        columns=cols, units={"aht_s": "s", "target_s": "s", "contacts_per_hour": "none", "agents_observed": "none",
                             "gap": "none", "agents_needed": "none"},
        options=TABLE_OPTIONS)


def contacts_panel(lay: _Layout, settings: Settings, op_filter: str) -> dict:
    cols = [("contact_id", "contact"), ("kind", "kind"), ("channel", "channel"), ("started_at", "started"),
            ("operators", "operators"), ("first_response_s", "first response"), ("missed", "missed"),
            ("transfers", "transfers"), ("csat", "CSAT"), ("nps", "NPS"), ("person_converted", "bought"),
            ("revenue", "revenue")]
    return _panel(
        lay, "table", CONTACTS_PANEL_TITLE, 24, 12,
        description="contacts.sql, the rows of `leadflow contacts`: the newest "
                    f"{CONTACTS_PANEL_LIMIT} conversations and inbound calls of the selected channels and operators. "
                    "Bought: a deal within 90 days after the contact. The operator and channel tables link here.",
        targets=[_ch_target(wrap(
            "contact_id, kind, channel, started_at, arrayStringConcat(operators, ', ') AS operators, "
            "first_response_s, missed, transfers, csat, nps, person_converted, revenue", "contacts", settings,
            channels=CHANNEL_FILTER, operators=op_filter))],
        columns=cols, units={"first_response_s": "s", "revenue": _money(settings), "csat": "none", "nps": "none"},
        options=TABLE_OPTIONS)


def link_to_contacts(panels: list[dict], uid: str) -> None:
    """Data links from the channel and operator columns to the drill-down, with the period and variables."""
    target = next(p for p in panels if p["title"] == CONTACTS_PANEL_TITLE)
    base = f"/d/{uid}/contact-centre?${{__url_time_range}}&viewPanel={target['id']}"
    links = {
        "channel": f"{base}&var-channel=${{__value.raw}}&${{operator:queryparam}}",
        "operator_id": f"{base}&var-operator=${{__value.raw}}&${{channel:queryparam}}",
    }
    for p in panels:
        if p["type"] != "table" or p is target:
            continue
        cols = next((t["options"]["indexByName"] for t in p["transformations"] if t["id"] == "organize"), {})
        for col, url in links.items():
            if col in cols:
                p["fieldConfig"]["overrides"].append({
                    "matcher": {"id": "byName", "options": col},
                    "properties": [{"id": "links", "value": [
                        {"title": f"contacts of this {col.replace('_id', '')}", "url": url}]}]})
def markov_ltv_panels(lay: _Layout, settings: Settings) -> list[dict]:
    """Contract v1.1 (issue 16): the markov chain's removal effects and predicted LTV."""
    money = _money(settings)
    ltv_cols = [("channel", "first-touch channel"), ("customers", "customers"), ("historic_ltv", "LTV (historic)"),
                ("predicted_future_value", "predicted future value"), ("predicted_ltv", "predicted LTV"),
                ("p_alive", "P(alive)"), ("fitted_at", "fitted")]
    return [
        _panel(lay, "bargauge", "Markov removal effects", 8, 8,
               description="Share of conversions lost if a channel were removed from every journey (contract "
                           "v1.1: the markov chain over all journeys, whatever the period; "
                           "markov_removal_effects.sql).",
               targets=[_ch_target(wrap("channel, removal_effect", "markov_removal_effects", settings,
                                        channels=CHANNEL_FILTER))],
               columns=[("channel", "channel"), ("removal_effect", "removal effect")],
               defaults={"unit": "percentunit", "min": 0, "max": 1, "color": {"mode": "continuous-BlPu"}},
               options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                        "reduceOptions": {"calcs": [], "fields": "", "values": True}}),
        _panel(lay, "table", "Predicted LTV by acquisition channel (last fit)", 16, 8,
               description="BG/NBD and Gamma-Gamma fitted on every customer's purchases (contract v1.1); the "
                           "fit runs in leadflow, so this shows the newest one stored by `leadflow kpis ltv`, "
                           "`leadflow report` or `leadflow run` (ltv_predictions.sql). Empty predictions: fewer "
                           "than 20 customers or 5 repeat customers.",
               targets=[_ch_target(wrap(_select(ltv_cols), "ltv_predictions", settings, channels=CHANNEL_FILTER))],
               columns=ltv_cols,
               units={"historic_ltv": money, "predicted_future_value": money, "predicted_ltv": money,
                      "p_alive": "percentunit", "customers": "none"}, options=TABLE_OPTIONS),
    ]


def contact_centre_dashboard(settings: Settings) -> dict:
    money = _money(settings)
    lay = _Layout()
    ch_in = "WHERE channel IN (${channel:singlequote})"
    op_filter = "[${operator:singlequote}]"
    chat_channels = [c for c in settings.conversation_channels if c != "call"]
    service_cols = [("channel", "channel"), ("conversations", "contacts"), ("frt_median_s", "FRT median"),
                    ("frt_p90_s", "FRT p90"), ("art_s", "ART"), ("sla_rate", "SLA met"),
                    ("missed_conversations", "missed chats"), ("transfer_rate", "transfers"),
                    ("contact_capture_rate", "contact capture"), ("answer_rate", "answer rate"),
                    ("missed_calls", "missed calls"), ("abandoned_calls", "abandoned calls"),
                    ("wait_mean_s", "wait"), ("talk_mean_s", "talk"), ("csat", "CSAT"), ("nps", "NPS"),
                    ("lost_revenue", "lost revenue (estimate)")] + BOT_COLUMNS
    units = {"frt_median_s": "s", "frt_p90_s": "s", "frt_mean_s": "s", "art_s": "s", "wait_mean_s": "s",
             "talk_mean_s": "s", "wait_median_s": "s", "sla_rate": "percentunit", "transfer_rate": "percentunit",
             "contact_capture_rate": "percentunit", "answer_rate": "percentunit", "csat": "percentunit",
             "template_share": "percentunit", "operator_conversion_rate": "percentunit", "nps": "none",
             "lost_revenue": money, "missed_share": "percentunit"}
    op_cols = [("operator_id", "operator"), ("conversations", "handled"), ("frt_median_s", "FRT median"),
               ("frt_p90_s", "FRT p90"), ("art_s", "ART"), ("sla_rate", "SLA met"), ("transfers", "transfers"),
               ("template_share", "templates"), ("csat", "CSAT"), ("nps", "NPS"),
               ("operator_conversion_rate", "conversion"), ("max_concurrency", "max chats")] + [
        c for c in BOT_COLUMNS if c[0] != "bot_containment_rate"]
    units.update(BOT_UNITS)
    heat_cols = [("day", "day")] + [(f"h{h:02d}", f"{h:02d}") for h in range(24)] + [("total", "total")]
    panels = [
        _panel(lay, "stat", "Contacts, missed and what they cost", 24, 4,
               description="Missed = chats nobody answered + missed and abandoned calls. Lost revenue is an "
                           "ESTIMATE: missed x conversion of answered contacts x their mean deal value.",
               targets=[_ch_target(wrap(
                   "sum(conversations) AS contacts,\n"
                   "       sum(ifNull(missed_conversations, 0) + ifNull(missed_calls, 0) + ifNull(abandoned_calls, 0))"
                   " AS missed,\n"
                   "       missed / nullIf(contacts, 0) AS missed_share,\n"
                   "       sum(lost_revenue) AS lost_revenue_estimate",
                   "service", settings, ch_in))],
               columns=[("contacts", "contacts"), ("missed", "missed contacts"), ("missed_share", "missed share"),
                        ("lost_revenue_estimate", "lost revenue (estimate)")],
               units={**units, "lost_revenue_estimate": money, "contacts": "none", "missed": "none"}, options={**STAT_OPTIONS, "reduceOptions": {**STAT_OPTIONS["reduceOptions"],
                                                                       "fields": "/.*/"}}),
        _panel(lay, "table", "Service by channel", 24, 7,
               description="kpis.md service KPIs by conversation channel (service.sql); for `call`, contacts "
                           "are inbound calls.",
               targets=[_ch_target(wrap(_select(service_cols), "service", settings,
                                        ch_in + " AND channel != '(none)'"))],
               columns=service_cols, units=units, options=TABLE_OPTIONS),
        _panel(lay, "table", "Missed contacts by hour of week (heatmap)", 24, 8,
               description="missed_by_hour.sql: missed chats and missed/abandoned calls by the hour they "
                           f"started ({settings.business_hours.timezone}).",
               targets=[_ch_target(wrap(
                   "weekday_name AS day,\n       "
                   + ",\n       ".join(f"sumIf(missed, hour = {h}) AS h{h:02d}" for h in range(24))
                   + ",\n       sum(missed) AS total",
                   "missed_by_hour", settings, "GROUP BY weekday, weekday_name\nORDER BY weekday",
                   channels=CHANNEL_FILTER))],
               columns=heat_cols, options={**TABLE_OPTIONS, "cellHeight": "md"},
               defaults={"color": {"mode": "continuous-YlRd"}, "min": 0,
                         "custom": {"align": "center", "cellOptions": {"type": "color-background", "mode": "basic"},
                                    "width": 44}},
               overrides=[{"matcher": {"id": "byName", "options": c},
                           "properties": [{"id": "custom.cellOptions", "value": {"type": "auto"}},
                                          {"id": "custom.width", "value": 64}]} for c in ("day", "total")]),
        staffing_gap_panel(lay, settings),
        _panel(lay, "barchart", "First response time vs SLA, per channel", 14, 9,
               description="frt_distribution.sql: visitor-initiated conversations by time to the first human "
                           "reply. SLA targets: " + ", ".join(f"{c} {int(s)} s"
                                                               for c, s in settings.sla_seconds.items())
                           + ". With operators selected: the conversations whose first reply they sent.",
               targets=[_ch_target(wrap(
                   "bucket_label AS bucket,\n       "
                   + ",\n       ".join(f"sumIf(conversations, channel = '{c}') AS {c}" for c in chat_channels),
                   "frt_distribution", settings, "GROUP BY bucket, bucket_label\nORDER BY bucket",
                   channels=CHANNEL_FILTER, operators=op_filter))],
               columns=[("bucket", "first response")] + [(c, c) for c in chat_channels],
               options=_barchart("vertical", "bucket"), defaults={"unit": "none"}),
        _panel(lay, "table", "First response time against the SLA", 10, 9,
               targets=[_ch_target(wrap(
                   "channel,\n       sumIf(conversations, within_sla = 1) / nullIf(sum(conversations), 0) AS sla_rate,"
                   "\n       any(sla_s) AS sla_s,\n       sumIf(conversations, bucket_label = 'no reply') AS no_reply",
                   "frt_distribution", settings, "GROUP BY channel\nORDER BY channel",
                   channels=CHANNEL_FILTER, operators=op_filter))],
               columns=[("channel", "channel"), ("sla_rate", "SLA met"), ("sla_s", "target"),
                        ("no_reply", "no human reply")],
               units={"sla_rate": "percentunit", "sla_s": "s", "no_reply": "none"}, options=TABLE_OPTIONS),
        _panel(lay, "table", "Operators", 24, 10,
               description="kpis.md operator KPIs (operators.sql). Missed contacts have no operator: see the "
                           "heatmap.",
               targets=[_ch_target(wrap(_select(op_cols), "operators", settings,
                                        "WHERE operator_id IN (${operator:singlequote})\n"
                                        "ORDER BY operator_conversion_rate DESC"))],
               columns=op_cols, units=units, options=TABLE_OPTIONS),
        _panel(lay, "bargauge", "Operators ranked by conversion", 12, 10,
               description="Share of the conversations and calls an operator handled whose person bought "
                           "within 90 days.",
               targets=[_ch_target(wrap("operator_id, operator_conversion_rate", "operators", settings,
                                        "WHERE operator_id IN (${operator:singlequote})\n"
                                        "ORDER BY operator_conversion_rate DESC"))],
               columns=[("operator_id", "operator"), ("operator_conversion_rate", "conversion")],
               defaults={"unit": "percentunit", "min": 0, "color": {"mode": "continuous-BlPu"}},
               options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                        "reduceOptions": {"calcs": [], "fields": "", "values": True}}),
        _panel(lay, "bargauge", "Operators ranked by CSAT", 12, 10,
               targets=[_ch_target(wrap("operator_id, csat", "operators", settings,
                                        "WHERE operator_id IN (${operator:singlequote}) AND csat IS NOT NULL\n"
                                        "ORDER BY csat DESC"))],
               columns=[("operator_id", "operator"), ("csat", "CSAT")],
               defaults={"unit": "percentunit", "min": 0, "max": 1, "color": {"mode": "continuous-RdYlGr"}},
               options={"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                        "reduceOptions": {"calcs": [], "fields": "", "values": True}}),
    ]
    panels += [staffing_table_panel(lay, settings), contacts_panel(lay, settings, op_filter)]
    link_to_contacts(panels, "leadflow-contact-centre")
    variables = [
        _query_var("channel", "channel", wrap("channel", "service", settings,
                                              "WHERE channel != '(none)'\nORDER BY channel")),
        _query_var("operator", "operator", wrap("operator_id", "operators", settings, "ORDER BY operator_id")),
    ]
    return _dashboard("leadflow-contact-centre", "Contact centre",
                      "Response times, SLA, missed contacts by hour of week, CSAT/NPS and conversion per operator "
                      "(kpis.md service and operator KPIs). The period is the time picker's, in whole UTC days.",
                      panels, variables)


def _prom(expr: str, legend: str, ref: str = "A") -> dict:
    return {"refId": ref, "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend, "range": True}


def _ts(lay: _Layout, title: str, targets: list[dict], unit: str, *, w: int = 12, h: int = 8,
        description: str = "") -> dict:
    return _panel(lay, "timeseries", title, w, h, description=description, datasource=PROMETHEUS,
                  targets=targets, defaults={"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 2,
                                                                      "fillOpacity": 5, "showPoints": "never"}},
                  options={"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
                           "tooltip": {"mode": "multi"}})


def pipeline_dashboard(settings: Settings) -> dict:
    lay = _Layout()
    r = "$__rate_interval"
    panels = [
        _ts(lay, "Events in, by outcome", [
            _prom(f"sum(rate(leadflow_events_received_total[{r}]))", "received", "A"),
            _prom(f"sum(rate(leadflow_events_accepted_total[{r}]))", "accepted", "B"),
            _prom(f"sum(rate(leadflow_events_duplicate_total[{r}]))", "duplicates", "C"),
            _prom(f"sum(rate(leadflow_events_rejected_total[{r}]))", "rejected (dead letters)", "D"),
        ], "ops", description="Ingest (HTTP and replay): events per second."),
        _ts(lay, "Events received by source", [
            _prom(f"sum by (source) (rate(leadflow_events_received_total[{r}]))", "{{source}}")], "ops"),
        _ts(lay, "Rejected by reason", [
            _prom(f"sum by (reason) (rate(leadflow_events_rejected_total[{r}]))", "{{reason}}")], "ops",
            description="Dead letters per second by validation reason; `leadflow deadletters` lists them."),
        _ts(lay, "Stored in the warehouse by type", [
            _prom(f"sum by (type) (rate(leadflow_events_stored_total[{r}]))", "{{type}}")], "ops"),
        _ts(lay, "Stage throughput", [
            _prom(f"sum by (stage) (rate(leadflow_stage_records_total[{r}]))", "{{stage}}")], "ops"),
        _ts(lay, "Consumer lag", [
            _prom("sum by (stage, topic) (leadflow_consumer_lag_messages)", "{{stage}} / {{topic}}")], "short",
            description="Records of each stage's topic not processed yet."),
        _ts(lay, "Stage batch time (p95)", [
            _prom(f"histogram_quantile(0.95, sum by (le, stage) (rate(leadflow_stage_batch_seconds_bucket[{r}])))",
                  "{{stage}}")], "s"),
        _ts(lay, "Stage thread busy", [
            _prom(f"sum by (stage) (rate(leadflow_stage_thread_busy_seconds_total[{r}]))", "{{stage}}")], "percentunit",
            description="Share of the time each stage's batch work held its process's stage thread (every stage of "
                        "a process shares one): stacked near 100%, batches queue for it and freshness suffers."),
        _ts(lay, "Warehouse insert latency (p95)", [
            _prom("histogram_quantile(0.95, sum by (le, table) "
                  f"(rate(leadflow_warehouse_write_seconds_bucket[{r}])))", "{{table}}")], "s"),
        _ts(lay, "Warehouse rows written", [
            _prom(f"sum by (table) (rate(leadflow_warehouse_rows_written_total[{r}]))", "{{table}}")], "rowsps"),
        _ts(lay, "Failures and retries", [
            _prom(f"sum by (stage) (increase(leadflow_processing_errors_total[{r}]))", "retried batch: {{stage}}",
                  "A"),
            _prom(f"sum by (table) (increase(leadflow_warehouse_write_failures_total[{r}]))",
                  "failed insert: {{table}}", "B"),
            _prom(f"sum(increase(leadflow_dead_letters_stored_total[{r}]))", "dead letters stored", "C"),
        ], "short"),
        _ts(lay, "Seconds since the last event, by source", [
            _prom("time() - max by (source) (leadflow_last_event_timestamp_seconds)", "{{source}}")], "s",
            w=12, description="A source that went quiet shows here first."),
        _panel(lay, "table", "Dead letters by reason (warehouse)", 12, 8,
               description="dead_letter_reasons.sql over the dead_letters table (kept "
                           f"{settings.deadletter_retention_days} days).",
               targets=[_ch_target(kpi_sql("dead_letter_reasons", settings))],
               columns=[("error_kind", "kind"), ("event_type", "event type"), ("fields", "fields"),
                        ("dead_letters", "count"), ("example", "example"), ("last_rejected_at", "last")],
               options=TABLE_OPTIONS),
    ]
    return _dashboard("leadflow-pipeline", "Pipeline health",
                      "leadflow's own metrics (leadflow/metrics.py, Prometheus): ingest outcomes, stage throughput "
                      "and lag, warehouse writes, failures; and the dead letters in the warehouse.",
                      panels, [])


DASHBOARDS = {
    "marketing-attribution.json": marketing_dashboard,
    "contact-centre.json": contact_centre_dashboard,
    "pipeline-health.json": pipeline_dashboard,
}


def build_dashboards(settings: Settings | None = None) -> dict[str, dict]:
    settings = settings or load_settings()
    return {name: make(settings) for name, make in DASHBOARDS.items()}


def dump(dashboard: dict) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(out: Path = DASHBOARDS_DIR, settings: Settings | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, dashboard in build_dashboards(settings).items():
        path = out / name
        path.write_text(dump(dashboard), encoding="utf-8")
        paths.append(path)
    return paths


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}


# --- upload ------------------------------------------------------------------------------------

def push(url: str, token: str, *, folder_title: str = "leadflow", directory: Path = DASHBOARDS_DIR,
         timeout: float = 30.0) -> Iterator[str]:
    """Upload every dashboard of `directory` into a folder (created when missing), overwriting
    earlier versions (same UIDs). Yields one line per step."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    try:
        api.folder.get_folder(FOLDER_UID)
        yield f"folder {folder_title!r} ({FOLDER_UID}) exists"
    except GrafanaClientError as exc:
        if getattr(exc, "status_code", None) != 404:
            raise
        api.folder.create_folder(folder_title, uid=FOLDER_UID)
        yield f"created folder {folder_title!r} ({FOLDER_UID})"
    for name, dashboard in load_dashboards(directory).items():
        body = {"dashboard": {**dashboard, "id": None}, "folderUid": FOLDER_UID, "overwrite": True,
                "message": "leadflow grafana push"}
        result = api.dashboard.update_dashboard(body) or {}
        where = result.get("url") or dashboard["uid"]
        yield f"uploaded {dashboard['title']!r} ({dashboard['uid']}) from {name}: {where}"
