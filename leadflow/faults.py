"""Fault points for the fault suite (tests/faults): a process kills itself with SIGKILL at a
named point of a stage, as a crash there would.

`LEADFLOW_FAULT_KILL_AT=STAGE:POINT:N[,...]` kills the process the Nth time STAGE (a stage
name, or `*` for any) passes POINT. The point is `after-write`: a batch's warehouse writes
and produced messages are done and its offsets are not committed yet. Unset (always, outside
the fault suite), a fault point costs one dictionary lookup.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "LEADFLOW_FAULT_KILL_AT"
_passes: Counter[tuple[str, str]] = Counter()


def _plan() -> list[tuple[str, str, int]]:
    spec = os.environ.get(ENV, "")
    plan = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        stage, point, n = item.rsplit(":", 2)
        plan.append((stage, point, int(n)))
    return plan


def kill_point(stage: str, point: str) -> None:
    """SIGKILL this process here if LEADFLOW_FAULT_KILL_AT names this pass."""
    if ENV not in os.environ:
        return
    for want_stage, want_point, n in _plan():
        if want_point == point and want_stage in (stage, "*"):
            _passes[(want_stage, point)] += 1
            if _passes[(want_stage, point)] == n:
                os.kill(os.getpid(), signal.SIGKILL)
