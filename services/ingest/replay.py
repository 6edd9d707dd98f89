"""`leadflow replay FILE...`: JSON Lines through the same validation and topics
as live traffic, then wait until the warehouse has all of it."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from leadflow import warehouse
from leadflow.broker import broker_for
from leadflow.config import Settings
from leadflow.pipeline import Pipeline
from leadflow.progress import Progress
from services.ingest.publish import Publisher
from services.ingest.validate import InputOccurrences, Validator

CHUNK_LINES = 20_000


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


async def replay(settings: Settings, files: list[Path], *, show_progress: bool = True) -> ReplaySummary:
    started = time.monotonic()
    summary = ReplaySummary(files=[str(f) for f in files])
    total_bytes = sum(f.stat().st_size for f in files) or 1
    progress = Progress("replay", total=total_bytes, unit="lines", enabled=show_progress)
    client = warehouse.open_warehouse(settings)
    with broker_for(settings) as bootstrap:
        async with Pipeline(settings, bootstrap, client) as pipe:
            publisher = Publisher(Validator(settings), pipe.producer, pipe.topics,
                                  max_event_bytes=settings.max_event_bytes)
            bytes_before = 0
            for path in files:
                origin = str(path.resolve())
                occurrences = InputOccurrences()
                for chunk, done in iter_chunks(path):
                    statuses = await publisher.publish(
                        [line for _, line in chunk], origin=origin, default_source=f"replay:{path.name}",
                        occurrences=occurrences,
                    )
                    for status in statuses:
                        if status.status == "rejected" and len(summary.first_rejections) < 5:
                            reason = "; ".join(f"{p}: {m}" if p else m for p, m in status.errors)
                            summary.first_rejections.append(
                                {"origin": f"{path.name}:{chunk[status.index][0]}", "reason": reason})
                    progress.update(publisher.totals.read, (bytes_before + done) / total_bytes * 0.9)
                bytes_before += path.stat().st_size

            def tick() -> None:
                stored = pipe.raw_sink.stored.total() + pipe.raw_sink.duplicates.total()
                frac = 0.9 + 0.1 * stored / max(1, publisher.totals.published)
                progress.update(publisher.totals.read, min(frac, 0.999), note="writing to the warehouse")

            await pipe.drain(publisher.tracker, on_tick=tick)
            summary.read = publisher.totals.read
            summary.rejected = publisher.totals.rejected
            summary.accepted = pipe.raw_sink.stored.total()
            summary.duplicates = pipe.raw_sink.duplicates.total()
            summary.accepted_by_type = dict(sorted(pipe.raw_sink.stored.items()))
            summary.top_reasons = Counter(publisher.totals.reasons).most_common(5)
    summary.seconds = time.monotonic() - started
    progress.finish(note="done")
    return summary
