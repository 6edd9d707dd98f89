"""Peak resident memory of a process tree, per process role, sampled from /proc.

`ru_maxrss` of a waited child covers its largest descendant too, which would
report the embedded broker (it holds every message of a replay in memory) as
the pipeline's peak. The sampler tells the pipeline process, the publishing
child and the broker apart.
"""
from __future__ import annotations

import os
import threading


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (empty once it is gone)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "pipeline"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return "other"
    if b"tansu" in cmdline:
        return "broker"
    if b"resource_tracker" in cmdline:
        return "other"
    return "publisher" if b"spawn_main" in cmdline else "other"


class TreeSampler:
    """Samples every `interval` seconds until stopped; `peaks` maps role -> MiB."""

    def __init__(self, root_pid: int, interval: float = 0.25):
        self.root = root_pid
        self.interval = interval
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            stack, seen = [self.root], {}
            while stack:
                pid = stack.pop()
                role = _role(pid, self.root)
                seen[role] = seen.get(role, 0.0) + _rss_mb(pid)
                stack += child_pids(pid)
            for role, mb in seen.items():
                self.peaks[role] = max(self.peaks.get(role, 0.0), mb)
            self._stop.wait(self.interval)
