"""The HTML report: one self-contained file (inline CSS and SVG, no script, no
external resource), readable offline and printable."""
from __future__ import annotations

from collections import defaultdict
from html import escape
from pathlib import Path

from leadflow.report import contact_centre, fmt, svg
from leadflow.report.data import ReportData

MODEL_COLORS = {
    "first_touch": "#1d4ed8", "last_touch": "#0891b2", "linear": "#16a34a",
    "time_decay": "#ca8a04", "position_based": "#db2777", "markov": "#7c3aed",
}
SPEND, REVENUE = "#94a3b8", "#2563eb"

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1f2937;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}
header{background:#111827;color:#f9fafb;padding:22px 36px}
header h1{margin:0 0 4px;font-size:24px;font-weight:650}
header p{margin:0;color:#d1d5db}
main{max-width:1240px;margin:0 auto;padding:20px 28px 40px}
.tiles{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;margin-bottom:18px}
.tile{background:#fff;border-radius:10px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.tile .v{font-size:22px;font-weight:650}
.tile .k{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.tile.warn .v{color:#b91c1c}
section{background:#fff;border-radius:10px;padding:16px 20px 18px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
section h2{margin:0 0 2px;font-size:18px}
section p.sub{margin:0 0 12px;color:#6b7280}
.two{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.two section{margin-bottom:0}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:right;color:#6b7280;font-weight:600;border-bottom:1px solid #e5e7eb;padding:6px 8px;white-space:nowrap}
td{text-align:right;padding:5px 8px;border-bottom:1px solid #f3f4f6;white-space:nowrap}
td.l,th.l{text-align:left;white-space:normal}
tr.total td{font-weight:650;border-top:1px solid #d1d5db}
.neg{color:#b91c1c}.pos{color:#15803d}
.est{display:inline-block;background:#fef3c7;color:#92400e;border-radius:4px;padding:0 6px;font-size:11px;font-weight:600;vertical-align:middle}
footer{color:#6b7280;font-size:12px;max-width:1240px;margin:0 auto;padding:0 28px 30px}
code{background:#f3f4f6;padding:0 4px;border-radius:3px}
"""


def _table(head: list[str], rows: list[list[str]], *, total: list[str] | None = None, raw: bool = False,
           left: frozenset[int] = frozenset({0})) -> str:
    def cls(i: int) -> str:
        return " class='l'" if i in left else ""

    h = "".join(f"<th{cls(i)}>{escape(c)}</th>" for i, c in enumerate(head))
    cell = (lambda c: c) if raw else escape
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{cell(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    if total:
        body += '<tr class="total">' + "".join(f"<td>{escape(c)}</td>" for c in total) + "</tr>"
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _signed(text: str, value: float | None) -> str:
    if value is None:
        return escape(text)
    return f'<span class="{"neg" if value < 0 else "pos"}">{escape(text)}</span>'


def _tiles(d: ReportData) -> str:
    cur = d.currency
    spend, revenue = d.spend, d.revenue
    paid = [r for r in d.channels if r["spend"] is not None]
    paid_spend = sum(r["spend"] for r in paid)
    romi = (sum(r["revenue"] for r in paid) - paid_spend) / paid_spend if paid_spend else None
    conversions = sum(r["conversions"] for r in d.channels)
    chat = next((r for r in d.service if r["channel"] == "chat"), None)
    tiles = [
        ("ad spend", fmt.money(spend, cur), ""),
        ("attributed revenue", fmt.money(revenue, cur), ""),
        ("ROMI of paid channels", fmt.ratio(romi), ""),
        ("leads", fmt.number(d.leads), ""),
        ("conversions (deals won)", fmt.number(conversions), ""),
        ("contacts", fmt.number(d.contacts_total), ""),
        ("missed contacts", f"{d.missed_total:,} ({fmt.pct(d.missed_total / d.contacts_total if d.contacts_total else None, 0)})",
         "warn"),
        ("chat SLA met", fmt.pct(chat["sla_rate"] if chat else None, 0), ""),
        ("lost revenue (estimate)", fmt.money(d.lost_revenue, cur), "warn"),
        ("dead letters", fmt.number(d.dead_letter_total), "warn" if d.dead_letter_total else ""),
    ]
    return '<div class="tiles">' + "".join(
        f'<div class="tile {cls}"><div class="k">{escape(k)}</div><div class="v">{escape(v)}</div></div>'
        for k, v, cls in tiles) + "</div>"


def _spend_revenue(d: ReportData) -> str:
    cur = d.currency
    rows = sorted(d.channels, key=lambda r: (-(r["revenue"] or 0), r["channel"]))
    chart = svg.hbar_pairs([r["channel"] for r in rows],
                           [("spend", SPEND, [r["spend"] for r in rows]),
                            (f"attributed revenue ({d.model})", REVENUE, [r["revenue"] for r in rows])],
                           lambda v: fmt.compact_money(v, cur),
                           label="Spend vs attributed revenue by channel")
    return ("<section><h2>Spend vs revenue by channel</h2>"
            f"<p class='sub'>Ad spend against revenue credited under the <b>{escape(d.model)}</b> model. "
            "Conversation channels (call, chat) earn credit as touches but cost nothing here.</p>"
            f"{chart}</section>")


def _models(d: ReportData) -> str:
    cur = d.currency
    by = defaultdict(dict)
    for r in d.models:
        by[r["channel"]][r["model"]] = r["revenue"]
    order = sorted(by, key=lambda ch: -max(by[ch].values()))[:9]
    series = [(m, MODEL_COLORS[m], [by[ch].get(m, 0.0) for ch in order]) for m in MODEL_COLORS]
    chart = svg.vbar_groups(order, series, lambda v: fmt.compact_money(v, cur),
                            label="Attributed revenue by channel under each model")
    return ("<section><h2>The attribution models side by side</h2>"
            "<p class='sub'>Revenue credited to each channel under the six models. Where first touch and "
            "last touch disagree, the channel opens journeys that others close.</p>"
            f"{chart}{_markov_note(d)}</section>")


def _markov_note(d: ReportData) -> str:
    """Contract v1.1: what the markov model's credits rest on."""
    m = d.markov
    if not m.get("paths"):
        return ""
    top = sorted(((e, c) for c, e in m["removal_effects"].items() if e is not None), reverse=True)[:4]
    effects = ", ".join(f"{escape(c)} {e * 100:.0f}%" for e, c in top)
    return (f"<p class='sub'>Markov: {m['paths']:,} journeys, P(conversion) {fmt.pct(m['p_conversion'])}; "
            f"removal effects (conversions lost without the channel): {effects}.</p>")


def _frt(d: ReportData) -> str:
    by = defaultdict(list)
    for r in d.frt:
        by[r["channel"]].append(r)
    service = {r["channel"]: r for r in d.service}
    channels = []
    for ch, rows in by.items():
        s = service.get(ch, {})
        sla = rows[0]["sla_s"]
        replied = sum(r["conversations"] for r in rows if r["bucket_label"] != "no reply")
        channels.append({
            "channel": ch, "sla_s": sla, "sla_label": fmt.seconds(sla),
            "buckets": [(r["bucket_label"], r["conversations"], bool(r["within_sla"]), r["upper_s"]) for r in rows],
            "note1": f"SLA met: {fmt.pct(s.get('sla_rate'), 0)}" if sla is not None else "no SLA target",
            "note2": f"median {fmt.seconds(s.get('frt_median_s'))} · p90 {fmt.seconds(s.get('frt_p90_s'))}",
            "note3": f"{replied:,} answered by a person",
        })
    if not channels:
        return "<section><h2>First response time vs SLA</h2><p class='sub'>No visitor-initiated chats.</p></section>"
    chart = svg.frt_histograms(channels, label="First response time distribution per channel against its SLA")
    return ("<section><h2>First response time vs SLA, per channel</h2>"
            "<p class='sub'>Visitor-initiated conversations by time to the first human reply (bots do not "
            "count). The dashed line is the channel's target; grey chats never got a person.</p>"
            f"{chart}</section>")


def _heatmap(d: ReportData) -> str:
    worst = d.worst_hours(3)
    hint = ", ".join(f"{r['weekday_name']} {r['hour']:02d}:00 ({r['missed']})" for r in worst) or "none"
    chart = svg.heatmap_week(d.missed_hours, label="Missed contacts by hour of week")
    return ("<section><h2>Missed contacts by hour of week</h2>"
            f"<p class='sub'>Chats nobody answered plus missed and abandoned calls, by when they started "
            f"({escape(d.timezone)}). Worst hours: {escape(hint)}.</p>{chart}</section>"
            + contact_centre.staffing_section(d))


def _operators(d: ReportData) -> str:
    rows = sorted(d.operators, key=lambda r: (-(r["operator_conversion_rate"] or 0), r["operator_id"]))
    def note(r: dict) -> str:
        parts = [f"{r['conversations']:,} handled"]
        if r["frt_median_s"] is not None:
            parts.append(f"FRT {fmt.seconds(r['frt_median_s'])}")
        if r["sla_rate"] is not None:
            parts.append(f"SLA {fmt.pct(r['sla_rate'], 0)}")
        parts += [f"CSAT {fmt.pct(r['csat'], 0)}", f"NPS {fmt.score(r['nps'])}"]
        if r["template_share"] is not None:
            parts.append(f"templates {fmt.pct(r['template_share'], 0)}")
        else:
            parts.append("calls only")
        return " · ".join(parts)

    bars = [(r["operator_id"], r["operator_conversion_rate"], note(r)) for r in rows]
    chart = svg.ranked_bars(bars, value_fmt=lambda v: fmt.pct(v), label="Operators ranked by conversion")
    return ("<section><h2>Operators ranked</h2>"
            "<p class='sub'>Share of the conversations and calls an operator handled whose person bought within "
            "90 days, with their speed and ratings.</p>"
            f"{chart}</section>")


def _daily(d: ReportData) -> str:
    cur = d.currency
    spend, revenue = defaultdict(float), defaultdict(float)
    for r in d.daily:
        day = r["t"].strftime("%m-%d")
        spend[day] += r["spend"]
        revenue[day] += r["revenue"]
    days = sorted(set(spend) | set(revenue))
    if len(days) < 2:
        return ""
    chart = svg.lines_daily(days, [("spend", SPEND, [spend[x] for x in days]),
                                   (f"attributed revenue ({d.model})", REVENUE, [revenue[x] for x in days])],
                            lambda v: fmt.compact_money(v, cur), label="Spend and attributed revenue per day")
    return ("<section><h2>Spend and revenue per day</h2>"
            "<p class='sub'>Spend by its date, revenue by the day the deal was won (UTC).</p>"
            f"{chart}</section>")


def _marketing_table(d: ReportData) -> str:
    cur = d.currency
    rows = sorted(d.channels, key=lambda r: (-(r["revenue"] or 0), r["channel"]))
    body = [[escape(r["channel"]), fmt.money(r["spend"], cur), fmt.number(r["leads"]), fmt.money(r["cpl"], cur),
             fmt.pct(r["conversion_rate"]), fmt.number(r["conversions"], 1), fmt.money(r["cpa"], cur),
             fmt.money(r["revenue"], cur), _signed(fmt.ratio(r["romi"]), r["romi"]), fmt.number(r["customers"]),
             fmt.money(r["ltv"], cur), _predicted_ltv(d, r["channel"])] for r in rows]
    return ("<section><h2>Marketing by channel</h2>"
            f"<p class='sub'>Attribution model <b>{escape(d.model)}</b>. CPL = spend / leads; conversion = leads "
            "whose person bought within 90 days; CPA = spend / attributed conversions; ROMI = (revenue − spend) "
            "/ spend; LTV = all deal revenue and payments per customer, by first touch; "
            + _predicted_ltv_note(d) + "</p>"
            + _table(["channel", "spend", "leads", "CPL", "conversion", "conversions", "CPA", "revenue", "ROMI",
                      "customers", "LTV", "predicted LTV"], body, raw=True) + "</section>")


def _predicted_ltv(d: ReportData, channel: str) -> str:
    row = d.predicted_ltv.get(channel)
    return fmt.money(row["predicted_ltv"] if row else None, d.currency)


def _predicted_ltv_note(d: ReportData) -> str:
    model = d.ltv["model"]
    if model is None:
        return "predicted LTV needs at least 20 customers and 5 repeat customers."
    return (f"predicted LTV = LTV + the value each customer is expected to add in the next year (BG/NBD and "
            f"Gamma-Gamma fitted on {model['customers']:,} customers).")


def _service_table(d: ReportData) -> str:
    cur = d.currency
    body = []
    for r in d.service:
        if r["channel"] == "(none)":
            continue
        call = r["channel"] == "call"
        missed = (r["missed_calls"] or 0) + (r["abandoned_calls"] or 0) if call else r["missed_conversations"]
        body.append([r["channel"], fmt.number(r["conversations"]), fmt.seconds(r["frt_median_s"]),
                     fmt.pct(r["sla_rate"], 0), fmt.number(missed), fmt.pct(r["answer_rate"], 0),
                     fmt.seconds(r["wait_mean_s"]), fmt.pct(r["transfer_rate"], 0), fmt.pct(r["csat"], 0),
                     fmt.score(r["nps"]), fmt.money(r["lost_revenue"], cur)] + contact_centre.bot_columns(r))
    return ("<section><h2>Service by channel</h2>"
            "<p class='sub'>Lost revenue <span class='est'>ESTIMATE</span> = missed contacts × share of the "
            "channel's answered contacts that bought within 90 days × their mean deal value.</p>"
            + _table(["channel", "contacts", "FRT median", "SLA", "missed", "answer rate", "wait", "transfers",
                      "CSAT", "NPS", "lost rev. (est.)"] + contact_centre.BOT_HEAD, body)
            + "<p class='sub'>Bot chats: visitor chats a bot spoke in; contained: share closed with no operator "
              "and not missed; hand-over: median wait from the bot's last message to the operator's first.</p>"
              "</section>"
            + contact_centre.contacts_section(d))


def _dead_letters(d: ReportData) -> str:
    if not d.dead_letters:
        return "<section><h2>Dead letters</h2><p class='sub'>No rejected input.</p></section>"
    body = [[fmt.number(r["dead_letters"]), r["error_kind"], r["event_type"], r["example"][:140]]
            for r in d.dead_letters[:12]]
    return (f"<section><h2>Dead letters: {d.dead_letter_total:,} rejected lines</h2>"
            "<p class='sub'>Grouped by reason, one example each; <code>leadflow deadletters</code> lists every "
            "line with its original bytes.</p>"
            + _table(["count", "kind", "event type", "reason (example)"], body, left=frozenset({1, 2, 3}))
            + "</section>")


def render_html(d: ReportData) -> str:
    sub = (f"{escape(d.period_label)} · attribution model {escape(d.model)} · money in {escape(d.currency)} · "
           f"generated {d.generated_at:%Y-%m-%d %H:%M} UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        "<title>leadflow report</title>", f"<style>{CSS}</style></head><body>",
        f"<header><h1>leadflow: from ad spend to revenue, and what the contact centre loses</h1><p>{sub}</p></header>",
        "<main>", _tiles(d), _spend_revenue(d), _models(d), _daily(d), _frt(d), _heatmap(d), _operators(d),
        _marketing_table(d), _service_table(d), _dead_letters(d), "</main>",
        f"<footer>Warehouse {escape(d.warehouse)}. Definitions: kpis.md (contract) and docs/kpi-readings.md. "
        "Lost revenue is an estimate, not a measurement.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_html(d: ReportData, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(d), encoding="utf-8")
    return path
