"""Fixtures: one real Tansu broker per test session, one real chdb engine per
process, and per test its own database and topic prefix (so tests never see
each other's data)."""
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


@pytest.fixture
def settings(broker, chdb_dir, monkeypatch):
    """Settings on the shared broker and engine, isolated by database and topic prefix."""
    for key in list(os.environ):
        if key.startswith("LEADFLOW_"):
            monkeypatch.delenv(key)
    # commands a test runs in this process or a child (with LEADFLOW_KAFKA_BOOTSTRAP set) use the
    # same secret: the development one is refused when a broker is configured
    monkeypatch.setenv("LEADFLOW_IDENTITY_SECRET", TEST_IDENTITY_SECRET)
    n = next(_counter)
    tag = uuid.uuid4().hex[:6]
    return load_settings(
        kafka_bootstrap=broker.bootstrap, warehouse_dir=chdb_dir, clickhouse_database=f"t{n}_{tag}",
        topic_prefix=f"t{n}-{tag}", topic_partitions=3, batch_max_seconds=0.1,
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

    from services.ingest.replay import replay

    counter = itertools.count()

    def _run(events, name: str | None = None):
        path = tmp_path / (name or f"events-{next(counter)}.jsonl")
        lines = [e if isinstance(e, (bytes, str)) else json.dumps(e) for e in events]
        path.write_text("\n".join(x.decode() if isinstance(x, bytes) else x for x in lines) + "\n")
        return asyncio.run(replay(settings, [path], show_progress=False))

    return _run
