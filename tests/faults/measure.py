"""The fault suite's input and its measures, against the independent reference.

The input is a simulated business (leadflow.simulator: valid events, exact duplicates,
out-of-order events, invalid lines). Repeated invalid lines are dropped from it, so each
invalid line is exactly one expected dead letter whichever chunk or process carries it.

After a run has settled, `measure` gives:
* events lost: valid events (by the reference's validation) that every client sent and
  ingest answered, missing from the warehouse's raw events;
* cells different: KPI cells (four groupings, five models, two periods) where the KPI SQL
  on what the pipeline wrote differs from tests/reference/kpis.py on the input;
* dead letters: stored dead letters minus expected ones (0 when exact).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import clickhouse_connect

from leadflow.config import Settings, load_settings
from services.attribution.kpis import compute_kpis as sql_kpis
from tests.reference import kpis as ref
from tests.test_kpi_sql import compare_all

PERIODS = [(None, None), (date(2026, 5, 2), date(2026, 5, 3))]


@dataclass
class Input:
    lines: list[bytes]
    events: list           # every line decoded (invalid JSON left out), for the reference
    valid_ids: set[str]    # event_ids the reference accepts
    invalid: int           # lines the reference rejects (each distinct): the expected dead letters


def simulated_input(days: int = 3, visitors_per_day: int = 300, seed: int = 11, path: Path | None = None) -> Input:
    from leadflow.simulator import SimulationConfig, write_jsonl

    path = path or Path(tempfile.gettempdir()) / f"leadflow-faults-sim-{days}d-{visitors_per_day}v-{seed}.jsonl"
    write_jsonl(SimulationConfig(days=days, visitors_per_day=visitors_per_day, seed=seed), path)
    return simulated_input_from(path)


def simulated_input_from(path: Path) -> Input:
    """The lines of a JSON Lines file, repeated invalid lines dropped, judged by the reference."""
    lines, events, valid, invalid, seen_bad = [], [], set(), 0, set()
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        errors = ["not json"] if event is None else ref.validate_event(event)
        if errors:
            if line in seen_bad:
                continue
            seen_bad.add(line)
            invalid += 1
        else:
            valid.add(event["event_id"])
        lines.append(line)
        if event is not None:
            events.append(event)
    return Input(lines, events, valid, invalid)


@dataclass
class Measure:
    stored: int = 0
    lost: int = 0
    cells: int = 0
    cells_different: int = 0
    dead_letters_off: int = 0
    settled: bool = False
    detail: str = ""
    exits: list[str] = field(default_factory=list)  # processes that ended on their own (production)
    unanswered: int = 0  # chunks sent again: no answer or a 5xx from ingest (production)
    timings: dict = field(default_factory=dict)  # seconds per phase (production)


def settings_for(url: str, database: str) -> Settings:
    return load_settings(clickhouse_url=url, clickhouse_database=database)


def _progress(client) -> tuple[int, int, int, int]:
    def one(sql: str) -> int:
        return int(client.query(sql).result_rows[0][0])

    return (one("SELECT uniqExact(event_id) FROM raw_events"),
            one("SELECT uniqExact(event_id) FROM enriched_events"),
            one("SELECT count() FROM (SELECT person_id FROM attribution_queue GROUP BY person_id "
                "HAVING argMax(done, version) = 0)"),
            one("SELECT uniqExact(dead_letter_id) FROM dead_letters"))


def settle_and_measure(client, settings: Settings, data: Input, timeout: float = 300.0, tick=None) -> Measure:
    """Wait until the warehouse holds every event, enriched, and no person awaits attribution;
    then compare every KPI cell with the reference (again until equal or the time is up)."""
    deadline = time.monotonic() + timeout
    m = Measure()
    while time.monotonic() < deadline:
        try:
            stored, enriched, pending, dead = _progress(client)
        except Exception:  # noqa: BLE001 - the warehouse may be coming back
            time.sleep(0.5)
            continue
        if stored >= len(data.valid_ids) and enriched >= stored and pending == 0 and dead >= data.invalid:
            m.settled = True
            m.timings["settled after"] = timeout - (deadline - time.monotonic())
            break
        if tick is not None:
            tick()
        time.sleep(0.5)
    stored, enriched, pending, dead = _progress(client)
    ids = {r[0] for r in client.query("SELECT DISTINCT event_id FROM raw_events").result_rows}
    m.stored = len(ids)
    m.lost = len(data.valid_ids - ids)
    m.dead_letters_off = dead - data.invalid
    while True:
        m.cells, bad = compare_all(client, settings, data.events, PERIODS, kpis=sql_kpis)
        m.cells_different = len(bad)
        m.detail = "; ".join(bad[:5])
        if not bad or time.monotonic() > deadline:
            break
        time.sleep(2)
    if not m.settled:
        m.detail = (f"not settled: stored {stored}/{len(data.valid_ids)}, enriched {enriched}, pending people "
                    f"{pending}, dead letters {dead}/{data.invalid}. " + m.detail)
    return m


def http_client(url: str, database: str):
    return clickhouse_connect.get_client(dsn=url, database=database)
