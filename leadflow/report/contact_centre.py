"""The report's contact-centre parts of issue 17: staffing gap heatmap, bots, and the contacts
to look at (ten slowest answered, ten latest missed, per channel). Read through
services/attribution/kpis/contact_centre.py (the same SQL as the CLI and the dashboards)."""
from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from leadflow.report import fmt, svg
from leadflow.table import render
from services.attribution.kpis.contact_centre import WEEKDAYS, gap_by_hour

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from leadflow.config import Settings
    from leadflow.report.data import ReportData

DRILL_DOWN = 10


def collect(data: "ReportData", client: "Client", settings: "Settings", **period: Any) -> None:
    """Fill data.staffing, data.slowest and data.recent_missed."""
    from services.attribution.kpis import contact_centre as cc

    data.staffing = cc.staffing(client, settings, **period)
    for ch in [r["channel"] for r in data.service if r["channel"] != "(none)"]:
        data.slowest[ch] = cc.contacts(client, settings, channels=[ch], order="slowest", limit=DRILL_DOWN, **period)
        data.recent_missed[ch] = cc.contacts(client, settings, channels=[ch], missed_only=True, limit=DRILL_DOWN,
                                             **period)


def understaffed(data: "ReportData", n: int = 5) -> list[tuple[int, int, float]]:
    """The n hours of the week with the largest positive gap summed over channels."""
    cells = [(d, h, v) for (d, h), v in gap_by_hour(data.staffing).items() if v is not None and v > 0]
    return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))[:n]


# --- HTML ----------------------------------------------------------------------------------------

def staffing_section(d: "ReportData") -> str:
    if not d.staffing:
        return ""
    worst = ", ".join(f"{WEEKDAYS[a]} {b:02d}:00 ({v:+.1f})" for a, b, v in understaffed(d, 3)) or "none"
    chart = svg.heatmap_gap(gap_by_hour(d.staffing), label="Staffing gap by hour of week")
    return ("<section><h2>Staffing gap by hour of week</h2>"
            f"<p class='sub'>Agents Erlang C needs to answer {d.staffing[0]['service_level']:.0%} of contacts "
            "within each channel's target, minus the operators seen handling that channel in that hour "
            f"(averaged over the period), summed over channels ({escape(d.timezone)}). Red: understaffed. "
            f"Most understaffed: {escape(worst)}. <code>leadflow kpis staffing</code> has it per channel.</p>"
            f"{chart}</section>")


def bot_columns(r: dict) -> list[str]:
    """Service table cells: bot conversations, containment, hand-over wait (median)."""
    return [fmt.number(r["bot_conversations"]), fmt.pct(r["bot_containment_rate"], 0),
            fmt.seconds(r["handoff_wait_median_s"])]


BOT_HEAD = ["bot chats", "contained", "hand-over"]


def _contact_rows(rows: list[dict], cur: str) -> list[list[str]]:
    return [[f"<span style='white-space:nowrap'>{escape(r['contact_id'])}</span>", f"{r['started_at']:%m-%d %H:%M}", escape(", ".join(r["operators"]) or "–"),
             fmt.seconds(r["first_response_s"]), "yes" if r["person_converted"] else "",
             fmt.money(r["revenue"], cur) if r["revenue"] else ""] for r in rows]


def contacts_section(d: "ReportData") -> str:
    from leadflow.report.html import _table

    channels = [ch for ch in d.slowest if d.slowest[ch] or d.recent_missed.get(ch)]
    if not channels:
        return ""
    head = ["contact", "started (UTC)", "operators", "first response", "bought", "revenue"]
    parts = []
    for ch in channels:
        parts.append(f"<h3>{escape(ch)}</h3><div class='two'>"
                     f"<div><p class='sub'>Slowest answered</p>{_table(head, _contact_rows(d.slowest[ch], d.currency), raw=True)}</div>"
                     f"<div><p class='sub'>Latest missed</p>"
                     f"{_table(head, _contact_rows(d.recent_missed.get(ch, []), d.currency), raw=True)}</div></div>")
    return ("<section><h2>Contacts to look at</h2>"
            f"<p class='sub'>Per channel, the {DRILL_DOWN} slowest first responses (a call's: its wait to be "
            f"answered) and the {DRILL_DOWN} latest missed contacts; <code>leadflow contacts --channel C "
            "[--missed] [--slowest]</code> lists more. Bought: a deal within 90 days after the contact.</p>"
            + "".join(parts) + "</section>")


# --- terminal ------------------------------------------------------------------------------------

def terminal_lines(d: "ReportData") -> list[str]:
    out = []
    worst = understaffed(d)
    if worst:
        out.append(f"Most understaffed hours of the week ({d.timezone}; agents Erlang C needs minus operators seen):")
        out += [f"  {WEEKDAYS[a]} {b:02d}h  {v:+.2f} agents" for a, b, v in worst]
    else:
        out.append("Staffing: no hour of the week is short of agents.")
    bots = [[r["channel"], fmt.number(r["bot_conversations"]), fmt.number(r["bot_contained"]),
             fmt.pct(r["bot_containment_rate"], 0), fmt.seconds(r["handoff_wait_median_s"]),
             fmt.seconds(r["handoff_wait_p90_s"])] for r in d.service if r["bot_conversations"]]
    if bots:
        out.append("Bots (visitor chats the bot spoke in; contained = closed without an operator, not missed):")
        out += ["  " + x for x in render(["channel", "bot chats", "contained", "rate", "hand-over median",
                                         "hand-over p90"], bots, right=[False] + [True] * 5).splitlines()]
    return out
