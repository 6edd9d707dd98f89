"""Prometheus metrics (prometheus-client). Label sets are bounded.

`source` comes from input, so only the first MAX_SOURCES distinct values get
their own label; later ones count under `other`.
"""
from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram

from schemas import EVENT_TYPES

MAX_SOURCES = 50
_sources: set[str] = set()
_sources_lock = threading.Lock()


def source_label(source: str) -> str:
    if source in _sources:
        return source
    with _sources_lock:
        if len(_sources) < MAX_SOURCES:
            _sources.add(source)
            return source
    return "other"


def type_label(event_type: str) -> str:
    return event_type if event_type in EVENT_TYPES else "unknown"


EVENTS_RECEIVED = Counter("leadflow_events_received_total", "Events read from an input (HTTP or replay)",
                          ["source"])
EVENTS_ACCEPTED = Counter("leadflow_events_accepted_total", "Events that passed validation", ["type", "source"])
EVENTS_REJECTED = Counter("leadflow_events_rejected_total", "Events sent to the dead-letter topic",
                          ["type", "source", "reason"])
EVENTS_DUPLICATE = Counter("leadflow_events_duplicate_total", "Events dropped as a repeated event_id", ["type"])
EVENTS_STORED = Counter("leadflow_events_stored_total", "Events stored in the warehouse for the first time",
                        ["type"])
DEAD_LETTERS_STORED = Counter("leadflow_dead_letters_stored_total", "Dead letters written to the warehouse")
LAST_EVENT_TIME = Gauge("leadflow_last_event_timestamp_seconds", "Receive time of the last event per source",
                        ["source"], multiprocess_mode="max")  # `serve --processes`: the latest of them

WAREHOUSE_ROWS = Counter("leadflow_warehouse_rows_written_total", "Rows inserted into the warehouse", ["table"])
WAREHOUSE_BATCHES = Counter("leadflow_warehouse_batches_written_total", "Insert batches", ["table"])
WAREHOUSE_WRITE_SECONDS = Histogram(
    "leadflow_warehouse_write_seconds", "Latency of one warehouse insert batch", ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WAREHOUSE_WRITE_FAILURES = Counter("leadflow_warehouse_write_failures_total", "Failed warehouse inserts", ["table"])

STAGE_RECORDS = Counter("leadflow_stage_records_total", "Records processed by a stream stage", ["stage"])
STAGE_BATCH_SECONDS = Histogram("leadflow_stage_batch_seconds", "Time to process and write one batch", ["stage"],
                                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STAGE_THREAD_BUSY = Counter(
    "leadflow_stage_thread_busy_seconds_total", "Time the process's stage thread spent on a stage's batch work "
    "(every stage of a process shares the one thread: a sum of rates near 1 means batches wait for each other)",
    ["stage"])
ROLLUP_REFRESH_SECONDS = Histogram(
    "leadflow_rollup_refresh_seconds", "Time to recompute the rollup items of a batch in one grouping (services/rollup; kind: the entity kind, or several)",
    ["grouping", "kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROLLUP_ITEM_ROWS = Counter("leadflow_rollup_item_rows_total",
                           "Signed item rows the rollup refresh wrote (a retraction and an addition count one each)",
                           ["grouping"])
PROCESSING_ERRORS = Counter("leadflow_processing_errors_total", "Batches that failed and were retried", ["stage"])
STAGE_DEAD_LETTERS = Counter("leadflow_stage_dead_letters_total",
                             "Records a stage could not handle, sent to the dead-letter topic with the error",
                             ["stage"])
STAGE_UP = Gauge("leadflow_stage_up", "1 while the stage runs (or rides out transient errors), 0 once it gave up",
                 ["stage"])
# Per worker, over the partitions it holds (disjoint within a consumer group): `sum by (stage, topic)`
# across workers is the stage's whole lag.
CONSUMER_LAG = Gauge("leadflow_consumer_lag_messages",
                     "Records of the stage's topic not processed yet (last fetched high watermark - position)",
                     ["stage", "topic"])
EVENTS_SUPPRESSED = Counter("leadflow_events_suppressed_total",
                            "Events dropped because they carry an identity value erased by `leadflow forget`",
                            ["stage", "type"])
