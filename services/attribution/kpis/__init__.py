"""The KPI layer (kpis.md) as SQL over the warehouse.

One parametrised query per grouping lives in `sql/` (the single source of the
KPI definitions: the CLI runs them, dashboards can reuse them);
`query.compute_kpis` binds and runs one and returns plain rows.
"""
from services.attribution.kpis.query import GROUPINGS, MODELS, OUTPUT_KEYS, compute_kpis, kpi_parameters, load_sql

__all__ = ["GROUPINGS", "MODELS", "OUTPUT_KEYS", "compute_kpis", "kpi_parameters", "load_sql"]
