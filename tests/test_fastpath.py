"""The validation fast path (schemas/fastpath.py) against the full pydantic path: whatever it
answers is exactly the full path's dump (same keys, same order, same values), and it answers
for the plain valid events ingest mostly sees. Anything else it leaves to the full path."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from unittest.mock import patch

import orjson
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from schemas import ContractContext, ContractError, validate_event
from schemas.fastpath import _PLANS, dump_valid
from schemas.events import EVENT_MODELS
from leadflow.config import Settings
from services.ingest import validate
from services.ingest.validate import InputOccurrences, Validator

ROOT = Path(__file__).resolve().parents[1]
CTX = ContractContext(reporting_currency="USD", rates={"EUR": "1.0825", "RUB": "0.011"},
                      received_at=dt.datetime(2026, 6, 10, 12, 0, tzinfo=dt.timezone.utc))


def full_dump(obj):
    try:
        return validate_event(obj, CTX).model_dump(mode="json", exclude_none=True)
    except (ContractError, ValueError, TypeError, ArithmeticError, RecursionError):
        return None


def same(fast, full) -> bool:
    # json.dumps keeps the key order and writes lone surrogates, so the comparison is exact
    return json.dumps(fast) == json.dumps(full)


def sample_events() -> list[dict]:
    out = []
    for line in (ROOT / "leadflow" / "samples" / "sample.jsonl").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


SAMPLES = sample_events()
VALID = [e for e in SAMPLES if full_dump(e) is not None]
VALIDATOR = Validator(Settings(rates={"EUR": 1.0825, "RUB": 0.011}))


def test_every_event_type_has_a_fast_path():
    assert sorted(_PLANS) == sorted(EVENT_MODELS)


def test_samples_take_the_fast_path_with_the_full_paths_answer():
    assert len(VALID) >= len(EVENT_MODELS)
    for event in VALID:
        fast = dump_valid(event, CTX)
        assert fast is not None, event
        assert same(fast, full_dump(event)), event
    for event in SAMPLES:
        if full_dump(event) is None:
            assert dump_valid(event, CTX) is None, event


def test_money_in_another_currency_is_converted_as_the_model_does():
    event = next(e for e in VALID if e["type"] == "deal_won")
    for value, currency in ((1899.0, "eur"), ("0.10", "RUB"), (7, "EUR"), ("1e3", "USD"), ("12.3456789", "EUR")):
        variant = {**event, "revenue": value, "currency": currency}
        fast = dump_valid(variant, CTX)
        assert fast is not None and same(fast, full_dump(variant)), variant
    assert dump_valid({**event, "currency": "GBP"}, CTX) is None  # no rate: the full path explains


# values that are nearly right, or right in an unusual spelling, for the fields the events have
TRICKY = st.sampled_from([
    None, True, False, 0, -1, 1, 5, 11, 2**70, 1.5, float("inf"), "", " ", "x", "x" * 129, "x" * 65, [], {}, ["a"],
    {"a": 1}, {"a": "b"}, "2026-05-01T10:00:00Z", "2026-05-01T10:00:00.1Z", "2026-05-01T10:00:00.123456Z", "2026-05-01T10:00:00.5Z", "2026-05-01T10:00:00.050Z",
    "2026-05-01T10:00:00.000Z", "2026-05-01T23:59:60Z", "2026-05-01T24:00:00Z", "2026-05-01 10:00:00Z",
    "2026-05-01t10:00:00z", "2026-05-01T10:00:00", "2026-05-01T13:00:00+03:00", "2026-06-11T12:00:00.001Z",
    "2026-06-11T11:59:59.999Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-02-30T00:00:00Z",
    "2026-05-01", "2026-5-1", "USD", "usd", "EUR", "XXX", "12.50", "-3", "1e400", "NaN", "1E+2", "0.000",
    "search_ads", "email", "chat", "operator", "visitor", "bot", "answered", "missed", "nps", "csat",
    "inbound", " Anna@Example.org ", "anna@", "+7 (916) 123-45-67", "0079161234567", "+0123", "12ab",
    "\ud800", "caf\xe9",
])


@st.composite
def variants(draw):
    event = dict(draw(st.sampled_from(VALID)))
    keys = sorted(event) + ["identity", "answered_at", "operator_id", "impressions", "unknown", "extra"]
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        if draw(st.booleans()) and key in event and key != "type":
            del event[key]
        else:
            event[key] = draw(TRICKY)
    if draw(st.booleans()):
        identity = event.get("identity")
        identity = dict(identity) if isinstance(identity, dict) else {}
        for key in draw(st.lists(st.sampled_from(["visitor_id", "email", "phone", "crm_contact_id", "other"]),
                                 max_size=2)):
            identity[key] = draw(TRICKY)
        event["identity"] = identity
    return event


@hsettings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants())
def test_the_fast_path_answers_only_what_the_full_path_answers(event):
    fast = dump_valid(event, CTX)
    if fast is not None:
        try:
            orjson.dumps(fast)
        except TypeError:  # a lone surrogate, or an integer past 64 bits: the validator encodes and falls back
            pass
        else:
            assert same(fast, full_dump(event))
    # and what ingest makes of it, accepted event or dead letter, is what it made without the fast path
    now = CTX.received_at
    with_fast = VALIDATOR.check_value(event, b"raw", origin="http", default_source="p", received_at=now,
                                      occurrences=InputOccurrences())
    with patch.object(validate, "dump_valid", lambda obj, ctx: None):
        without = VALIDATOR.check_value(event, b"raw", origin="http", default_source="p", received_at=now,
                                        occurrences=InputOccurrences())
    assert with_fast == without


def test_declined_events_leave_nothing_behind():
    # each decline raises inside a check; a shared exception instance would keep every raise's
    # frames (and the events they hold) alive through its ever longer __traceback__
    import gc
    import tracemalloc
    event = next(e for e in VALID if e["type"] == "deal_won")
    declined = [{**event, "event_id": f"d-{i}", "currency": "GBP"} for i in range(5000)]
    assert dump_valid(declined[0], CTX) is None
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for obj in declined:
            assert dump_valid(obj, CTX) is None
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept after 5,000 declined events"
