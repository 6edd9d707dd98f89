"""`leadflow replay FILE...`: JSON Lines through the same validation and topics
as live traffic, then wait until the warehouse has all of it."""
from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from leadflow import warehouse
from leadflow.broker import broker_for
from leadflow.config import Settings
from leadflow.pipeline import Pipeline, PipelineError
from leadflow.progress import Progress
from leadflow.stream import OffsetTracker, start_producer
from leadflow.topics import topics_for
from services.ingest.publish import Publisher, record_ingest_metrics
from services.ingest.validate import InputOccurrences, Validator, describe_errors

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
    seconds: float = 0.0
    accepted_by_type: dict[str, int] = field(default_factory=dict)
    first_rejections: list[dict] = field(default_factory=list)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "files": self.files, "read": self.read, "accepted": self.accepted, "duplicates": self.duplicates,
            "rejected": self.rejected, "seconds": round(self.seconds, 3),
            "events_per_second": round(self.read / self.seconds, 1) if self.seconds else None,
            "accepted_by_type": self.accepted_by_type,
            "first_rejections": self.first_rejections,
            "top_reasons": [{"reason": r, "count": n} for r, n in self.top_reasons],
        }

    def render(self) -> str:
        lines = [
            f"replayed {len(self.files)} file(s) in {self.seconds:.1f}s",
            f"  read        {self.read:>10,}",
            f"  accepted    {self.accepted:>10,}",
            f"  duplicates  {self.duplicates:>10,}",
            f"  rejected    {self.rejected:>10,}  (dead letters: `leadflow deadletters`)",
        ]
        for rej in self.first_rejections:
            lines.append(f"    {rej['origin']}: {rej['reason']}")
        return "\n".join(lines)


def iter_chunks(path: Path) -> Iterator[tuple[list[tuple[int, bytes]], int]]:
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
            if len(chunk) >= CHUNK_LINES:
                yield chunk, done
                chunk = []
    if chunk:
        yield chunk, done


async def publish_files(publisher: Publisher, files: list[Path],
                        on_progress: Callable[[int, float], None]) -> list[dict]:
    """Validate and produce every line of the files. Returns the first few rejections (file:line)."""
    first: list[dict] = []
    total_bytes = sum(f.stat().st_size for f in files) or 1
    bytes_before = 0
    for path in files:
        origin = str(path.resolve())
        occurrences = InputOccurrences()
        for chunk, done in iter_chunks(path):
            statuses = await publisher.publish([line for _, line in chunk], origin=origin,
                                               default_source=f"replay:{path.name}", occurrences=occurrences)
            for status in statuses:
                if status.status == "rejected" and len(first) < 5:
                    first.append({"origin": f"{path.name}:{chunk[status.index][0]}", "reason": describe_errors(status.errors)})
            on_progress(publisher.totals.read, (bytes_before + done) / total_bytes)
        bytes_before += path.stat().st_size
    return first


def _publish_in_child(settings: Settings, bootstrap: str, files: list[Path], queue) -> None:
    """Child process entry (spawned): publish the files, report progress and totals on `queue`."""
    async def main() -> None:
        producer = await start_producer(bootstrap)
        try:
            publisher = Publisher(Validator(settings), producer, topics_for(settings),
                                  max_event_bytes=settings.max_event_bytes)
            first = await publish_files(publisher, files, lambda read, frac: queue.put(("progress", read, frac)))
            t = publisher.totals
            queue.put(("done", {
                "read": t.read, "published": t.published, "rejected": t.rejected, "reasons": dict(t.reasons),
                "first": first, "ends": [(tp.topic, tp.partition, end) for tp, end in publisher.tracker.ends.items()],
                "metric_counts": list(publisher.metric_counts.items()),
            }))
        finally:
            await producer.stop()
    try:
        asyncio.run(main())
    except BaseException as exc:  # reported to the parent, which fails the replay with one line
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


class _Published:
    """What the publishing side produced: the same fields whether it ran here or in a child."""

    def __init__(self, read: int, published: int, rejected: int, reasons: dict, first: list[dict],
                 tracker: OffsetTracker):
        self.read, self.published, self.rejected = read, published, rejected
        self.reasons, self.first, self.tracker = reasons, first, tracker


async def _publish_here(settings: Settings, pipe: Pipeline, files: list[Path], progress: Progress) -> _Published:
    publisher = Publisher(Validator(settings), pipe.producer, pipe.topics, max_event_bytes=settings.max_event_bytes)
    first = await publish_files(publisher, files, lambda read, frac: progress.update(read, frac * 0.9))
    t = publisher.totals
    return _Published(t.read, t.published, t.rejected, dict(t.reasons), first, publisher.tracker)


async def _publish_in_child_process(settings: Settings, bootstrap: str, pipe: Pipeline, files: list[Path],
                                    progress: Progress) -> _Published:
    """Validation and producing take about a core: on big inputs they run in a child process
    while this process runs the stages, so a replay uses both cores."""
    ctx = multiprocessing.get_context("spawn")  # never fork a process that has the chdb engine open
    queue = ctx.Queue()
    child = ctx.Process(target=_publish_in_child, args=(settings, bootstrap, files, queue), daemon=True)
    child.start()
    try:
        while True:
            pipe.check_stages()
            try:
                message = queue.get_nowait()
            except queue_module.Empty:
                if not child.is_alive() and queue.empty():
                    raise PipelineError(f"the publishing process ended with code {child.exitcode}") from None
                await asyncio.sleep(0.05)
                continue
            if message[0] == "progress":
                progress.update(message[1], message[2] * 0.9)
            elif message[0] == "error":
                raise PipelineError(f"publishing failed: {message[1]}")
            else:
                done = message[1]
                break
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    tracker = OffsetTracker()
    for topic, partition, end in done["ends"]:
        tracker.record(topic, partition, end - 1)
    record_ingest_metrics(Counter(dict((tuple(k), n) for k, n in done["metric_counts"])))
    return _Published(done["read"], done["published"], done["rejected"], done["reasons"], done["first"], tracker)


async def replay(settings: Settings, files: list[Path], *, show_progress: bool = True,
                 child_process_min_bytes: int = CHILD_PROCESS_MIN_BYTES) -> ReplaySummary:
    started = time.monotonic()
    summary = ReplaySummary(files=[str(f) for f in files])
    total_bytes = sum(f.stat().st_size for f in files) or 1
    progress = Progress("replay", total=total_bytes, unit="lines", enabled=show_progress)
    client = warehouse.open_warehouse(settings)
    with broker_for(settings) as bootstrap:
        async with Pipeline(settings, bootstrap, client) as pipe:
            if total_bytes >= child_process_min_bytes:
                published = await _publish_in_child_process(settings, bootstrap, pipe, files, progress)
            else:
                published = await _publish_here(settings, pipe, files, progress)

            def tick() -> None:
                stored = pipe.raw_sink.stored.total() + pipe.raw_sink.duplicates.total()
                frac = 0.9 + 0.1 * stored / max(1, published.published)
                progress.update(published.read, min(frac, 0.999), note="writing to the warehouse")

            await pipe.drain(published.tracker, on_tick=tick)
            summary.read = published.read
            summary.rejected = published.rejected
            summary.first_rejections = published.first
            summary.accepted = pipe.raw_sink.stored.total()
            summary.duplicates = pipe.raw_sink.duplicates.total()
            summary.accepted_by_type = dict(sorted(pipe.raw_sink.stored.items()))
            summary.top_reasons = Counter(published.reasons).most_common(5)
    summary.seconds = time.monotonic() - started
    progress.finish(note="done")
    return summary
