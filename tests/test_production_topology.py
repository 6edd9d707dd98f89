"""The production topology as separate processes (tests/faults/harness.py): a standalone broker
(Tansu), `leadflow serve --ingest-only`, `leadflow worker` processes per stage in consumer groups
and the warehouse over ClickHouse's HTTP interface (tests/chdb_http_server.py on the real
engine). A simulated business posted to ingest ends in the warehouse with every KPI cell equal
to the independent reference (tests/reference/kpis.py), every event stored and the dead letters
exact; every chunk is answered at the first try."""
from __future__ import annotations

import pytest

from tests.faults.measure import simulated_input
from tests.faults.run import production_run


@pytest.mark.slow  # make test: the production run of tests/faults/test_faults.py, the same checks with faults
def test_events_posted_to_ingest_only_reach_the_warehouse_over_http_exactly(tmp_path):
    data = simulated_input(days=2, visitors_per_day=100, seed=5)
    m = production_run(tmp_path, data, [], pause=0.0)
    assert m.settled, m.detail
    assert m.stored == len(data.valid_ids) and m.lost == 0
    assert m.cells > 1000 and m.cells_different == 0, m.detail
    assert m.dead_letters_off == 0
    assert m.unanswered == 0 and m.exits == []
    print("production topology, seconds per phase:", {k: round(v, 1) for k, v in m.timings.items()})
