"""Inline SVG charts for the HTML report: plain strings, no JavaScript, no fonts
or files from outside (the report must open offline)."""
from __future__ import annotations

import math
from html import escape
from typing import Callable, Sequence

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"


def _t(x: float, y: float, text: str, *, size: int = 12, anchor: str = "start", color: str = INK,
       weight: str = "normal", baseline: str = "middle") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
            f'font-weight="{weight}" dominant-baseline="{baseline}">{escape(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, *, title: str | None = None, rx: float = 2,
          extra: str = "") -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(0.0, w):.1f}" height="{max(0.0, h):.1f}" rx="{rx}" '
            f'fill="{fill}" {extra}>{tip}</rect>')


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
            f'role="img" aria-label="{escape(label)}" style="{FONT};max-width:{width:.0f}px">'
            + "".join(body) + "</svg>")


def nice_max(value: float) -> float:
    """A round axis maximum >= value (1, 2, 2.5, 5 x 10^n)."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10 ** exp >= value:
            return m * 10 ** exp
    return 10 ** (exp + 1)


def legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    out, cx = [], x
    for name, color in items:
        out.append(_rect(cx, y - 6, 12, 12, color))
        out.append(_t(cx + 17, y, name, size=12))
        cx += 30 + 7.2 * len(name)
    return out


def hbar_pairs(labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]],
               fmt: Callable[[float | None], str], *, width: int = 1100, label: str = "") -> str:
    """Horizontal bars, one group per label, one bar per series (e.g. spend and revenue)."""
    left, right, top, bar_h, gap = 110, 70, 34, 13, 12
    n_series = len(series)
    group_h = n_series * bar_h + gap
    height = top + len(labels) * group_h + 22
    vmax = nice_max(max([v or 0 for _, _, vals in series for v in vals] + [0]))
    plot_w = width - left - right
    body = legend([(name, color) for name, color, _ in series], left, 12)
    for k in range(5):
        gx = left + plot_w * k / 4
        body.append(f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{height - 20}" stroke="{GRID}"/>')
        body.append(_t(gx, height - 10, fmt(vmax * k / 4), anchor="middle", size=10, color=MUTED))
    for i, lab in enumerate(labels):
        y0 = top + i * group_h
        body.append(_t(left - 8, y0 + n_series * bar_h / 2, lab, anchor="end", size=12))
        for j, (name, color, vals) in enumerate(series):
            v = vals[i]
            y = y0 + j * bar_h
            w = plot_w * (v or 0) / vmax
            if v is None:
                continue
            body.append(_rect(left, y + 1, w, bar_h - 2, color, title=f"{lab} {name}: {fmt(v)}"))
            body.append(_t(left + w + 4, y + bar_h / 2, fmt(v), size=10, color=MUTED))
    return _svg(width, height, body, label)


def _value_axis(series: Sequence[tuple[str, str, Sequence[float]]], fmt: Callable[[float | None], str],
                left: int, right: int, top: int, plot_h: float, width: int) -> tuple[float, list[str]]:
    """Legend plus a vertical value axis with four gridlines; returns (axis maximum, SVG parts)."""
    vmax = nice_max(max([v for _, _, vals in series for v in vals] + [0]))
    body = legend([(name, color) for name, color, _ in series], left, 12)
    for k in range(5):
        gy = top + plot_h * (1 - k / 4)
        body.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{width - right}" y2="{gy:.1f}" stroke="{GRID}"/>')
        body.append(_t(left - 6, gy, fmt(vmax * k / 4), anchor="end", size=10, color=MUTED))
    return vmax, body


def vbar_groups(groups: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]],
                fmt: Callable[[float | None], str], *, width: int = 1100, height: int = 320, label: str = "") -> str:
    """Vertical grouped bars: one group per category, one bar per series (e.g. the five models)."""
    left, right, top, bottom = 64, 10, 36, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    vmax, body = _value_axis(series, fmt, left, right, top, plot_h, width)
    gw = plot_w / max(1, len(groups))
    bw = min(22.0, (gw - 14) / max(1, len(series)))
    for i, g in enumerate(groups):
        gx = left + i * gw + (gw - bw * len(series)) / 2
        for j, (name, color, vals) in enumerate(series):
            v = vals[i]
            h = plot_h * v / vmax
            body.append(_rect(gx + j * bw + 1, top + plot_h - h, bw - 2, h, color, rx=1,
                              title=f"{g}, {name}: {fmt(v)}"))
        body.append(_t(left + i * gw + gw / 2, top + plot_h + 16, g, anchor="middle", size=12))
    body.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{MUTED}"/>')
    return _svg(width, height, body, label)


def frt_histograms(channels: Sequence[dict], *, width: int = 1100, label: str = "") -> str:
    """One histogram per channel: share of conversations per first-response bucket, bars within the
    channel's SLA green, beyond it orange, no human reply grey, the SLA as a dashed line.

    `channels`: dicts with channel, sla_s, buckets [(label, conversations, within_sla, upper_s)],
    sla_rate, median_s (preformatted strings allowed in `note`)."""
    left, top, row_h, chart_h = 120, 40, 128, 66
    height = top + len(channels) * row_h + 4
    n_b = max((len(c["buckets"]) for c in channels), default=11)
    plot_w = width - left - 230
    bw = plot_w / max(1, n_b)
    body = legend([("within SLA", "#16a34a"), ("beyond SLA", "#f97316"), ("no human reply", "#9ca3af"),
                   ("no SLA target", "#60a5fa")], left, 12)
    for i, c in enumerate(channels):
        y0 = top + i * row_h + 8
        base = y0 + 16 + chart_h
        total = sum(b[1] for b in c["buckets"]) or 1
        top_share = max(b[1] / total for b in c["buckets"]) or 1
        body.append(_t(left - 10, y0 + 16 + chart_h / 2 - 8, c["channel"], anchor="end", size=14, weight="600"))
        body.append(_t(left - 10, y0 + 16 + chart_h / 2 + 10, f"{total:,} chats", anchor="end", size=11, color=MUTED))
        sla_x = None
        for j, (blabel, n, within, upper) in enumerate(c["buckets"]):
            share = n / total
            h = chart_h * share / top_share
            color = ("#9ca3af" if blabel == "no reply" else "#60a5fa" if c["sla_s"] is None
                     else "#16a34a" if within else "#f97316")
            x = left + j * bw
            body.append(_rect(x + 2, base - h, bw - 4, h, color, rx=1, title=f"{c['channel']} {blabel}: {n:,} "
                                                                                f"({share:.0%})"))
            if n:
                body.append(_t(x + bw / 2, base - h - 7, f"{share:.0%}", anchor="middle", size=10, color=MUTED))
            body.append(_t(x + bw / 2, base + 11, blabel, anchor="middle", size=10, color=MUTED))
            if c["sla_s"] is not None and upper is not None and upper == c["sla_s"]:
                sla_x = x + bw
        body.append(f'<line x1="{left}" y1="{base}" x2="{left + n_b * bw}" y2="{base}" stroke="{MUTED}"/>')
        if sla_x is not None:
            body.append(f'<line x1="{sla_x:.1f}" y1="{y0 - 10}" x2="{sla_x:.1f}" y2="{base + 2}" stroke="#dc2626" '
                        f'stroke-width="2" stroke-dasharray="5,3"/>')
            body.append(_t(sla_x - 4, y0 - 6, f"SLA {c['sla_label']}", size=11, color="#dc2626", weight="600",
                           anchor="end"))
        nx = left + n_b * bw + 24
        body.append(_t(nx, y0 + 28, c["note1"], size=13, weight="600"))
        body.append(_t(nx, y0 + 48, c["note2"], size=12, color=MUTED))
        body.append(_t(nx, y0 + 66, c["note3"], size=12, color=MUTED))
    return _svg(width, height, body, label)


def _heat(value: float, vmax: float) -> str:
    """White -> amber -> red."""
    if value <= 0 or vmax <= 0:
        return "#f8fafc"
    t = min(1.0, value / vmax)
    stops = [(0.0, (254, 243, 199)), (0.5, (251, 146, 60)), (1.0, (185, 28, 28))]
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            r, g, b = (round(a + (bb - a) * f) for a, bb in zip(c0, c1))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#b91c1c"


def heatmap_week(cells: Sequence[dict], *, width: int = 1100, label: str = "") -> str:
    """7 x 24 grid of missed contacts (rows Monday..Sunday, columns hours), with row totals."""
    left, top, right = 48, 40, 120
    cw = (width - left - right) / 24
    ch = 30
    height = top + 7 * ch + 40
    vmax = max((c["missed"] for c in cells), default=0)
    body = []
    for h in range(24):
        body.append(_t(left + h * cw + cw / 2, top - 10, f"{h:02d}", anchor="middle", size=11, color=MUTED))
    body.append(_t(width - right + 10, top - 10, "missed / contacts", size=10, color=MUTED))
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for d in range(7):
        y = top + d * ch
        body.append(_t(left - 8, y + ch / 2, names[d], anchor="end", size=12, weight="600"))
        row = [c for c in cells if c["weekday"] == d + 1]
        for c in row:
            x = left + c["hour"] * cw
            fill = _heat(c["missed"], vmax)
            rate = "" if c["miss_rate"] is None else f" ({c['miss_rate']:.0%} of {c['contacts']})"
            body.append(_rect(x + 1, y + 1, cw - 2, ch - 2, fill, rx=3,
                              title=f"{names[d]} {c['hour']:02d}:00: {c['missed']} missed{rate}"))
            if c["missed"]:
                dark = vmax and c["missed"] / vmax > 0.55
                body.append(_t(x + cw / 2, y + ch / 2, str(c["missed"]), anchor="middle", size=11,
                               color="#ffffff" if dark else INK))
        missed = sum(c["missed"] for c in row)
        contacts = sum(c["contacts"] for c in row)
        body.append(_t(width - right + 10, y + ch / 2, f"{missed} / {contacts}", size=12))
    # legend
    ly = top + 7 * ch + 22
    for k in range(10):
        body.append(_rect(left + k * 22, ly - 7, 22, 14, _heat((k + 0.5) / 10 * vmax, vmax), rx=0))
    body.append(_t(left + 228, ly, f"0 … {vmax} missed contacts in that hour over the period", size=11, color=MUTED))
    return _svg(width, height, body, label)


def ranked_bars(rows: Sequence[tuple[str, float | None, str]], *, width: int = 1100, color: str = "#2563eb",
                value_fmt: Callable[[float | None], str], label: str = "") -> str:
    """Horizontal bars sorted by value, with a note after each (e.g. operators by conversion)."""
    left, top, bar_h = 110, 8, 24
    height = top + len(rows) * bar_h + 8
    vmax = nice_max(max([v or 0 for _, v, _ in rows] + [0]))
    plot_w = 420
    body = []
    for i, (name, v, note) in enumerate(rows):
        y = top + i * bar_h
        body.append(_t(left - 8, y + bar_h / 2, name, anchor="end", size=12))
        body.append(_rect(left, y + 4, plot_w, bar_h - 8, "#f1f5f9", rx=3))
        body.append(_rect(left, y + 4, plot_w * (v or 0) / vmax, bar_h - 8, color, rx=3,
                          title=f"{name}: {value_fmt(v)}"))
        body.append(_t(left + plot_w + 8, y + bar_h / 2, value_fmt(v), size=12, weight="600"))
        body.append(_t(left + plot_w + 70, y + bar_h / 2, note, size=12, color=MUTED))
    return _svg(width, height, body, label)


def lines_daily(days: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]],
                fmt: Callable[[float | None], str], *, width: int = 1100, height: int = 240, label: str = "") -> str:
    """Daily lines (e.g. spend and attributed revenue per day)."""
    left, right, top, bottom = 64, 14, 34, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    vmax, body = _value_axis(series, fmt, left, right, top, plot_h, width)
    n = len(days)
    step = plot_w / max(1, n - 1)
    for name, color, vals in series:
        pts = " ".join(f"{left + i * step:.1f},{top + plot_h * (1 - v / vmax):.1f}" for i, v in enumerate(vals))
        body.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2.2" '
                    f'stroke-linejoin="round"/>')
    every = max(1, n // 10)
    for i, d in enumerate(days):
        if i % every == 0:
            body.append(_t(left + i * step, top + plot_h + 16, d, anchor="middle", size=10, color=MUTED))
    return _svg(width, height, body, label)


def _diverging(value: float, vmax: float) -> str:
    """Teal (negative: more operators than needed) -> white -> red (positive: understaffed)."""
    if vmax <= 0 or value == 0:
        return "#f8fafc"
    t = min(1.0, abs(value) / vmax)
    hi = (185, 28, 28) if value > 0 else (13, 148, 136)
    r, g, b = (round(248 + (c - 248) * t) for c in hi)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_gap(cells: dict[tuple[int, int], float | None], *, width: int = 1100, label: str = "") -> str:
    """7 x 24 grid of the staffing gap (agents needed - agents observed; weekday 0 = Monday): red where
    understaffed, teal where more operators were seen than Erlang C needs, grey where undefined."""
    left, top, right = 48, 40, 120
    cw = (width - left - right) / 24
    ch = 30
    height = top + 7 * ch + 40
    vmax = max((abs(v) for v in cells.values() if v is not None), default=0.0)
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    body = [_t(left + h * cw + cw / 2, top - 10, f"{h:02d}", anchor="middle", size=11, color=MUTED) for h in range(24)]
    body.append(_t(width - right + 10, top - 10, "understaffed h", size=10, color=MUTED))
    for d in range(7):
        y = top + d * ch
        body.append(_t(left - 8, y + ch / 2, names[d], anchor="end", size=12, weight="600"))
        short = 0
        for h in range(24):
            v = cells.get((d, h))
            x = left + h * cw
            if v is None:
                body.append(_rect(x + 1, y + 1, cw - 2, ch - 2, "#e5e7eb", rx=3,
                                  title=f"{names[d]} {h:02d}:00: no contacts"))
                continue
            short += v > 0
            body.append(_rect(x + 1, y + 1, cw - 2, ch - 2, _diverging(v, vmax), rx=3,
                              title=f"{names[d]} {h:02d}:00: gap {v:+.2f} agents"))
            if abs(v) >= 0.05:
                dark = vmax and abs(v) / vmax > 0.55
                body.append(_t(x + cw / 2, y + ch / 2, f"{v:+.1f}", anchor="middle", size=10,
                               color="#ffffff" if dark else INK))
        body.append(_t(width - right + 10, y + ch / 2, f"{short} of 24", size=12))
    ly = top + 7 * ch + 22
    for k in range(10):
        body.append(_rect(left + k * 22, ly - 7, 22, 14, _diverging((k - 4.5) / 4.5 * vmax, vmax), rx=0))
    body.append(_t(left + 228, ly, f"-{vmax:.1f} (more operators seen than needed) … +{vmax:.1f} (understaffed) "
                                   "agents; grey: no contacts", size=11, color=MUTED))
    return _svg(width, height, body, label)
