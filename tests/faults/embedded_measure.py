"""Measure an embedded run's chdb warehouse (a child process of tests/faults/run.py: chdb
opens one engine path per process). Prints the Measure as one JSON line.

    python -m tests.faults.embedded_measure WAREHOUSE_DIR INPUT.jsonl
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from leadflow import warehouse
from leadflow.config import load_settings
from tests.faults.harness import DATABASE
from tests.faults.measure import settle_and_measure, simulated_input_from


def main() -> None:
    directory, path = Path(sys.argv[1]), Path(sys.argv[2])
    settings = load_settings(warehouse_dir=directory, clickhouse_database=DATABASE)
    client = warehouse.connect(settings, create_database=False)
    m = settle_and_measure(client, settings, simulated_input_from(path), timeout=5)
    print(json.dumps(dataclasses.asdict(m)))


if __name__ == "__main__":
    main()
