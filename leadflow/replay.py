"""`leadflow replay FILE...`: JSON Lines through the same validation and topics
as live traffic, then wait until the warehouse has all of it."""
from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import queue as queue_module
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterator

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from leadflow import warehouse
from leadflow.broker import broker_for, delete_topics
from leadflow.config import Settings
from leadflow.pipeline import Pipeline, PipelineError, release_free_memory, wait_for_workers
from leadflow.progress import Progress
from leadflow.stream import OffsetTracker, RetryPolicy, is_transient, start_producer
from leadflow.topics import Topics
from services.ingest.publish import Publisher, record_ingest_metrics
from services.ingest.suppression import Suppression, load_digests
from services.ingest.validate import InputOccurrences, Validator, describe_errors
from services.rollup.stage import catch_up

CHUNK_LINES = 20_000
# inputs at least this large are validated and produced in a child process (both cores busy)
CHILD_PROCESS_MIN_BYTES = 4 * 1024 * 1024


@dataclass
class ReplaySummary:
    files: list[str]
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    suppressed: int = 0  # events of identity values `leadflow forget` erased: dropped
    seconds: float = 0.0
    accepted_by_type: dict[str, int] = field(default_factory=dict)
    first_rejections: list[dict] = field(default_factory=list)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    processed_by: str = "here"  # here | workers (then accepted = published; the workers drop duplicates)

    def as_dict(self) -> dict:
        return {
            "files": self.files, "read": self.read, "accepted": self.accepted, "duplicates": self.duplicates,
            "rejected": self.rejected, "suppressed": self.suppressed, "seconds": round(self.seconds, 3),
            "events_per_second": round(self.read / self.seconds, 1) if self.seconds else None,
            "accepted_by_type": self.accepted_by_type,
            "first_rejections": self.first_rejections,
            "top_reasons": [{"reason": r, "count": n} for r, n in self.top_reasons],
            "processed_by": self.processed_by,
        }

    def render(self) -> str:
        lines = [
            f"replayed {len(self.files)} file(s) in {self.seconds:.1f}s",
            f"  read        {self.read:>10,}",
            f"  accepted    {self.accepted:>10,}",
            f"  duplicates  {self.duplicates:>10,}",
            f"  rejected    {self.rejected:>10,}  (dead letters: `leadflow deadletters`)",
        ]
        if self.suppressed:
            lines.append(f"  suppressed  {self.suppressed:>10,}  (identity values erased by `leadflow forget`)")
        for rej in self.first_rejections:
            lines.append(f"    {rej['origin']}: {rej['reason']}")
        if self.processed_by == "workers":
            lines.append("  processed by the `leadflow worker` processes (accepted = published; they drop "
                         "duplicates: leadflow_events_duplicate_total)")
        return "\n".join(lines)


def iter_chunks(path: Path, chunk_lines: int = CHUNK_LINES) -> Iterator[tuple[list[tuple[int, bytes]], int]]:
    """Yield (numbered non-blank lines, bytes read so far) in chunks."""
    chunk: list[tuple[int, bytes]] = []
    done = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            done += len(raw)
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            chunk.append((number, line))
            if len(chunk) >= chunk_lines:
                yield chunk, done
                chunk = []
    if chunk:
        yield chunk, done


async def publish_files(publisher: Publisher, files: list[Path],
                        on_progress: Callable[[int, float], None], *, segment_lines: int | None = None,
                        next_segment: Callable[[], Awaitable[None]] | None = None) -> list[dict]:
    """Validate and produce every line of the files. Returns the first few rejections (file:line).

    With `segment_lines`, `next_segment` is awaited before a chunk once that many lines went
    into the current segment (it points the publisher at the next segment's topics)."""
    first: list[dict] = []
    total_bytes = sum(f.stat().st_size for f in files) or 1
    bytes_before = 0
    segment_start = 0
    for path in files:
        origin = str(path.resolve())
        occurrences = InputOccurrences()
        for chunk, done in iter_chunks(path, min(CHUNK_LINES, segment_lines or CHUNK_LINES)):
            if segment_lines and publisher.totals.read - segment_start >= segment_lines:
                await next_segment()
                segment_start = publisher.totals.read
            statuses = await publisher.publish([line for _, line in chunk], origin=origin,
                                               default_source=f"replay:{path.name}", occurrences=occurrences)
            for status in statuses:
                if status.status == "rejected" and len(first) < 5:
                    first.append({"origin": f"{path.name}:{chunk[status.index][0]}", "reason": describe_errors(status.errors)})
            on_progress(publisher.totals.read, (bytes_before + done) / total_bytes)
        bytes_before += path.stat().st_size
    return first


def _publish_in_child(settings: Settings, bootstrap: str, files: list[Path], to_parent, to_child,
                      segment_lines: int | None, suppressed: frozenset[str] = frozenset()) -> None:
    """Child process entry (spawned): publish the files, report progress and totals on `to_parent`.

    It produces into the topics named by the parent's ("go", topic prefix) messages; with
    `segment_lines` it reports ("segment", offsets) after each segment and waits for the next go."""
    def offsets(publisher: Publisher) -> list:
        return [(tp.topic, tp.partition, end) for tp, end in publisher.tracker.ends.items()]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        producer = await start_producer(bootstrap)
        try:
            prefix = (await loop.run_in_executor(None, to_child.get))[1]
            publisher = Publisher(Validator(settings), producer, Topics(prefix), max_event_bytes=settings.max_event_bytes,
                                  suppression=Suppression(suppressed, secret=settings.identity_secret))

            async def next_segment() -> None:
                to_parent.put(("segment", offsets(publisher)))
                publisher.topics = Topics((await loop.run_in_executor(None, to_child.get))[1])
                publisher.tracker = OffsetTracker()
                # forget the deleted topics: a metadata request naming them would create them again
                await producer.client.set_topics([publisher.topics.raw, publisher.topics.deadletter])

            first = await publish_files(publisher, files, lambda read, frac: to_parent.put(("progress", read, frac)),
                                        segment_lines=segment_lines, next_segment=next_segment)
            t = publisher.totals
            to_parent.put(("done", offsets(publisher), {
                "read": t.read, "published": t.published, "rejected": t.rejected, "reasons": dict(t.reasons),
                "first": first, "metric_counts": list(publisher.metric_counts.items()),
                "suppressed": publisher.suppression.dropped,
            }))
        finally:
            await producer.stop()
    try:
        asyncio.run(main())
    except BaseException as exc:  # reported to the parent, which fails the replay with one line
        to_parent.put(("error", f"{type(exc).__name__}: {exc}"))


class _Published:
    """What the publishing side produced: the same fields whether it ran here or in a child
    (whose offsets were drained segment by segment, so it hands over no tracker)."""

    def __init__(self, read: int, published: int, rejected: int, reasons: dict, first: list[dict],
                 tracker: OffsetTracker | None = None, suppressed: int = 0):
        self.read, self.published, self.rejected, self.suppressed = read, published, rejected, suppressed
        self.reasons, self.first, self.tracker = reasons, first, tracker


async def _publish_here(settings: Settings, pipe: Pipeline, files: list[Path], progress: Progress) -> _Published:
    publisher = Publisher(Validator(settings), pipe.producer, pipe.topics, max_event_bytes=settings.max_event_bytes,
                          suppression=Suppression(load_digests(pipe.client), secret=settings.identity_secret))
    first = await publish_files(publisher, files, lambda read, frac: progress.update(read, frac * 0.9))
    t = publisher.totals
    return _Published(t.read, t.published, t.rejected, dict(t.reasons), first, publisher.tracker,
                      publisher.suppression.dropped)


async def _drain(pipe: Pipeline, produced: OffsetTracker, stored: Counter, duplicates: Counter, suppressed: Counter,
                 progress: Progress | None = None, read: int = 0, published: int = 0) -> None:
    """Wait until the stages have everything produced, then add what the sink stored to the
    replay's tallies. With `progress`, the last tenth of the bar follows the writes against the
    `published` events of the whole replay (earlier segments' tallies included)."""
    tick = None
    if progress is not None:
        before = stored.total() + duplicates.total()

        def tick() -> None:
            written = before + pipe.raw_sink.stored.total() + pipe.raw_sink.duplicates.total()
            progress.update(read, min(0.9 + 0.1 * written / max(1, published), 0.999), note="writing to the warehouse")
    await pipe.drain(produced, on_tick=tick)
    stored.update(pipe.raw_sink.stored)
    duplicates.update(pipe.raw_sink.duplicates)
    suppressed["warehouse-sink"] += pipe.raw_sink.suppressed


async def _publish_for_workers(settings: Settings, bootstrap: str, client, files: list[Path],
                               progress: Progress) -> _Published:
    """Against a shared Kafka and warehouse, the `leadflow worker` processes are the pipeline (one
    identity writer): only validate and publish here, then wait, with progress, until the workers'
    consumer groups have committed everything, stage after stage."""
    async with Pipeline(settings, bootstrap, client, single_process=False, stages=()) as pipe:
        published = await _publish_here(settings, pipe, files, progress)

        def tick(stage: str, left: int) -> None:
            progress.update(published.read, 0.95, note=f"waiting for the workers: {stage} has {left:,} to go")
        await wait_for_workers(bootstrap, pipe.topics, published.tracker, on_progress=tick)
    return published


def _tracker(ends: list) -> OffsetTracker:
    tracker = OffsetTracker()
    for topic, partition, end in ends:
        tracker.record(topic, partition, end - 1)
    return tracker


async def _next_report(child, to_parent, pipe: Pipeline, progress: Progress) -> tuple:
    """Relay the child's progress until it reports a finished segment or the end."""
    while True:
        pipe.check_stages()
        try:
            message = to_parent.get_nowait()
        except queue_module.Empty:
            if not child.is_alive() and to_parent.empty():
                raise PipelineError(f"the publishing process ended with code {child.exitcode}") from None
            await asyncio.sleep(0.05)
            continue
        if message[0] == "progress":
            progress.update(message[1], message[2] * 0.9)
        elif message[0] == "error":
            raise PipelineError(f"publishing failed: {message[1]}")
        else:
            return message


async def _replay_with_child(settings: Settings, bootstrap: str, client, files: list[Path], progress: Progress,
                             stored: Counter, duplicates: Counter, suppressed: Counter,
                             segment_lines: int | None) -> _Published:
    """Validation and producing take about a core: on big inputs they run in a child process
    while this process runs the stages, so a replay uses both cores.

    With `segment_lines` (the embedded broker, which keeps every message in memory) the input
    goes through in segments, each on its own topics, deleted once the warehouse has it: the
    broker holds one segment at a time."""
    ctx = multiprocessing.get_context("spawn")  # never fork a process that has the chdb engine open
    to_parent, to_child = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_publish_in_child, args=(settings, bootstrap, files, to_parent, to_child, segment_lines,
                                                        load_digests(client)),
                        daemon=True)
    child.start()
    graph = None
    try:
        for segment in itertools.count():
            topics_of = settings if segment == 0 else \
                settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}.s{segment}"})
            # later segments take over the graph of the one just drained (and have nothing to resume)
            async with Pipeline(topics_of, bootstrap, client, identity_graph=graph, defer_rollups=True) as pipe:
                to_child.put(("go", topics_of.topic_prefix))
                report = await _next_report(child, to_parent, pipe, progress)
                if report[0] == "done":
                    total = report[2]
                    await _drain(pipe, _tracker(report[1]), stored, duplicates, suppressed, progress, total["read"],
                                 total["published"])
                else:  # the child's progress goes on with the next segment
                    await _drain(pipe, _tracker(report[1]), stored, duplicates, suppressed)
                graph = pipe.enrich.graph
            if segment_lines:
                await delete_topics(bootstrap, pipe.topics.all())
            del pipe  # its stages and buffers go before the next segment's are built
            if report[0] == "done":
                break
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    record_ingest_metrics(Counter(dict((tuple(k), n) for k, n in total["metric_counts"])))
    return _Published(total["read"], total["published"], total["rejected"], total["reasons"], total["first"],
                      suppressed=total["suppressed"])


def _catch_up_rollups(settings: Settings, client, progress: Progress, read: int) -> None:
    """The rollups of what a bulk replay changed, once, on the compacted tables; transient warehouse
    errors are retried as a stage retries them (catch_up is a replay: a retry redoes what is pending)."""
    policy = RetryPolicy.from_settings(settings)
    for attempt in Retrying(retry=retry_if_exception(is_transient), reraise=True,
                            wait=wait_random_exponential(multiplier=policy.initial_s, max=policy.max_s),
                            stop=stop_after_delay(policy.give_up_s)):
        with attempt:
            catch_up(client, settings, progress=lambda done, total: progress.update(
                read, 0.999, note=f"rollups: {done:,} of {total:,} entities", force=True))


async def replay(settings: Settings, files: list[Path], *, show_progress: bool = True,
                 child_process_min_bytes: int = CHILD_PROCESS_MIN_BYTES,
                 segment_lines: int | None | str = "auto") -> ReplaySummary:
    """`segment_lines`: "auto" segments on the embedded broker only (settings.replay_segment_lines);
    a number or None forces it (tests)."""
    started = time.monotonic()
    summary = ReplaySummary(files=[str(f) for f in files])
    total_bytes = sum(f.stat().st_size for f in files) or 1
    progress = Progress("replay", total=total_bytes, unit="lines", enabled=show_progress)
    client = warehouse.open_warehouse(settings)
    stored: Counter = Counter()
    duplicates: Counter = Counter()
    suppressed: Counter = Counter()  # events of values `leadflow forget` erased that reached the sink anyway
    bulk = False  # a big input: the rollups are refreshed once at the end (Pipeline defer_rollups)
    with broker_for(settings) as bootstrap:
        if settings.processing_by_workers:
            published = await _publish_for_workers(settings, bootstrap, client, files, progress)
            stored[""] = published.published
            summary.processed_by = "workers"
        elif bulk := total_bytes >= child_process_min_bytes:
            if segment_lines == "auto":
                segment_lines = None if settings.kafka_bootstrap else settings.replay_segment_lines
            published = await _replay_with_child(settings, bootstrap, client, files, progress, stored, duplicates,
                                                 suppressed, segment_lines)
        else:
            async with Pipeline(settings, bootstrap, client) as pipe:
                published = await _publish_here(settings, pipe, files, progress)
                await _drain(pipe, published.tracker, stored, duplicates, suppressed, progress, published.read,
                             published.published)
    if bulk:
        release_free_memory()  # the stages' graph and buffers are gone: before compacting and the catch-up
    # a replay leaves the versioned tables in many parts: merge them once, not on every read
    warehouse.compact(client, stored.total())
    if settings.rollups and bulk:
        _catch_up_rollups(settings, client, progress, published.read)
    summary.read = published.read
    summary.rejected = published.rejected
    summary.first_rejections = published.first
    summary.accepted = stored.total()
    summary.suppressed = published.suppressed + suppressed.total()
    summary.duplicates = duplicates.total()
    summary.accepted_by_type = {} if summary.processed_by == "workers" else dict(sorted(stored.items()))
    summary.top_reasons = Counter(published.reasons).most_common(5)
    summary.seconds = time.monotonic() - started
    progress.finish(note="done")
    return summary
