"""Progress for long work on stderr: counts, rate and ETA.

On a terminal the line redraws in place; elsewhere (CI, pipes) a plain line is
printed every few seconds, so logs stay readable.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    def __init__(self, label: str, total: float | None = None, unit: str = "events",
                 stream: TextIO | None = None, enabled: bool = True, interval_s: float | None = None):
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.interval_s = interval_s if interval_s is not None else (0.2 if self.tty else 5.0)
        self.started = time.monotonic()
        self._last = 0.0
        self.count = 0
        self.done_fraction = 0.0
        self.note = ""

    def update(self, count: int, done_fraction: float | None = None, note: str = "", force: bool = False) -> None:
        self.count = count
        if done_fraction is not None:
            self.done_fraction = done_fraction
        self.note = note
        now = time.monotonic()
        if self.enabled and (force or now - self._last >= self.interval_s):
            self._last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (now or time.monotonic()) - self.started)
        rate = self.count / elapsed
        parts = [f"{self.label}: {self.count:,} {self.unit}", f"{rate:,.0f}/s"]
        if self.done_fraction > 0:
            parts.append(f"{self.done_fraction:.0%}")
            if self.done_fraction < 1:
                parts.append(f"ETA {_fmt_eta(elapsed * (1 - self.done_fraction) / self.done_fraction)}")
        if self.note:
            parts.append(self.note)
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(now))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        self.update(self.count, 1.0 if self.total is not None else None, note, force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
