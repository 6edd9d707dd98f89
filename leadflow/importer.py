"""`leadflow import ADAPTER FILE [--timezone TZ]`: a vendor's export through a file adapter,
then through the whole pipeline like `leadflow replay`, until the warehouse has all of it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from leadflow import warehouse
from leadflow.broker import broker_for
from leadflow.config import Settings, SourceSettings
from leadflow.pipeline import Pipeline
from leadflow.progress import Progress
from services.ingest.publish import Publisher
from services.ingest.sources.base import FileOptions, SourceContext
from services.ingest.sources.deliver import deliver
from services.ingest.sources.registry import FILE_ADAPTERS
from services.ingest.validate import Validator


@dataclass
class ImportSummary:
    adapter: str
    file: str
    mapped: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    ignored: int = 0
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"adapter": self.adapter, "file": self.file, "mapped": self.mapped, "accepted": self.accepted,
                "duplicates": self.duplicates, "dead_letters": self.dead_letters, "ignored": self.ignored,
                "seconds": round(self.seconds, 3), "first_reasons": self.reasons[:5]}

    def render(self) -> str:
        lines = [f"imported {self.file} with {self.adapter} in {self.seconds:.1f}s",
                 f"  events       {self.mapped:>8,}",
                 f"  accepted     {self.accepted:>8,}",
                 f"  duplicates   {self.duplicates:>8,}",
                 f"  dead letters {self.dead_letters:>8,}  (`leadflow deadletters`)",
                 f"  ignored      {self.ignored:>8,}  (total rows)"]
        lines += [f"    {reason}" for reason in self.reasons[:5]]
        return "\n".join(lines)


async def import_file(settings: Settings, adapter_name: str, path: Path, tz: str | None = None, *,
                      show_progress: bool = False) -> ImportSummary:
    started = time.monotonic()
    progress = Progress(f"import {adapter_name}", total=1, unit="events", enabled=show_progress)
    adapter = FILE_ADAPTERS[adapter_name]
    ctx = SourceContext(adapter_name, settings.sources.get(adapter_name, SourceSettings()), settings,
                        datetime.now(timezone.utc))
    options = FileOptions(reported_at=datetime.fromtimestamp(path.stat().st_mtime, timezone.utc), timezone=tz)
    progress.update(0, note=f"mapping {path.name}", force=True)
    mapping = adapter.map_file(path.read_bytes(), ctx, options)
    summary = ImportSummary(adapter_name, str(path), mapped=len(mapping.events), ignored=len(mapping.ignored))
    total = max(1, summary.mapped)
    client = warehouse.open_warehouse(settings)
    with broker_for(settings) as bootstrap:
        async with Pipeline(settings, bootstrap, client) as pipe:
            publisher = Publisher(Validator(settings), pipe.producer, pipe.topics,
                                  max_event_bytes=settings.max_event_bytes)
            result = await deliver(publisher, mapping, source=ctx.source, origin=str(path.resolve()),
                                   on_progress=lambda done: progress.update(done, 0.8 * done / total))

            def written() -> None:
                stored = pipe.raw_sink.stored.total() + pipe.raw_sink.duplicates.total()
                progress.update(summary.mapped, 0.8 + 0.2 * min(stored / total, 0.99), note="writing to the warehouse")

            await pipe.drain(publisher.tracker, on_tick=written)
            summary.accepted = pipe.raw_sink.stored.total()
            summary.duplicates = pipe.raw_sink.duplicates.total()
    warehouse.compact(client, summary.accepted)
    summary.dead_letters = len(result.dead)
    summary.reasons = [d.reason for d in result.dead]
    summary.seconds = time.monotonic() - started
    progress.finish(note="done")
    return summary
