"""The terminal report `leadflow run` prints (and `leadflow report --print`)."""
from __future__ import annotations

from leadflow.report import contact_centre, fmt
from leadflow.report.data import ReportData
from leadflow.table import render


def _title(text: str) -> str:
    return f"\n{text}\n{'=' * len(text)}"


def marketing_table(d: ReportData) -> str:
    cur = d.currency
    rows = sorted(d.channels, key=lambda r: (-(r["revenue"] or 0), r["channel"]))
    table = [[r["channel"], fmt.money(r["spend"], cur), fmt.number(r["leads"]), fmt.money(r["cpl"], cur),
              fmt.pct(r["conversion_rate"]), fmt.number(r["conversions"], 1), fmt.money(r["cpa"], cur),
              fmt.money(r["revenue"], cur), fmt.ratio(r["romi"]), fmt.money(r["ltv"], cur)] for r in rows]
    spend, leads, revenue = d.spend, d.leads, d.revenue
    converted = sum(r["converted_leads"] for r in d.channels)
    conversions = sum(r["conversions"] for r in d.channels)
    table.append(["total", fmt.money(spend, cur), fmt.number(leads),
                  fmt.money(spend / leads if spend is not None and leads else None, cur),
                  fmt.pct(converted / leads if leads else None), fmt.number(conversions, 1),
                  fmt.money(spend / conversions if spend is not None and conversions else None, cur),
                  fmt.money(revenue, cur), "", ""])  # no blended ROMI: unpaid channels' revenue would inflate it
    head = ["channel", "spend", "leads", "CPL", "conversion", "conversions", "CPA", "revenue", "ROMI", "LTV"]
    return render(head, table, right=[False] + [True] * 9)


def operator_table(d: ReportData) -> str:
    rows = sorted(d.operators, key=lambda r: (-(r["operator_conversion_rate"] or 0), r["operator_id"]))
    table = [[r["operator_id"], fmt.number(r["conversations"]), fmt.seconds(r["frt_median_s"]),
              fmt.seconds(r["frt_p90_s"]), fmt.pct(r["sla_rate"], 0), fmt.pct(r["csat"], 0), fmt.score(r["nps"]),
              fmt.pct(r["operator_conversion_rate"]), fmt.number(r["transfers"]), fmt.pct(r["template_share"], 0),
              fmt.number(r["max_concurrency"])] for r in rows]
    head = ["operator", "handled", "FRT median", "FRT p90", "SLA", "CSAT", "NPS", "conversion", "transfers",
            "templates", "max chats"]
    return render(head, table, right=[False] + [True] * 10)


def service_table(d: ReportData) -> str:
    cur = d.currency
    table = []
    for r in d.service:
        if r["channel"] == "(none)":
            continue
        missed = (r["missed_calls"] or 0) + (r["abandoned_calls"] or 0) if r["channel"] == "call" \
            else r["missed_conversations"]
        table.append([r["channel"], fmt.number(r["conversations"]), fmt.seconds(r["frt_median_s"]),
                      fmt.pct(r["sla_rate"], 0), fmt.number(missed),
                      fmt.pct(missed / r["conversations"] if r["conversations"] and missed is not None else None, 0),
                      fmt.pct(r["answer_rate"], 0), fmt.pct(r["csat"], 0), fmt.score(r["nps"]),
                      fmt.money(r["lost_revenue"], cur)])
    head = ["channel", "contacts", "FRT median", "SLA", "missed", "missed %", "answer rate", "CSAT", "NPS",
            "lost revenue (est.)"]
    return render(head, table, right=[False] + [True] * 9)


def worst_hours_lines(d: ReportData, n: int = 5) -> list[str]:
    out = []
    for r in d.worst_hours(n):
        parts = []
        if r["missed_calls"]:
            parts.append(f"{r['missed_calls']} calls")
        if r["missed_conversations"]:
            parts.append(f"{r['missed_conversations']} chats/messages")
        out.append(f"  {r['weekday_name']} {r['hour']:02d}:00-{(r['hour'] + 1) % 24:02d}:00  "
                   f"{r['missed']:>4} missed of {r['contacts']:>4} contacts ({fmt.pct(r['miss_rate'], 0)}): "
                   + ", ".join(parts))
    return out or ["  no missed contacts"]


def dead_letter_lines(d: ReportData, n: int = 8) -> list[str]:
    if not d.dead_letters:
        return ["  none"]
    table = [[fmt.number(r["dead_letters"]), r["error_kind"], r["event_type"], r["example"][:90]]
             for r in d.dead_letters[:n]]
    lines = ["  " + line for line in render(["count", "kind", "type", "reason (example)"], table,
                                            right=[True, False, False, False]).splitlines()]
    if len(d.dead_letters) > n:
        lines.append(f"  ... and {len(d.dead_letters) - n} more reasons")
    return lines


def render_terminal(d: ReportData, *, html_path: str | None = None, dashboards: str | None = None,
                    metrics_url: str | None = None) -> str:
    cur = d.currency
    out = [f"leadflow report: {d.period_label}; attribution model {d.model}; money in {cur}"]
    out.append(_title("Marketing by channel"))
    out.append(marketing_table(d))
    out.append("CPL = spend / leads, conversion = leads that became customers within 90 days, "
               "CPA = spend / attributed conversions,\nROMI = (attributed revenue - spend) / spend, "
               "LTV = deal revenue + payments per customer (by first touch).")
    out.append(_title("Service by operator (ranked by conversion)"))
    out.append(operator_table(d))
    out.append("FRT = first response time to a visitor-initiated chat; SLA = share answered within the "
               "channel's target.\nMissed contacts have no operator (nobody answered): they are counted "
               "by channel and by hour below.")
    out.append(_title("Service by channel"))
    out.append(service_table(d))
    out.append(_title(f"Worst hours of the week for missed contacts ({d.timezone})"))
    out.extend(worst_hours_lines(d))
    out.extend(contact_centre.terminal_lines(d))
    lost = d.lost_revenue
    out.append(_title("Estimated lost revenue"))
    out.append(f"  {fmt.money(lost, cur)} (ESTIMATE: per channel, missed contacts x share of answered contacts "
               f"that converted\n  within 90 days x their mean deal value; {d.missed_total:,} missed of "
               f"{d.contacts_total:,} contacts)")
    out.append(_title(f"Dead letters: {d.dead_letter_total:,} rejected line(s), by reason"))
    out.extend(dead_letter_lines(d))
    if d.dead_letters:
        out.append("  `leadflow deadletters` lists each one with its original line.")
    out.append(_title("Where to look next"))
    if html_path:
        out.append(f"  HTML report:  {html_path}  (one file, opens offline)")
    if dashboards:
        out.append(f"  dashboards:   {dashboards}")
    if metrics_url:
        out.append(f"  metrics:      {metrics_url}")
    out.append("  KPIs:         leadflow kpis {channels|campaigns|operators|service} [--model M] [--from D --to D]")
    out.append("  staffing:     leadflow kpis staffing [--channel C]    contacts: leadflow contacts [--missed] [--slowest]")
    return "\n".join(out)
