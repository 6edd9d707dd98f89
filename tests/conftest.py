"""Fixtures: one real Tansu broker per test session, one real chdb engine per
process, and per test its own database and topic prefix (so tests never see
each other's data).

A test marked `over_http` runs twice: on the embedded engine (`chdb://`) and on a
ClickHouse HTTP interface (tests/chdb_http_server.py, one server process per
session), which takes leadflow's server code path (an `http://` DSN, a session
per stage)."""
from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import pytest

from leadflow import warehouse
from leadflow.broker import EmbeddedBroker
from leadflow.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "contract"  # the contract, kept in the repo
_counter = itertools.count()
TEST_IDENTITY_SECRET = "leadflow-test-secret-0f3c9a"


@pytest.fixture(scope="session")
def broker():
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("chdb")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a longer variant of a test `make test` runs in a shorter form; "
                                       "`make faults` runs these (pytest -m slow)")
    config.addinivalue_line("markers", "alone: measures a server's memory against a bound; `make test` runs these "
                                       "after the others, with no other test running beside them")
    config.addinivalue_line("markers", "over_http: run on the embedded engine and again over ClickHouse's HTTP "
                                       "interface (tests/chdb_http_server.py)")


FAULT_LINE = "fault_line"  # the user property of tests/faults/conftest.py's fault_lines
_fault_lines: list[str] = []  # in the process that prints the summary (xdist's controller, or the only one)


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        _fault_lines.extend(v for k, v in report.user_properties if k == FAULT_LINE)


def pytest_terminal_summary(terminalreporter):
    if _fault_lines:
        terminalreporter.section("fault suite (short)")
        for line in _fault_lines:
            terminalreporter.write_line(line)


def pytest_generate_tests(metafunc):
    if "warehouse_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker("over_http"):
        metafunc.parametrize("warehouse_kind", ["chdb", "http"])


@pytest.fixture
def warehouse_kind() -> str:
    """The embedded engine; tests marked over_http are parametrized with "http" too."""
    return "chdb"


@pytest.fixture(scope="session")
def chdb_http(tmp_path_factory):
    """A ClickHouse HTTP interface on the real engine, in a process of its own."""
    from tests.chdb_http_server import ChdbHttpServer

    root = tmp_path_factory.mktemp("chdb-http")
    with ChdbHttpServer(root / "data", log=root / "server.log") as server:
        yield server


@pytest.fixture
def settings(broker, chdb_dir, monkeypatch, warehouse_kind, request):
    """Settings on the shared broker and engine, isolated by database and topic prefix."""
    for key in list(os.environ):
        if key.startswith("LEADFLOW_"):
            monkeypatch.delenv(key)
    # commands a test runs in this process or a child (with LEADFLOW_KAFKA_BOOTSTRAP set) use the
    # same secret: the development one is refused when a broker is configured
    monkeypatch.setenv("LEADFLOW_IDENTITY_SECRET", TEST_IDENTITY_SECRET)
    n = next(_counter)
    tag = uuid.uuid4().hex[:6]
    url = request.getfixturevalue("chdb_http").url if warehouse_kind == "http" else None
    return load_settings(
        kafka_bootstrap=broker.bootstrap, warehouse_dir=chdb_dir, clickhouse_database=f"t{n}_{tag}",
        topic_prefix=f"t{n}-{tag}", topic_partitions=3, batch_max_seconds=0.1, clickhouse_url=url,
        processing="here" if url else None,  # a server warehouse and a broker: no workers in these tests
        identity_secret=TEST_IDENTITY_SECRET,  # not the development one: a broker is configured
    )


@pytest.fixture
def client(settings):
    c = warehouse.connect(settings)
    warehouse.migrate(c)
    return c


@pytest.fixture
def contract_dir() -> Path:
    return CONTRACT


@pytest.fixture
def replay_events(settings, tmp_path):
    """Replay a list of event dicts (or raw lines) through the whole pipeline; returns the summary."""
    import asyncio
    import json

    from leadflow.replay import replay

    counter = itertools.count()

    def _run(events, name: str | None = None):
        path = tmp_path / (name or f"events-{next(counter)}.jsonl")
        lines = [e if isinstance(e, (bytes, str)) else json.dumps(e) for e in events]
        path.write_text("\n".join(x.decode() if isinstance(x, bytes) else x for x in lines) + "\n")
        return asyncio.run(replay(settings, [path], show_progress=False))

    return _run
