"""The stage thread's busy time (leadflow_stage_thread_busy_seconds_total): what ops and the
freshness bench read to see that the stages of a process wait for each other."""
from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from leadflow.stream import in_stage_thread

METRIC = "leadflow_stage_thread_busy_seconds_total"


def _busy(stage: str) -> float:
    return REGISTRY.get_sample_value(METRIC, {"stage": stage}) or 0.0


class _Stage:
    name = "busy-test"

    def work(self, seconds: float) -> str:
        time.sleep(seconds)
        return "done"


def test_the_stage_threads_time_is_counted_under_the_stage_whose_work_it_was():
    stage_before, other_before = _busy(_Stage.name), _busy("other")

    async def run():
        return await asyncio.gather(in_stage_thread(_Stage().work, 0.1), in_stage_thread(time.sleep, 0.05))

    started = time.perf_counter()
    assert asyncio.run(run())[0] == "done"
    wall = time.perf_counter() - started
    assert wall >= 0.15  # one thread: the two jobs ran one after the other
    assert 0.1 <= _busy(_Stage.name) - stage_before < 0.15
    assert 0.05 <= _busy("other") - other_before < 0.1  # a function without a stage's name


def test_a_failed_batch_counts_its_time_too():
    class Failing:
        name = "busy-test-failing"

        def work(self):
            time.sleep(0.05)
            raise ValueError("bad batch")

    before = _busy(Failing.name)

    async def run():
        try:
            await in_stage_thread(Failing().work)
        except ValueError as exc:
            return str(exc)

    assert asyncio.run(run()) == "bad batch"
    assert _busy(Failing.name) - before >= 0.05


def test_the_freshness_bench_reports_the_stage_threads_share(settings, client):
    """A short live load through every stage: the bench says how busy the stage thread was, as a
    share of the run (a sum over the stages that is at most the run), and who used it."""
    from leadflow.bench.freshness import measure_freshness
    from leadflow.simulator import config_for_lines, iter_lines

    lines = list(iter_lines(config_for_lines(400, days=2, seed=3)))[:300]
    out = asyncio.run(measure_freshness(settings, lines, rate=100, seconds=2))
    assert out["ticks"] > 0 and out["p50_s"] is not None
    busy = out["stage_thread_busy_s"]
    assert {"warehouse-sink", "enrich", "attribution"} <= {stage for stage, seconds in busy.items() if seconds > 0}
    assert 0 < out["stage_thread_busy"] <= 1
