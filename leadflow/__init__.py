"""leadflow: an event-driven lead-to-conversion pipeline.

Layers (an import goes down only; tests/test_layers.py checks it):

- core, this package's modules: config, broker, warehouse, stream (the stage runner), topics,
  metrics, privacy, secret_guard, lease, versions, faults, progress, table. They import only
  each other and `schemas/` (the contract).
- services, `services/`: the stages (ingest, enrich, attribution, rollup, erasure) and
  services/business_metrics.py. They import core and `schemas/`, never the app.
- app, this package's modules: cli, commands, pipeline (the wiring of the stages), run, serve,
  serve_processes (serve --processes N), replay, importer, kpis_cli, contact_centre_cli,
  rollups_cli, worker, report, bench, grafana, simulator.
  They import anything below.
"""
__version__ = "0.1.0"
