"""A deterministic simulator of a business that produces contract events (events.md).

    from leadflow.simulator import simulate, SimulationConfig
    for line in simulate(SimulationConfig(days=30, seed=7)):
        ...  # one JSON object per str, in delivery order

``write_jsonl(cfg, path)`` writes a file and returns its counts; ``iter_lines``
yields bytes (the fast path); ``config_for_lines(n)`` sizes a config for
benchmarks. The business itself is described in ``business.py``.
"""
from .generate import (
    INVALID_KINDS,
    SimulationConfig,
    config_for_lines,
    iter_batches,
    iter_lines,
    simulate,
    write_jsonl,
)

__all__ = ["INVALID_KINDS", "SimulationConfig", "config_for_lines", "iter_batches", "iter_lines",
           "simulate", "write_jsonl"]
