"""Which errors the stage runner retries (transient) and which it dead-letters (permanent), on
errors raised by the real chdb engine, a real HTTP client with no server behind it, and the broker
client's own error types."""
from __future__ import annotations

import orjson
import pytest
from aiokafka.errors import CommitFailedError, KafkaConnectionError, RecordTooLargeError

from leadflow import warehouse
from leadflow.lease import LeaseLost
from leadflow.stream import is_transient


def _error(fn) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_warehouse_errors(client):
    client.command("CREATE TABLE typed (n Int64) ENGINE = MergeTree ORDER BY n")
    bad_value = _error(lambda: warehouse.insert_rows(client, "typed", ["n"], [("abc",)]))
    bad_cast = _error(lambda: client.query("SELECT toInt64('zz')"))
    bad_date = _error(lambda: client.query("SELECT parseDateTimeBestEffort('not a date')"))
    missing_table = _error(lambda: client.query("SELECT * FROM gone"))
    no_server = _error(lambda: warehouse._new_client("http://127.0.0.1:1", "x", create_database=False)
                       .query("SELECT 1"))
    assert [is_transient(e) for e in (bad_value, bad_cast, bad_date)] == [False, False, False]  # the data
    assert is_transient(missing_table)  # e.g. mid-migration: it may be back
    assert is_transient(no_server)


def test_broker_and_record_errors():
    assert is_transient(CommitFailedError("rebalanced"))
    assert is_transient(KafkaConnectionError("down"))
    assert is_transient(TimeoutError())
    assert not is_transient(RecordTooLargeError())
    assert not is_transient(_error(lambda: orjson.loads(b"{not json")))
    assert not is_transient(KeyError("type"))
    assert not is_transient(LeaseLost("fenced"))

