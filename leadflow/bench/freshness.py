"""Freshness under live load: seconds from an event's send to its effect being visible.

Events are published at a fixed rate in ticks; an event's effect is visible in the
facts when the warehouse lists it as enriched and attribution has caught up with
everything enrich had emitted by then (so every KPI query over the facts sees it),
and visible in the rollups once the rollup stage has also caught up with every dirty
entity enrich and attribution had announced by then (what dashboards read).
"""
from __future__ import annotations

import asyncio
import statistics
import time

from aiokafka import TopicPartition

from leadflow import metrics, warehouse
from leadflow.broker import broker_for
from leadflow.config import Settings
from leadflow.pipeline import Pipeline
from services.ingest.publish import Publisher
from services.ingest.validate import InputOccurrences, Validator


def _thread_busy() -> dict[str, float]:
    """Seconds the stage thread has spent on each stage's work so far (leadflow_stage_thread_busy_seconds_total)."""
    return {sample.labels["stage"]: sample.value for family in metrics.STAGE_THREAD_BUSY.collect()
            for sample in family.samples if sample.name.endswith("_total")}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


async def measure_freshness(settings: Settings, lines: list[bytes], rate: int = 1000, seconds: float = 60,
                            tick: float = 0.1) -> dict:
    client = warehouse.open_warehouse(settings)
    per_tick = max(1, int(rate * tick))
    latencies: list[float] = []
    with broker_for(settings) as bootstrap:
        async with Pipeline(settings, bootstrap, client) as pipe:
            publisher = Publisher(Validator(settings), pipe.producer, pipe.topics,
                                  max_event_bytes=settings.max_event_bytes)
            attribution = pipe.runners[3]
            rollup = pipe.runners[4] if len(pipe.runners) > 4 else None  # rollups off: no stage
            pending: list[tuple[float, list[str]]] = []
            waiting: list[tuple[float, dict[TopicPartition, int]]] = []
            rolling: list[tuple[float, dict[TopicPartition, int]]] = []
            rolled: list[float] = []
            occurrences = InputOccurrences()
            sending = True

            async def send() -> None:
                nonlocal sending
                start, offset = time.monotonic(), 0
                for k in range(int(seconds / tick)):
                    chunk = lines[offset:offset + per_tick]
                    offset += per_tick
                    if not chunk:
                        break
                    sent = time.monotonic()
                    statuses = await publisher.publish(chunk, origin="bench-live", default_source="bench",
                                                       occurrences=occurrences)
                    ids = [s.event_id for s in statuses if s.status == "accepted"]
                    if ids:
                        pending.append((sent, ids))
                    await asyncio.sleep(max(0.0, start + (k + 1) * tick - time.monotonic()))
                sending = False

            busy_before, started = _thread_busy(), time.monotonic()
            sender = asyncio.create_task(send())
            deadline = time.monotonic() + seconds + 60
            while (sending or pending or waiting or rolling) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if pending:
                    ids = [i for _, batch in pending for i in batch]
                    warehouse.stage_keys(client, "bench_fresh", ids)
                    done = {r[0] for r in client.query(
                        "SELECT DISTINCT event_id FROM enriched_events "
                        "WHERE event_id IN (SELECT key FROM bench_fresh)").result_rows}
                    snapshot = dict(pipe.enrich.emitted.ends)
                    still = []
                    for sent, batch in pending:
                        (waiting.append((sent, snapshot)) if all(i in done for i in batch)
                         else still.append((sent, batch)))
                    pending[:] = still
                now = time.monotonic()
                left = []
                dirty = dict(pipe.enrich.dirty_emitted.ends)
                for sent, snapshot in waiting:
                    if attribution.caught_up(snapshot):
                        latencies.append(now - sent)
                        if rollup is not None:
                            rolling.append((sent, dirty))
                    else:
                        left.append((sent, snapshot))
                waiting[:] = left
                left = []
                for sent, snapshot in rolling:
                    (rolled.append(now - sent) if rollup.caught_up(snapshot) else left.append((sent, snapshot)))
                rolling[:] = left
            await sender
            wall = time.monotonic() - started
            busy = {stage: round(seconds - busy_before.get(stage, 0.0), 1) for stage, seconds in _thread_busy().items()}
    return {
        # the share of the run the stage thread was busy (every stage's batch work shares it), and by stage
        "stage_thread_busy": round(sum(busy.values()) / wall, 3), "stage_thread_busy_s": busy,
        "rate_per_s": rate, "seconds": seconds, "ticks": len(latencies),
        "p50_s": round(_quantile(latencies, 0.5), 3) if latencies else None,
        "p99_s": round(_quantile(latencies, 0.99), 3) if latencies else None,
        "mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "rollups_p50_s": round(_quantile(rolled, 0.5), 3) if rolled else None,
        "rollups_p99_s": round(_quantile(rolled, 0.99), 3) if rolled else None,
    }
