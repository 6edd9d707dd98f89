"""Grafana dashboards as code (deploy/grafana): the committed JSON is what
`leadflow grafana build` generates from the KPI SQL; every ClickHouse panel's
SQL, with Grafana's macros and variables expanded the way Grafana and the
grafana-clickhouse-datasource plugin expand them, runs on the embedded engine
over a simulated business replayed through the pipeline and returns the
columns the panel expects; the Prometheus panels use metrics leadflow exports;
`leadflow grafana push` uploads through grafana-client.

No Grafana server can be installed here, so the push test talks to a local
stand-in HTTP server (http.server on 127.0.0.1) that answers like Grafana's
HTTP API and records the requests.
"""
from __future__ import annotations

import json
import re
import sys
import threading
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from leadflow import grafana  # noqa: E402
from leadflow.config import load_settings  # noqa: E402
from services.attribution.kpis import compute_kpis  # noqa: E402
from tests.simdata import simulated_warehouse  # noqa: E402

PROVISIONING = grafana.GRAFANA_DIR / "provisioning"
MONTH = (datetime(2026, 5, 1, tzinfo=timezone.utc), datetime(2026, 6, 1, tzinfo=timezone.utc))
WEEK = (datetime(2026, 5, 4, tzinfo=timezone.utc), datetime(2026, 5, 11, tzinfo=timezone.utc))


@pytest.fixture(scope="module")
def sim(broker, chdb_dir, tmp_path_factory):
    settings, client, *_ = simulated_warehouse(broker, chdb_dir, tmp_path_factory)
    return settings, client


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return grafana.load_dashboards()


# --- Grafana's expansion, as Grafana (variables) and the ClickHouse plugin (macros) do it -----------

def expand(sql: str, time_range: tuple[datetime, datetime], variables: dict[str, list[str]]) -> str:
    """Variables first (Grafana's template service), then the plugin's macros."""
    frm, to = (int(t.timestamp()) for t in time_range)

    def var(m: re.Match) -> str:
        name, fmt = m.group(1), m.group(2)
        values = variables[name]
        if fmt == "singlequote":
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        assert fmt is None, f"format {fmt} not handled by this test"
        return ",".join(values)

    sql = re.sub(r"\$\{(\w+)(?::(\w+))?\}", var, sql)
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m.group(1)} >= toDateTime({frm}) AND {m.group(1)} <= toDateTime({to})", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({frm})").replace("$__toTime", f"toDateTime({to})")
    sql = re.sub(r"\$(?!__)(\w+)", lambda m: ",".join(variables[m.group(1)]), sql)
    assert "$" not in sql, f"unexpanded: {sql[sql.index('$'):][:60]}"
    return sql


def resolve_variables(client, dashboard: dict, time_range, overrides: dict[str, list[str]] | None = None):
    """Each variable's current value: custom -> its current, query -> run it; `All` = every option."""
    values: dict[str, list[str]] = {}
    options: dict[str, list[str]] = {}
    for v in dashboard["templating"]["list"]:
        if v["type"] == "custom":
            options[v["name"]] = v["query"].split(",")
            current = v["current"]["value"]
            values[v["name"]] = current if isinstance(current, list) else [current]
        else:
            assert v["type"] == "query" and v["datasource"]["uid"] == "leadflow-clickhouse"
            rows = client.query(expand(v["query"], time_range, values)).result_rows
            options[v["name"]] = [str(r[0]) for r in rows]
            current = v["current"]["value"]
            values[v["name"]] = options[v["name"]] if current == ["$__all"] else current
        if overrides and v["name"] in overrides:
            values[v["name"]] = overrides[v["name"]]
    return values, options


def clickhouse_panels(dashboard: dict):
    for p in dashboard["panels"]:
        for t in p.get("targets", []):
            if p["datasource"]["uid"] == "leadflow-clickhouse":
                yield p, t


def expected_columns(panel: dict) -> list[str]:
    organize = [t for t in panel["transformations"] if t["id"] == "organize"]
    assert organize, f"panel {panel['title']!r} does not list its columns"
    index = organize[0]["options"]["indexByName"]
    return sorted(index, key=index.get)


# --- the files ----------------------------------------------------------------------------------

def test_committed_dashboards_are_generated_from_the_kpi_sql(monkeypatch, dashboards):
    for key in [k for k in __import__("os").environ if k.startswith("LEADFLOW_")]:
        monkeypatch.delenv(key)
    built = grafana.build_dashboards(load_settings())
    assert set(built) == set(dashboards), "run `leadflow grafana build`"
    for name in built:
        assert grafana.dump(built[name]) == (grafana.DASHBOARDS_DIR / name).read_text(encoding="utf-8"), \
            f"{name} is stale: run `leadflow grafana build`"


def test_dashboards_uids_variables_and_datasources(dashboards):
    by_uid = {d["uid"]: d for d in dashboards.values()}
    assert set(by_uid) == {"leadflow-marketing", "leadflow-contact-centre", "leadflow-pipeline"}
    assert by_uid["leadflow-marketing"]["title"] == "Marketing attribution"
    assert by_uid["leadflow-contact-centre"]["title"] == "Contact centre"
    assert by_uid["leadflow-pipeline"]["title"] == "Pipeline health"
    names = {uid: [v["name"] for v in d["templating"]["list"]] for uid, d in by_uid.items()}
    assert names["leadflow-marketing"] == ["model", "channel", "campaign"]
    assert names["leadflow-contact-centre"] == ["channel", "operator"]
    assert any("hour of week" in p["title"] and "heatmap" in p["title"]
               for p in by_uid["leadflow-contact-centre"]["panels"])
    for d in dashboards.values():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for p in d["panels"]:
            assert p["datasource"]["uid"] in ("leadflow-clickhouse", "leadflow-prometheus")
            assert 0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    prom = [p for p in by_uid["leadflow-pipeline"]["panels"] if p["datasource"]["uid"] == "leadflow-prometheus"]
    assert len(prom) >= 8
    # no KPI SQL is written in the dashboards: every ClickHouse panel says which KPI file it wraps
    for d in dashboards.values():
        for p, t in clickhouse_panels(d):
            assert re.search(r"-- services/(attribution/kpis/sql/\w+|rollup/sql/\w+/kpis)\.sql", t["rawSql"]), p["title"]


def test_prometheus_panels_use_metrics_leadflow_exports(dashboards):
    from prometheus_client import REGISTRY

    import leadflow.metrics  # noqa: F401  registers the pipeline metrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""],
                "summary": ["_sum", "_count", ""]}
    exported = {f.name + s for f in REGISTRY.collect() for s in suffixes.get(f.type, [""])}
    used = set()
    for d in dashboards.values():
        for p in d["panels"]:
            for t in p["targets"]:
                if p["datasource"]["uid"] == "leadflow-prometheus":
                    used |= set(re.findall(r"\bleadflow_\w+", t["expr"]))
    assert used and used <= exported, f"not exported by leadflow/metrics.py: {sorted(used - exported)}"


def test_provisioning_files():
    yaml = pytest.importorskip("yaml")
    ds = yaml.safe_load((PROVISIONING / "datasources" / "clickhouse.yml").read_text())
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    assert by_uid["leadflow-clickhouse"]["type"] == "grafana-clickhouse-datasource"
    assert by_uid["leadflow-clickhouse"]["jsonData"]["defaultDatabase"] == "leadflow"
    assert by_uid["leadflow-prometheus"]["type"] == "prometheus"
    prov = yaml.safe_load((PROVISIONING / "dashboards" / "leadflow.yml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# --- every panel on the engine -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(grafana.DASHBOARDS))
@pytest.mark.parametrize("time_range", [MONTH, WEEK], ids=["month", "week"])
def test_every_clickhouse_panel_runs_and_returns_its_columns(sim, dashboards, name, time_range):
    settings, client = sim
    dashboard = dashboards[name]
    values, _ = resolve_variables(client, dashboard, time_range)
    ran = 0
    for panel, target in clickhouse_panels(dashboard):
        sql = expand(target["rawSql"], time_range, values)
        result = client.query(sql)
        assert list(result.column_names) == expected_columns(panel), panel["title"]
        assert result.result_rows, f"{panel['title']!r} returned no rows"
        ran += 1
    assert ran >= (1 if name == "pipeline-health.json" else 6)


def test_panels_follow_the_variables(sim, dashboards):
    """One channel, one model, one operator: the panels show exactly those rows, with the KPI
    layer's numbers for the time picker's period."""
    settings, client = sim
    mk = dashboards["marketing-attribution.json"]
    for model in ("first_touch", "markov"):
        values, options = resolve_variables(client, mk, WEEK, {"model": [model], "channel": ["search_ads"]})
        assert "search_ads" in options["channel"] and set(options["model"]) == set(
            ["first_touch", "last_touch", "linear", "time_decay", "position_based", "markov"])
        table = next(p for p in mk["panels"] if p["title"] == "KPIs by channel")
        res = client.query(expand(table["targets"][0]["rawSql"], WEEK, values))
        rows = [dict(zip(res.column_names, r)) for r in res.result_rows]
        want = [r for r in compute_kpis(client, settings, "channels", model=model,
                                        date_from=date(2026, 5, 4), date_to=date(2026, 5, 11))
                if r["channel"] == "search_ads"]
        assert len(rows) == 1 and len(want) == 1
        for k, v in want[0].items():
            got = rows[0][k]
            if isinstance(v, str) or v is None:
                assert got == v, k
            else:
                assert float(got) == pytest.approx(v, rel=1e-9), k
    # the campaign variable follows the channel variable
    assert values["campaign"] and all(c.startswith("search") for c in values["campaign"])

    cc = dashboards["contact-centre.json"]
    all_values, ops = resolve_variables(client, cc, MONTH)
    op = ops["operator"][0]
    values, _ = resolve_variables(client, cc, MONTH, {"operator": [op]})
    table = next(p for p in cc["panels"] if p["title"] == "Operators")
    res = client.query(expand(table["targets"][0]["rawSql"], MONTH, values))
    assert [r[0] for r in res.result_rows] == [op]
    heat = next(p for p in cc["panels"] if "heatmap" in p["title"])
    res = client.query(expand(heat["targets"][0]["rawSql"], MONTH, all_values))
    assert [r[0] for r in res.result_rows] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    service = compute_kpis(client, settings, "service", date_from=date(2026, 5, 1), date_to=date(2026, 6, 1))
    missed = sum((r["missed_conversations"] or 0) + (r["missed_calls"] or 0) + (r["abandoned_calls"] or 0)
                 for r in service)
    assert sum(r[-1] for r in res.result_rows) == missed


# --- push ---------------------------------------------------------------------------------------

class _StandIn(BaseHTTPRequestHandler):
    """Answers the few Grafana HTTP API calls `leadflow grafana push` makes; records them."""

    requests: list[dict] = []
    folders: set[str] = set()

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append({"method": self.command, "path": self.path,
                              "auth": self.headers.get("Authorization"), "body": body})
        return body

    def do_GET(self) -> None:
        self._record()
        m = re.fullmatch(r"/api/folders/([\w-]+)", self.path)
        if m and m.group(1) in self.folders:
            self._reply(200, {"uid": m.group(1), "title": "leadflow"})
        else:
            self._reply(404, {"message": "folder not found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/api/folders":
            self.folders.add(body["uid"])
            self._reply(200, {"uid": body["uid"], "title": body["title"]})
        elif self.path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            self._reply(200, {"status": "success", "uid": uid, "url": f"/d/{uid}/x", "version": 1})
        else:
            self._reply(404, {"message": "not found"})


@pytest.fixture
def stand_in():
    _StandIn.requests, _StandIn.folders = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _StandIn
    finally:
        server.shutdown()
        server.server_close()


def test_grafana_push_uploads_every_dashboard(stand_in, capsys):
    from leadflow.cli import main

    url, handler = stand_in
    assert main(["grafana", "push", "--url", url, "--token", "glsa_test"]) == 0
    out = capsys.readouterr().out
    assert "created folder 'leadflow'" in out and out.count("uploaded ") == 3
    posts = [r for r in handler.requests if r["path"] == "/api/dashboards/db"]
    assert all(r["auth"] == "Bearer glsa_test" for r in handler.requests)
    assert sorted(r["body"]["dashboard"]["uid"] for r in posts) == \
        ["leadflow-contact-centre", "leadflow-marketing", "leadflow-pipeline"]
    for r in posts:
        assert r["method"] == "POST" and r["body"]["overwrite"] is True and r["body"]["folderUid"] == "leadflow"
        assert r["body"]["dashboard"]["id"] is None and r["body"]["dashboard"]["panels"]
    # a second push finds the folder and overwrites the same UIDs
    assert main(["grafana", "push", "--url", url, "--token", "glsa_test"]) == 0
    assert "exists" in capsys.readouterr().out
    assert sum(1 for r in handler.requests if r["path"] == "/api/folders" and r["method"] == "POST") == 1


def test_grafana_push_needs_url_and_token(capsys, monkeypatch):
    from leadflow.cli import main

    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert main(["grafana", "push", "--url", "http://127.0.0.1:9"]) == 2
    assert "--token" in capsys.readouterr().err


def test_grafana_build_writes_the_files(tmp_path, capsys):
    from leadflow.cli import main

    assert main(["grafana", "build", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == sorted(grafana.DASHBOARDS)


def test_contact_centre_staffing_and_drill_down_panels(sim, dashboards):
    """Issue 17: the staffing gap heatmap and table and the contacts table give the CLI's numbers
    (staffing.sql and contacts.sql); operator and channel columns link to the drill-down."""
    from services.attribution.kpis.contact_centre import contacts, gap_by_hour, staffing

    settings, client = sim
    cc = dashboards["contact-centre.json"]
    values, _ = resolve_variables(client, cc, MONTH)
    period = {"date_from": date(2026, 5, 1), "date_to": date(2026, 6, 1)}
    rows = staffing(client, settings, **period)

    heat = next(p for p in cc["panels"] if p["title"].startswith("Staffing gap by hour of week"))
    res = client.query(expand(heat["targets"][0]["rawSql"], MONTH, values))
    want = gap_by_hour(rows)
    assert [r[0] for r in res.result_rows] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    for d, r in enumerate(res.result_rows):
        for h, got in enumerate(r[1:]):
            assert got == pytest.approx(want[(d, h)], abs=1e-9) if want[(d, h)] is not None else got is None

    table = next(p for p in cc["panels"] if p["title"].startswith("Staffing by channel and hour"))
    res = client.query(expand(table["targets"][0]["rawSql"], MONTH, values))
    got = {(r[0], r[1], r[2]): r for r in res.result_rows}
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    busy = [r for r in rows if r["contacts_per_hour"]]
    assert len(got) == len(busy) > 0
    for r in busy:
        g = got[(r["channel"], names[r["weekday"]], r["hour"])]
        assert (g[6], g[3]) == (r["agents_needed"], pytest.approx(r["contacts_per_hour"]))

    drill = next(p for p in cc["panels"] if p["title"] == grafana.CONTACTS_PANEL_TITLE)
    one_op = resolve_variables(client, cc, MONTH, {"operator": ["op-anna"]})[0]
    res = client.query(expand(drill["targets"][0]["rawSql"], MONTH, one_op))
    want = contacts(client, settings, operators=["op-anna"], limit=grafana.CONTACTS_PANEL_LIMIT, **period)
    assert [r[0] for r in res.result_rows] == [r["contact_id"] for r in want] and want
    for title, col in (("Operators", "operator_id"), ("Service by channel", "channel")):
        panel = next(p for p in cc["panels"] if p["title"] == title)
        links = [pr["value"] for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == col
                 for pr in o["properties"] if pr["id"] == "links"]
        assert links and f"viewPanel={drill['id']}" in links[0][0]["url"]
        assert "${__url_time_range}" in links[0][0]["url"] and "${__value.raw}" in links[0][0]["url"]
