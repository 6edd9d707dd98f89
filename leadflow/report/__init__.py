"""Reports over the warehouse: the terminal report that `leadflow run` prints and
the self-contained HTML report of `leadflow report` (inline SVG charts, no CDN).

Both read the KPI layer only (services/attribution/kpis: the four groupings and
the shared extra queries), so they show the same numbers as `leadflow kpis`
and the Grafana dashboards.
"""
from leadflow.report.data import ReportData, collect
from leadflow.report.html import render_html, write_html
from leadflow.report.terminal import render_terminal

__all__ = ["ReportData", "collect", "render_html", "render_terminal", "write_html"]
