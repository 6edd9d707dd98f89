"""Transient faults injected into the real warehouse client and the real Kafka producer.

A fault suite (or a test) says which write of which stage fails once:

    from tests.faults_inject import Fault, inject

    with inject(Fault("person_keys", stage="enrich"),          # the 1st insert into person_keys by enrich
                Fault("raw_events", nth=3, after=True),        # the 3rd insert into raw_events: done, then fails
                Fault("events.stored", kind="produce")) as faults:   # the 1st record batch sent to *.events.stored
        ... run the pipeline ...
    assert faults.unfired() == []

* kind "insert": `Client.insert` (clickhouse-connect, every warehouse row write, chdb or a
  server) and `Client.command` statements that start with `INSERT INTO <table>` (the call
  winners are written by INSERT ... SELECT). `target` is the table name, exactly.
* kind "produce": `AIOKafkaProducer.send_batch`; `target` is a suffix of the topic name
  (`events.stored`, `persons.changed`, `events.raw`), so it works under any topic prefix.
* `stage`: only writes made from that stage's code count (enrich, attribution, warehouse-sink,
  deadletter-sink: found from the calling modules, services/enrich, services/attribution,
  services/ingest/sink.py); None counts every caller.
* `nth`: the nth matching write fails (1 = the first); each fault fires once.
* `after`: the write happens, then the call raises, as a process that dies right after a
  statement (the write is in the warehouse, the batch is not committed); otherwise the
  write fails before anything is written.

The raised error is `InjectedFault`, a ConnectionError: stages treat it as any warehouse or
broker error (the runner retries the batch). The patches live on the classes, so every
client and producer of the process sees them, in every thread; they are removed on exit.
"""
from __future__ import annotations

import re
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from leadflow.topics import Stages

_STAGE_MODULES = (
    ("services.enrich", Stages.ENRICH),
    ("services.attribution", Stages.ATTRIBUTION),
    ("services.rollup", Stages.ROLLUP),
    ("services.ingest.sink", None),  # the two sinks: told apart by the calling function below
)
_INSERT_INTO = re.compile(r"\s*INSERT\s+INTO\s+([A-Za-z0-9_.]+)", re.IGNORECASE)


class InjectedFault(ConnectionError):
    """A transient fault put there by a test."""


@dataclass
class Fault:
    target: str
    kind: str = "insert"  # "insert" | "produce"
    stage: str | None = None
    nth: int = 1
    after: bool = False
    seen: int = 0
    fired: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("insert", "produce"):
            raise ValueError(f"kind must be insert or produce: {self.kind!r}")
        if self.nth < 1:
            raise ValueError("nth counts from 1")

    def describe(self) -> str:
        when = "after" if self.after else "before"
        return f"{self.kind} {self.target} #{self.nth} by {self.stage or 'any stage'} ({when} the write)"


def injected(exc: BaseException | None) -> bool:
    """Whether this error is, or was caused by, an injected fault (the warehouse client wraps it)."""
    while exc is not None:
        if isinstance(exc, InjectedFault):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def caller_stage() -> str | None:
    """The stage whose code is on the calling stack (innermost first), if any."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        for prefix, stage in _STAGE_MODULES:
            if module == prefix or module.startswith(prefix + "."):
                if stage is not None:
                    return stage
                self_ = frame.f_locals.get("self")
                return getattr(self_, "name", None) or Stages.WAREHOUSE_SINK
        frame = frame.f_back
    return None


class Faults:
    """The armed faults of one `inject` block."""

    def __init__(self, faults: tuple[Fault, ...]):
        self.faults = list(faults)
        self.lock = threading.Lock()
        self.log: list[str] = []  # what fired, in order

    def match(self, kind: str, target: str) -> Fault | None:
        """Count this write against the faults it matches; the fault that fires now, if one does."""
        stage = None
        firing = None
        with self.lock:
            for fault in self.faults:
                if fault.kind != kind or fault.fired:
                    continue
                if kind == "insert" and fault.target != target:
                    continue
                if kind == "produce" and not target.endswith(fault.target):
                    continue
                if fault.stage is not None:
                    stage = stage or caller_stage()
                    if stage != fault.stage:
                        continue
                fault.seen += 1
                if fault.seen == fault.nth and firing is None:
                    fault.fired = True
                    firing = fault
                    self.log.append(fault.describe())
        return firing

    def unfired(self) -> list[str]:
        return [f.describe() for f in self.faults if not f.fired]


def _raise(fault: Fault) -> None:
    raise InjectedFault(f"injected: {fault.describe()}")


@contextmanager
def inject(*faults: Fault) -> Iterator[Faults]:
    """Arm these faults for the duration of the block (see the module docstring)."""
    armed = Faults(faults)
    originals: list[tuple[type, str, object]] = []

    def patch(cls: type, name: str, make) -> None:
        original = cls.__dict__[name]
        originals.append((cls, name, original))
        setattr(cls, name, make(original))

    def around_insert(original):
        def patched_insert(self, table=None, *args, **kwargs):
            return _around(armed.match("insert", table or kwargs.get("table") or ""),
                           lambda: original(self, table, *args, **kwargs))
        return patched_insert

    def around_command(original):
        def patched_command(self, cmd, *args, **kwargs):
            m = _INSERT_INTO.match(cmd) if isinstance(cmd, str) else None
            return _around(armed.match("insert", m.group(1)) if m else None,
                           lambda: original(self, cmd, *args, **kwargs))
        return patched_command

    def around_send_batch(original):
        async def patched_send_batch(self, batch, topic, *args, **kwargs):
            fault = armed.match("produce", topic)
            if fault is not None and not fault.after:
                _raise(fault)
            result = await original(self, batch, topic, *args, **kwargs)
            if fault is not None:
                await result  # the broker has the batch
                _raise(fault)
            return result
        return patched_send_batch

    for cls in _client_classes():  # a subclass may override insert or command (the chdb and HTTP clients do)
        if "insert" in cls.__dict__:
            patch(cls, "insert", around_insert)
        if "command" in cls.__dict__:
            patch(cls, "command", around_command)
    patch(AIOKafkaProducer, "send_batch", around_send_batch)
    try:
        yield armed
    finally:
        for cls, name, original in reversed(originals):
            setattr(cls, name, original)


def _around(fault: Fault | None, call):
    if fault is not None and not fault.after:
        _raise(fault)
    result = call()
    if fault is not None:
        _raise(fault)
    return result


def _client_classes() -> list[type]:
    found, todo = [], [Client]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("clickhouse_connect.driver") and "async" not in cls.__module__:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


_SPEC = re.compile(r"^(insert|produce):([A-Za-z0-9_.-]+)(?:@([a-z-]+))?(?:#(\d+))?(\+after)?$")


def parse_fault(spec: str) -> Fault:
    """`KIND:TARGET[@STAGE][#N][+after]`, e.g. `insert:person_keys@enrich#2+after`,
    `produce:events.stored@warehouse-sink`."""
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"not a fault (KIND:TARGET[@STAGE][#N][+after]): {spec!r}")
    kind, target, stage, nth, after = m.groups()
    return Fault(target, kind=kind, stage=stage, nth=int(nth or 1), after=bool(after))


def main(argv: list[str]) -> int:
    """`python -m tests.faults_inject FAULT... -- LEADFLOW ARGS...`: run a leadflow command (a
    worker, a replay) in this process with these faults armed (for fault suites that run
    the pipeline in subprocesses)."""
    if "--" not in argv:
        print("usage: python -m tests.faults_inject FAULT... -- leadflow-args...", file=sys.stderr)
        return 2
    at = argv.index("--")
    from leadflow.cli import main as leadflow_main

    with inject(*(parse_fault(spec) for spec in argv[:at])) as armed:
        code = leadflow_main(argv[at + 1:])
    for line in armed.log:
        print(f"fault fired: {line}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
