"""Independent, pure-Python reading of the leadflow contract (docs/contract).

This package is the test oracle that the real pipeline (ClickHouse SQL) is
compared against. It deliberately imports nothing from the project
(`leadflow`, `schemas`, `services`): it is a second, independent reading of
events.md and kpis.md. The readings chosen where the contract is ambiguous
are listed in docs/kpi-readings.md.
"""

from .kpis import (  # noqa: F401
    MODELS,
    OUTPUT_KEYS,
    ReferenceConfig,
    compute_kpis,
    percentile,
    validate_event,
)
