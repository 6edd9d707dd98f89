"""The terminal report and the self-contained HTML report over a simulated
business replayed through the pipeline; the HTML is rendered by headless
Chromium and the screenshot is checked to show the charts."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from leadflow.report import collect, render_html, render_terminal, write_html  # noqa: E402
from services.attribution.kpis import compute_kpis  # noqa: E402
from tests.simdata import SIM_PERIOD, simulated_warehouse  # noqa: E402

CHART_LABELS = (
    "Spend vs attributed revenue by channel",
    "Attributed revenue by channel under each model",
    "First response time distribution per channel against its SLA",
    "Missed contacts by hour of week",
    "Operators ranked by conversion",
    "Staffing gap by hour of week",
)


@pytest.fixture(scope="module")
def sim(broker, chdb_dir, tmp_path_factory):
    settings, client, *_ = simulated_warehouse(broker, chdb_dir, tmp_path_factory)
    return settings, client


@pytest.fixture(scope="module")
def data(sim):
    settings, client = sim
    return collect(client, settings, model="linear")


def test_terminal_report_has_every_section(sim, data):
    settings, client = sim
    text = render_terminal(data, html_path="/x/report.html", dashboards="deploy/grafana", metrics_url="http://m")
    for heading in ("Marketing by channel", "Service by operator", "Service by channel",
                    "Worst hours of the week for missed contacts", "Estimated lost revenue", "Dead letters",
                    "HTML report:  /x/report.html", "dashboards:   deploy/grafana", "metrics:      http://m"):
        assert heading in text, heading
    assert "ESTIMATE" in text
    for col in ("spend", "leads", "CPL", "conversion", "CPA", "revenue", "ROMI", "LTV"):
        assert re.search(rf"\b{col}\b", text), col
    for col in ("FRT median", "SLA", "CSAT", "NPS", "missed"):
        assert col in text
    # every operator and channel of the KPI layer is in it
    for row in compute_kpis(client, settings, "operators"):
        assert row["operator_id"] in text
    for row in compute_kpis(client, settings, "channels"):
        assert row["channel"] in text
    # the five worst hours, and the total lost revenue equals the sum over the service rows
    assert len(re.findall(r"^  (Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d\d:00-\d\d:00", text, re.M)) == 5
    lost = sum(r["lost_revenue"] or 0 for r in compute_kpis(client, settings, "service"))
    assert f"${lost:,.0f}" in text


def test_report_for_a_period_and_model(sim):
    settings, client = sim
    d = collect(client, settings, model="first_touch", date_from=SIM_PERIOD[0], date_to=SIM_PERIOD[1])
    assert d.channels == compute_kpis(client, settings, "channels", model="first_touch",
                                      date_from=SIM_PERIOD[0], date_to=SIM_PERIOD[1])
    assert "2026-05-04 to 2026-05-11" in d.period_label
    assert "first_touch" in render_html(d)


def test_html_report_is_self_contained(data, tmp_path):
    path = write_html(data, tmp_path / "r.html")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    for label in CHART_LABELS:
        assert f'aria-label="{label}"' in html, label
    # nothing loaded from anywhere: no script, no stylesheet link, no image or font URL
    assert "<script" not in html and "<link" not in html and "<img" not in html and "@import" not in html
    assert not re.search(r"""\b(?:src|href)\s*=|url\(""", html)
    urls = set(re.findall(r"""https?://[^\s"'<>)]+""", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "ESTIMATE" in html and "lost revenue" in html
    assert "predicted LTV" in html and "Markov: " in html and "removal effects" in html
    assert 20_000 < len(html) < 2_000_000


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def screenshot(data, tmp_path, height: int):
    """The report rendered by headless Chromium in a 1400 x height window, as an RGB image."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/ensure-debian-package.sh chromium chromium installs Debian's package; "
                    "`make test` runs it)")
    from PIL import Image

    page = write_html(data, tmp_path / "report.html")
    png = tmp_path / "shot.png"
    res = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
         f"--window-size=1400,{height}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert png.is_file(), res.stderr[-2000:]
    return Image.open(png).convert("RGB")


def test_html_report_screenshot_in_headless_chromium(data, tmp_path):
    img = screenshot(data, tmp_path, 2400)
    assert img.size == (1400, 2400)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200, "too few colours: the charts did not render"
    # "ink": pixels of neither the page background nor the cards' white (the two commonest colours)
    colours.sort(reverse=True)
    ink = 1 - sum(n for n, _ in colours[:2]) / (img.size[0] * img.size[1])
    assert ink > 0.08, f"only {ink:.1%} of the screenshot is text or chart"
    # the charts' own colours are on the screen: revenue bars, the SLA-met green, the heatmap's reds

    def has(rgb: tuple[int, int, int], tol: int = 6) -> bool:
        return any(all(abs(a - b) <= tol for a, b in zip(c, rgb)) and n > 30 for n, c in colours)

    assert has((0x7C, 0x3A, 0xED)), "no markov bars (purple) among the models side by side"
    assert has((0x25, 0x63, 0xEB)), "no revenue bars (blue)"
    assert has((0x16, 0xA3, 0x4A)), "no within-SLA bars (green)"
    assert has((0xF9, 0x73, 0x16)), "no beyond-SLA bars (orange)"


def test_html_report_staffing_gap_in_headless_chromium(data, tmp_path):
    """The whole page: the staffing gap heatmap (teal: more operators seen than needed, red: short)
    renders below the missed-contacts heatmap."""
    img = screenshot(data, tmp_path, 9000)
    px = img.load()
    teal = [y for y in range(0, img.size[1], 2) for x in range(0, img.size[0], 4)
            if px[x, y][1] > px[x, y][0] + 50 and px[x, y][2] > px[x, y][0] + 50 and px[x, y][1] > 100]
    assert len(teal) > 300, "no staffing gap heatmap (teal cells)"
    # below the missed-contacts heatmap (its darkest red, #b91c1c, is in its legend)
    red = [y for y in range(0, img.size[1], 2) for x in range(0, img.size[0], 4) if px[x, y] == (0xB9, 0x1C, 0x1C)]
    assert red and min(red) < min(teal)


def test_contact_centre_parts(sim, data):
    """Issue 17: staffing gap, bots and the contacts to look at, from the same queries as the CLI."""
    from services.attribution.kpis.contact_centre import contacts, gap_by_hour, staffing

    settings, client = sim
    assert data.staffing == staffing(client, settings)
    text = render_terminal(data)
    gaps = sorted(((v, d, h) for (d, h), v in gap_by_hour(data.staffing).items() if v is not None and v > 0),
                  key=lambda c: (-c[0], c[1], c[2]))[:5]
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for v, d, h in gaps:
        assert f"  {names[d]} {h:02d}h  {v:+.2f} agents" in text
    chat = next(r for r in data.service if r["channel"] == "chat")
    assert re.search(rf"^  chat\s+{chat['bot_conversations']:,}\s+{chat['bot_contained']:,}\s", text, re.M)
    html = render_html(data)
    assert "Contacts to look at" in html and "bot chats" in html
    for ch, rows in data.slowest.items():
        assert rows == contacts(client, settings, channels=[ch], order="slowest", limit=10)
        assert all(r["first_response_s"] is not None for r in rows)
        assert [r["first_response_s"] for r in rows] == sorted((r["first_response_s"] for r in rows), reverse=True)
        for r in rows + data.recent_missed[ch]:
            assert r["contact_id"] in html
    assert all(r["missed"] for rows in data.recent_missed.values() for r in rows)
    assert sum(len(v) for v in data.recent_missed.values()) > 0


def test_report_command(sim, tmp_path, monkeypatch, capsys):
    from leadflow.cli import main

    settings, _ = sim
    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    out = tmp_path / "out" / "report.html"
    assert main(["report", "--warehouse", str(settings.warehouse_dir), "--out", str(out),
                 "--model", "time_decay", "--from", "2026-05-01", "--to", "2026-06-01"]) == 0
    assert out.is_file() and "time_decay" in out.read_text()
    assert str(out.resolve()) in capsys.readouterr().out
    assert main(["report", "--warehouse", str(settings.warehouse_dir), "--out", str(out), "--print"]) == 0
    assert "Marketing by channel" in capsys.readouterr().out
    assert main(["report", "--from", "2026-05-02", "--to", "2026-05-01"]) == 2
    assert "empty period" in capsys.readouterr().err
