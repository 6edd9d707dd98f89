"""Rule-by-rule tests of the event contract (events.md v1) as implemented in `schemas`.

Every rule has a valid and an invalid case; invalid cases assert the exact
error path(s) reported by `validate_event`.
"""
import copy
import dataclasses
import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import (
    CONVERSATION_CHANNELS,
    EVENT_MODELS,
    EVENT_TYPES,
    MARKETING_CHANNELS,
    AdSpend,
    CallCompleted,
    ContractContext,
    ContractError,
    DealWon,
    Identity,
    Lead,
    Message,
    normalize_email,
    normalize_phone,
    validate_event,
)

CONTRACT_DIR = Path(__file__).resolve().parents[1] / "docs" / "contract"  # the contract, kept in the repo
UTC = dt.timezone.utc
RECEIVED_AT = dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ctx() -> ContractContext:
    return ContractContext(received_at=RECEIVED_AT, rates={"EUR": Decimal("1.10")})


def contract_file(name: str) -> Path:
    return CONTRACT_DIR / name


# One valid event of every type. Tests deep-copy and modify them.
ENV = {"event_id": "e-1", "occurred_at": "2026-05-01T10:00:00Z", "source": "test"}
VALID: dict[str, dict] = {
    "ad_spend": {
        **ENV, "type": "ad_spend", "campaign_id": "cmp", "channel": "search_ads", "date": "2026-05-01",
        "cost": "412.50", "currency": "USD", "impressions": 100, "clicks": 3,
    },
    "ad_click": {
        **ENV, "type": "ad_click", "identity": {"visitor_id": "v-1"}, "campaign_id": "cmp", "channel": "social_ads",
        "landing_url": "https://x.example/", "utm": {"source": "s"},
    },
    "lead": {
        **ENV, "type": "lead", "identity": {"email": "a@b.example"}, "lead_id": "L-1", "channel": "organic",
        "form": "site_form",
    },
    "conversation_started": {
        **ENV, "type": "conversation_started", "identity": {"visitor_id": "v-1"}, "conversation_id": "c-1",
        "channel": "chat", "initiated_by": "visitor",
    },
    "message": {**ENV, "type": "message", "conversation_id": "c-1", "author": "visitor", "text_length": 5},
    "conversation_transferred": {
        **ENV, "type": "conversation_transferred", "conversation_id": "c-1", "from_operator_id": "op-a",
        "to_operator_id": "op-b",
    },
    "conversation_closed": {**ENV, "type": "conversation_closed", "conversation_id": "c-1", "resolved": True},
    "call_completed": {
        **ENV, "type": "call_completed", "identity": {"phone": "+15550102030"}, "call_id": "call-1",
        "direction": "inbound", "started_at": "2026-05-01T10:00:00Z", "answered_at": "2026-05-01T10:00:10Z",
        "ended_at": "2026-05-01T10:05:00Z", "outcome": "answered", "operator_id": "op-a",
    },
    "deal_won": {
        **ENV, "type": "deal_won", "identity": {"crm_contact_id": "crm-1"}, "deal_id": "D-1", "revenue": 1899.0,
        "currency": "USD",
    },
    "deal_lost": {**ENV, "type": "deal_lost", "identity": {"crm_contact_id": "crm-1"}, "deal_id": "D-2"},
    "payment": {
        **ENV, "type": "payment", "identity": {"crm_contact_id": "crm-1"}, "payment_id": "P-1", "amount": "120.00",
        "currency": "USD",
    },
    "survey_response": {**ENV, "type": "survey_response", "survey": "nps", "score": 9},
}

IDENTITY_REQUIRED = ("ad_click", "lead", "conversation_started", "call_completed", "deal_won", "deal_lost", "payment")
IDENTITY_OPTIONAL = tuple(t for t in EVENT_TYPES if t not in IDENTITY_REQUIRED)


def event(type_: str, drop: tuple[str, ...] = (), **changes) -> dict:
    obj = copy.deepcopy(VALID[type_])
    for key in drop:
        obj.pop(key, None)
    obj.update(changes)
    return obj


def error_paths(obj, ctx) -> list[str]:
    with pytest.raises(ContractError) as info:
        validate_event(obj, ctx)
    errors = info.value.errors
    assert errors, "ContractError without errors"
    for path, message in errors:
        assert isinstance(path, str) and isinstance(message, str)
        assert message and "\n" not in message, f"message must be a one-liner: {message!r}"
    return [path for path, _ in errors]


def error_map(obj, ctx) -> dict[str, str]:
    with pytest.raises(ContractError) as info:
        validate_event(obj, ctx)
    return dict(info.value.errors)


# --------------------------------------------------------------------------- every type


def test_event_types_are_the_contract_types():
    assert len(EVENT_TYPES) == 12
    assert set(EVENT_TYPES) == set(VALID) == set(EVENT_MODELS)


def test_event_types_match_events_md():
    text = contract_file("events.md").read_text()
    documented = set()
    for heading in re.findall(r"^### (.+)$", text, flags=re.M):
        documented.update(re.findall(r"`([a-z_]+)`", heading))
    assert documented == set(EVENT_TYPES)


@pytest.mark.parametrize("type_", sorted(VALID))
def test_valid_event_of_every_type(type_, ctx):
    ev = validate_event(event(type_), ctx)
    assert type(ev) is EVENT_MODELS[type_]
    assert ev.type == type_
    assert ev.extra == {}


@pytest.mark.parametrize("type_", sorted(VALID))
def test_missing_required_envelope_field(type_, ctx):
    for key in ("event_id", "occurred_at", "source"):
        assert error_paths(event(type_, drop=(key,)), ctx) == [key]


# --------------------------------------------------------------------------- whole event / type


@pytest.mark.parametrize("obj, kind", [([1, 2], "array"), ("x", "string"), (None, "null"), (5, "number")])
def test_non_object_is_an_error_on_the_whole_event(obj, kind, ctx):
    assert error_map(obj, ctx) == {"": f"event must be a JSON object, got {kind}"}


def test_unknown_type(ctx):
    errors = error_map(event("message", type="chat_message"), ctx)
    assert list(errors) == ["type"]
    assert "unknown event type 'chat_message'" in errors["type"]


def test_missing_type_still_reports_envelope_errors(ctx):
    obj = event("message", drop=("type",), event_id=17, occurred_at="2026-05-01T10:00:00")
    assert error_paths(obj, ctx) == ["type", "event_id", "occurred_at"]


def test_type_must_be_a_string(ctx):
    assert error_paths(event("message", type=3), ctx) == ["type"]


def test_all_errors_are_reported_not_only_the_first(ctx):
    obj = event(
        "call_completed",
        event_id="",
        identity={"phone": "call me", "email": "nobody"},
        direction="sideways",
        answered_at="2026-05-01T09:00:00Z",
        operator_id=None,
    )
    assert error_paths(obj, ctx) == [
        "event_id", "identity.email", "identity.phone", "direction", "answered_at", "operator_id",
    ]


def test_contract_error_str_is_one_line(ctx):
    with pytest.raises(ContractError) as info:
        validate_event(event("survey_response", score=11, event_id=""), ctx)
    assert "\n" not in str(info.value)
    assert "score:" in str(info.value) and "event_id:" in str(info.value)


# --------------------------------------------------------------------------- unknown fields -> extra


def test_unknown_top_level_fields_go_to_extra(ctx):
    ev = validate_event(event("message", campaign="x", extra={"a": 1}, original_value=5), ctx)
    assert ev.extra == {"campaign": "x", "extra": {"a": 1}, "original_value": 5}
    assert ev.conversation_id == "c-1"


# --------------------------------------------------------------------------- envelope strings


def test_event_id_length(ctx):
    assert validate_event(event("message", event_id="x" * 128), ctx).event_id == "x" * 128
    assert validate_event(event("message", event_id="x"), ctx).event_id == "x"
    assert error_paths(event("message", event_id=""), ctx) == ["event_id"]
    assert error_paths(event("message", event_id="x" * 129), ctx) == ["event_id"]


def test_event_id_must_be_a_string(ctx):
    assert error_paths(event("message", event_id=123), ctx) == ["event_id"]
    assert error_paths(event("message", event_id=None), ctx) == ["event_id"]


def test_source_length(ctx):
    assert validate_event(event("message", source="s" * 64), ctx).source == "s" * 64
    assert error_paths(event("message", source="s" * 65), ctx) == ["source"]
    assert error_paths(event("message", source=""), ctx) == ["source"]
    assert error_paths(event("message", source=5), ctx) == ["source"]


@pytest.mark.parametrize(
    "type_, field",
    [
        ("ad_spend", "campaign_id"),
        ("lead", "lead_id"),
        ("message", "conversation_id"),
        ("conversation_transferred", "to_operator_id"),
        ("call_completed", "call_id"),
        ("deal_won", "deal_id"),
        ("payment", "payment_id"),
    ],
)
def test_ids_are_non_empty_strings(type_, field, ctx):
    assert getattr(validate_event(event(type_, **{field: "id-1"}), ctx), field) == "id-1"
    assert error_paths(event(type_, **{field: ""}), ctx) == [field]
    assert error_paths(event(type_, **{field: 42}), ctx) == [field]
    assert error_paths(event(type_, drop=(field,)), ctx) == [field]


def test_bool_is_strict(ctx):
    assert validate_event(event("conversation_closed", resolved=False), ctx).resolved is False
    assert error_paths(event("conversation_closed", resolved="true"), ctx) == ["resolved"]
    assert error_paths(event("conversation_closed", resolved=1), ctx) == ["resolved"]


def test_optional_fields_may_be_null_or_absent(ctx):
    ev = validate_event(event("conversation_closed", resolved=None), ctx)
    assert ev.resolved is None
    assert validate_event(event("conversation_closed", drop=("resolved",)), ctx).resolved is None


# --------------------------------------------------------------------------- occurred_at


def test_occurred_at_with_z_and_with_offset_is_stored_in_utc(ctx):
    ev = validate_event(event("message", occurred_at="2026-05-01T13:00:21.500+03:00"), ctx)
    assert ev.occurred_at == dt.datetime(2026, 5, 1, 10, 0, 21, 500000, tzinfo=UTC)
    assert ev.occurred_at.tzinfo is UTC
    ev = validate_event(event("message", occurred_at="2026-05-01T10:00:00Z"), ctx)
    assert ev.occurred_at == dt.datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_occurred_at_finer_than_milliseconds_is_an_error(ctx):
    # events.md: "ms precision or coarser" (docs/kpi-readings.md V2)
    ev = validate_event(event("message", occurred_at="2026-05-01T10:00:00.12Z"), ctx)
    assert ev.occurred_at.microsecond == 120000
    with pytest.raises(ContractError) as exc:
        validate_event(event("message", occurred_at="2026-05-01T10:00:00.123987Z"), ctx)
    assert exc.value.errors[0][0] == "occurred_at" and "finer than milliseconds" in exc.value.errors[0][1]


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-01T10:00:00",  # naive
        "2026-05-01T10:00:00.120",  # naive with fraction
        "2026-05-01",  # a date
        "2026-05-01 10:00:00Z",  # not RFC 3339 (space)
        "20260501T100000Z",  # ISO basic format, not RFC 3339
        "2026-13-01T10:00:00Z",  # no such month
        "yesterday",
        1777629600,  # epoch number
        None,
    ],
)
def test_occurred_at_invalid(value, ctx):
    assert error_paths(event("message", occurred_at=value), ctx) == ["occurred_at"]


def test_naive_occurred_at_message_says_offset_missing(ctx):
    errors = error_map(event("message", occurred_at="2026-05-01T10:00:00"), ctx)
    assert "no UTC offset" in errors["occurred_at"]


def test_occurred_at_at_most_24h_after_receive_time(ctx):
    limit = RECEIVED_AT + dt.timedelta(hours=24)
    ok = event("message", occurred_at=limit.isoformat().replace("+00:00", "Z"))
    assert validate_event(ok, ctx).occurred_at == limit
    late = limit + dt.timedelta(milliseconds=1)
    bad = event("message", occurred_at=late.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    assert error_paths(bad, ctx) == ["occurred_at"]
    # Same instant expressed with an offset.
    bad = event("message", occurred_at="2026-07-02T15:00:00.001+03:00")
    assert error_paths(bad, ctx) == ["occurred_at"]
    # The past is fine, however far.
    assert validate_event(event("message", occurred_at="2001-01-01T00:00:00Z"), ctx)


def test_received_at_follows_the_context(ctx):
    obj = event("message", occurred_at="2026-07-03T00:00:00Z")
    assert error_paths(obj, ctx) == ["occurred_at"]
    later = ctx.at(dt.datetime(2026, 7, 2, 12, 0, tzinfo=UTC))
    assert validate_event(obj, later).occurred_at == dt.datetime(2026, 7, 3, tzinfo=UTC)


# --------------------------------------------------------------------------- identity


def test_identity_normalised_and_unknown_keys_ignored(ctx):
    obj = event(
        "lead",
        identity={"email": "  Anna.K@Example.ORG ", "phone": "+7 (916) 123-45-67", "fingerprint": "zzz", "visitor_id": "v-9"},
    )
    ev = validate_event(obj, ctx)
    assert ev.identity == Identity(email="anna.k@example.org", phone="+79161234567", visitor_id="v-9")
    assert ev.identity.items() == (("visitor_id", "v-9"), ("email", "anna.k@example.org"), ("phone", "+79161234567"))
    assert ev.extra == {}


@pytest.mark.parametrize(
    "identity, path",
    [
        ({"email": "not-an-email"}, "identity.email"),
        ({"email": "   "}, "identity.email"),
        ({"email": 7}, "identity.email"),
        ({"phone": "12-34"}, "identity.phone"),
        ({"phone": "call me maybe"}, "identity.phone"),
        ({"phone": "+1234567890123456"}, "identity.phone"),  # 16 digits
        ({"phone": 79161234567}, "identity.phone"),  # a number, not a string
        ({"visitor_id": ""}, "identity.visitor_id"),
        ({"crm_contact_id": ["x"]}, "identity.crm_contact_id"),
    ],
)
def test_identity_values_invalid(identity, path, ctx):
    assert error_paths(event("deal_lost", identity=identity), ctx) == [path]


def test_invalid_phone_message(ctx):
    errors = error_map(event("deal_lost", identity={"phone": "12-34"}), ctx)
    assert "is not a valid E.164 number" in errors["identity.phone"]


@pytest.mark.parametrize("type_", IDENTITY_REQUIRED)
def test_identity_required(type_, ctx):
    assert validate_event(event(type_), ctx).identity is not None
    assert error_paths(event(type_, drop=("identity",)), ctx) == ["identity"]
    assert error_paths(event(type_, identity={}), ctx) == ["identity"]
    assert error_paths(event(type_, identity={"unknown_key": "x"}), ctx) == ["identity"]
    assert error_paths(event(type_, identity=None), ctx) == ["identity"]
    assert error_paths(event(type_, identity="v-1"), ctx) == ["identity"]


@pytest.mark.parametrize("type_", IDENTITY_OPTIONAL)
def test_identity_optional(type_, ctx):
    assert validate_event(event(type_, drop=("identity",)), ctx).identity is None
    assert validate_event(event(type_, identity={}), ctx).identity is None  # empty = absent
    kept = validate_event(event(type_, identity={"visitor_id": "v-2"}), ctx)
    assert kept.identity == Identity(visitor_id="v-2")
    assert error_paths(event(type_, identity={"email": "x"}), ctx) == ["identity.email"]


@pytest.mark.parametrize("identity", [{"email": "a@b.example"}, {"phone": "+44 20 7946 0958"}])
def test_lead_with_email_or_phone(identity, ctx):
    assert validate_event(event("lead", identity=identity), ctx).identity is not None


@pytest.mark.parametrize("identity", [{"visitor_id": "v-1"}, {"crm_contact_id": "c-1", "visitor_id": "v"}])
def test_lead_without_email_or_phone(identity, ctx):
    errors = error_map(event("lead", identity=identity), ctx)
    assert list(errors) == ["identity"]
    assert "email or identity.phone" in errors["identity"]


# --------------------------------------------------------------------------- normalisation helpers


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+7 (916) 123-45-67", "+79161234567"),
        ("+79161234567", "+79161234567"),
        ("0079161234567", "+79161234567"),
        ("00 44 20 7946 0958", "+442079460958"),
        ("1.555.010.2030", "+15550102030"),
        (" +1 555 010 2030 ", "+15550102030"),
        ("+1234567", "+1234567"),  # 7 digits
        ("+123456789012345", "+123456789012345"),  # 15 digits
    ],
)
def test_normalize_phone(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "n/a", "+123456", "+1234567890123456", "+0 916 123 45 67", "0916 123 45 67", "+7 916 123 45 67 ext 5",
     "7+9161234567", "++79161234567", "0000000000"],
)
def test_normalize_phone_rejects_junk(raw):
    with pytest.raises(ValueError, match="is not a valid E.164 number"):
        normalize_phone(raw)


def test_normalize_email():
    assert normalize_email("  Anna.K@Example.ORG ") == "anna.k@example.org"
    for raw in ("", "  ", "anna", "anna@", "@example.org"):
        with pytest.raises(ValueError):
            normalize_email(raw)


# --------------------------------------------------------------------------- channels


@pytest.mark.parametrize("type_", ["ad_spend", "ad_click", "lead"])
def test_marketing_channel(type_, ctx):
    for channel in MARKETING_CHANNELS:
        assert validate_event(event(type_, channel=channel), ctx).channel == channel
    assert error_paths(event(type_, channel="chat"), ctx) == ["channel"]
    assert error_paths(event(type_, channel="tv"), ctx) == ["channel"]
    assert error_paths(event(type_, channel=1), ctx) == ["channel"]


def test_conversation_channel(ctx):
    for channel in CONVERSATION_CHANNELS:
        assert validate_event(event("conversation_started", channel=channel), ctx).channel == channel
    assert error_paths(event("conversation_started", channel="search_ads"), ctx) == ["channel"]


def test_channels_extended_by_configuration(ctx):
    wide = dataclasses.replace(
        ctx,
        marketing_channels=MARKETING_CHANNELS + ("tv",),
        conversation_channels=CONVERSATION_CHANNELS + ("whatsapp",),
    )
    assert error_paths(event("lead", channel="tv"), ctx) == ["channel"]
    assert validate_event(event("lead", channel="tv"), wide).channel == "tv"
    assert validate_event(event("conversation_started", channel="whatsapp"), wide).channel == "whatsapp"


# --------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    "value, expected",
    [("412.50", Decimal("412.50")), (412.5, Decimal("412.5")), (0.1, Decimal("0.1")), (7, Decimal("7")),
     (0, Decimal("0")), ("1e3", Decimal("1000"))],
)
def test_money_number_or_numeric_string(value, expected, ctx):
    ev = validate_event(event("ad_spend", cost=value), ctx)
    assert ev.cost == expected and str(ev.cost) == str(expected)
    assert isinstance(ev.cost, Decimal)


@pytest.mark.parametrize(
    "value", [True, False, float("nan"), float("inf"), "NaN", "Infinity", "-Infinity", "abc", "", "12,50", None, [1], {}]
)
def test_money_rejects_non_numbers(value, ctx):
    assert error_paths(event("ad_spend", cost=value), ctx) == ["cost"]


@pytest.mark.parametrize("type_, field", [("ad_spend", "cost"), ("payment", "amount"), ("deal_won", "revenue")])
def test_money_not_negative(type_, field, ctx):
    assert error_paths(event(type_, **{field: -1}), ctx) == [field]
    assert error_paths(event(type_, **{field: "-0.01"}), ctx) == [field]


def test_zero_cost_and_amount_are_fine_but_not_zero_revenue(ctx):
    assert validate_event(event("ad_spend", cost=0), ctx).cost == 0
    assert validate_event(event("payment", amount="0.00"), ctx).amount == 0
    assert error_paths(event("deal_won", revenue=0), ctx) == ["revenue"]
    assert validate_event(event("deal_won", revenue="0.01"), ctx).revenue == Decimal("0.01")


def test_money_kept_in_reporting_currency(ctx):
    ev = validate_event(event("payment", amount="120.00", currency="USD"), ctx)
    assert (ev.amount, ev.currency, ev.original_currency, ev.original_value) == (
        Decimal("120.00"), "USD", "USD", Decimal("120.00"))


def test_money_converted_with_rate_table(ctx):
    ev = validate_event(event("deal_won", revenue="100", currency="EUR"), ctx)
    assert (ev.revenue, ev.currency, ev.original_currency, ev.original_value) == (
        Decimal("110.00"), "USD", "EUR", Decimal("100"))
    ev = validate_event(event("ad_spend", cost=10, currency="EUR"), ctx)
    assert (ev.cost, ev.currency) == (Decimal("11.00"), "USD")


def test_money_currency_not_in_rate_table(ctx):
    errors = error_map(event("ad_spend", currency="GBP"), ctx)
    assert errors == {"currency": "currency GBP is neither the reporting currency USD nor in the rate table"}


def test_money_other_reporting_currency(ctx):
    eur = ContractContext(reporting_currency="EUR", rates={"USD": Decimal("0.9")}, received_at=RECEIVED_AT)
    ev = validate_event(event("payment", amount="100", currency="USD"), eur)
    assert (ev.amount, ev.currency) == (Decimal("90.0"), "EUR")
    assert error_map(event("payment", currency="GBP"), eur) == {
        "currency": "currency GBP is neither the reporting currency EUR nor in the rate table"}


@pytest.mark.parametrize("value", ["US", "USDX", "", 840, None, "U$D"])
def test_currency_must_be_three_letters(value, ctx):
    assert error_paths(event("payment", currency=value), ctx) == ["currency"]


@pytest.mark.parametrize("type_", ["ad_spend", "deal_won", "payment"])
def test_currency_required(type_, ctx):
    assert error_paths(event(type_, drop=("currency",)), ctx) == ["currency"]


# --------------------------------------------------------------------------- ad_spend


def test_ad_spend_date(ctx):
    assert validate_event(event("ad_spend", date="2026-02-28"), ctx).date == dt.date(2026, 2, 28)
    for bad in ("2026-02-30", "2026-5-1", "01.05.2026", "2026-05-01T00:00:00Z", 20260501, None):
        assert error_paths(event("ad_spend", date=bad), ctx) == ["date"], bad


def test_ad_spend_counts(ctx):
    ev = validate_event(event("ad_spend", drop=("impressions", "clicks")), ctx)
    assert (ev.impressions, ev.clicks) == (None, None)
    ev = validate_event(event("ad_spend", impressions=0, clicks=0), ctx)
    assert (ev.impressions, ev.clicks) == (0, 0)
    assert error_paths(event("ad_spend", impressions=-1, clicks=2.5), ctx) == ["impressions", "clicks"]
    assert error_paths(event("ad_spend", clicks="3"), ctx) == ["clicks"]


def test_ad_spend_identity_kept_if_present(ctx):
    ev = validate_event(event("ad_spend", identity={"crm_contact_id": "x"}), ctx)
    assert ev.identity == Identity(crm_contact_id="x")


# --------------------------------------------------------------------------- ad_click


def test_ad_click_utm_is_an_object_of_strings(ctx):
    assert validate_event(event("ad_click", utm={"a": "b"}), ctx).utm == {"a": "b"}
    assert validate_event(event("ad_click", drop=("utm", "landing_url")), ctx).utm is None
    assert error_paths(event("ad_click", utm={"a": 1}), ctx) == ["utm.a"]
    assert error_paths(event("ad_click", utm="source=x"), ctx) == ["utm"]


# --------------------------------------------------------------------------- conversations


def test_conversation_started_initiated_by(ctx):
    for who in ("visitor", "operator", "bot"):
        assert validate_event(event("conversation_started", initiated_by=who), ctx).initiated_by == who
    assert error_paths(event("conversation_started", initiated_by="system"), ctx) == ["initiated_by"]
    assert error_paths(event("conversation_started", drop=("initiated_by",)), ctx) == ["initiated_by"]


def test_message_author(ctx):
    for who in ("visitor", "bot"):
        assert validate_event(event("message", author=who), ctx).author == who
    assert error_paths(event("message", author="admin"), ctx) == ["author"]


def test_message_operator_needs_operator_id(ctx):
    ev = validate_event(event("message", author="operator", operator_id="op-anna", template_id="greeting-1"), ctx)
    assert (ev.operator_id, ev.template_id) == ("op-anna", "greeting-1")
    assert error_paths(event("message", author="operator"), ctx) == ["operator_id"]
    assert error_paths(event("message", author="operator", operator_id=None), ctx) == ["operator_id"]
    assert error_paths(event("message", author="operator", operator_id=""), ctx) == ["operator_id"]


def test_message_text_length(ctx):
    assert validate_event(event("message", text_length=0), ctx).text_length == 0
    assert validate_event(event("message", drop=("text_length",)), ctx).text_length is None
    assert error_paths(event("message", text_length=-1), ctx) == ["text_length"]
    assert error_paths(event("message", text_length=4.5), ctx) == ["text_length"]


def test_conversation_transferred_needs_both_operators(ctx):
    assert error_paths(event("conversation_transferred", drop=("from_operator_id", "to_operator_id")), ctx) == [
        "from_operator_id", "to_operator_id"]


# --------------------------------------------------------------------------- call_completed


def test_call_direction_and_outcome(ctx):
    for outcome in ("missed", "abandoned", "busy", "failed"):
        ev = validate_event(event("call_completed", outcome=outcome, drop=("operator_id", "answered_at")), ctx)
        assert ev.outcome == outcome and ev.operator_id is None
    assert validate_event(event("call_completed", direction="outbound"), ctx).direction == "outbound"
    assert error_paths(event("call_completed", direction="in"), ctx) == ["direction"]
    assert error_paths(event("call_completed", outcome="voicemail"), ctx) == ["outcome"]


def test_call_answered_needs_operator(ctx):
    assert error_paths(event("call_completed", drop=("operator_id",)), ctx) == ["operator_id"]


def test_call_answered_without_answered_at_is_fine(ctx):
    ev = validate_event(event("call_completed", drop=("answered_at",)), ctx)
    assert ev.answered_at is None and ev.outcome == "answered"


def test_call_timestamps_parsed_like_occurred_at(ctx):
    ev = validate_event(event("call_completed", started_at="2026-05-01T13:00:00+03:00"), ctx)
    assert ev.started_at == dt.datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert error_paths(event("call_completed", started_at="2026-05-01T10:00:00"), ctx) == ["started_at"]
    assert error_paths(event("call_completed", ended_at=1777629600), ctx) == ["ended_at"]
    assert error_paths(event("call_completed", answered_at="soon"), ctx) == ["answered_at"]


def test_call_order_started_answered_ended(ctx):
    same = "2026-05-01T10:00:00Z"
    assert validate_event(event("call_completed", started_at=same, answered_at=same, ended_at=same), ctx)
    assert error_paths(event("call_completed", answered_at="2026-05-01T09:59:00Z"), ctx) == ["answered_at"]
    assert error_paths(event("call_completed", ended_at="2026-05-01T10:00:05Z"), ctx) == ["ended_at"]
    no_answer = event("call_completed", drop=("answered_at",), ended_at="2026-05-01T09:00:00Z")
    assert error_paths(no_answer, ctx) == ["ended_at"]


# --------------------------------------------------------------------------- deals, payments, surveys


def test_deal_lost_reason_optional(ctx):
    assert validate_event(event("deal_lost"), ctx).reason is None
    assert validate_event(event("deal_lost", reason="no answer"), ctx).reason == "no answer"
    assert error_paths(event("deal_lost", reason=3), ctx) == ["reason"]


def test_payment_deal_id_optional(ctx):
    assert validate_event(event("payment"), ctx).deal_id is None
    assert validate_event(event("payment", deal_id="D-1"), ctx).deal_id == "D-1"
    assert error_paths(event("payment", deal_id=""), ctx) == ["deal_id"]


@pytest.mark.parametrize("survey, ok, bad", [("nps", (0, 10), (-1, 11)), ("csat", (1, 5), (0, 6))])
def test_survey_score_range(survey, ok, bad, ctx):
    for score in ok:
        assert validate_event(event("survey_response", survey=survey, score=score), ctx).score == score
    for score in bad:
        errors = error_map(event("survey_response", survey=survey, score=score), ctx)
        assert list(errors) == ["score"]
        assert f"{survey} score must be between {ok[0]} and {ok[1]}" in errors["score"]


@pytest.mark.parametrize("score", [9.5, "9", True, None, 9.0])
def test_survey_score_must_be_a_json_integer(score, ctx):
    assert error_paths(event("survey_response", score=score), ctx) == ["score"]


def test_survey_kind(ctx):
    assert error_paths(event("survey_response", survey="ces"), ctx) == ["survey"]


# --------------------------------------------------------------------------- models


def test_models_are_frozen(ctx):
    ev = validate_event(event("message"), ctx)
    with pytest.raises(ValidationError):
        ev.author = "bot"
    with pytest.raises(ValidationError):
        ev.identity = None


def test_models_can_be_validated_directly_without_context():
    ev = Lead.model_validate(event("lead", currency="XYZ"))  # unknown field -> extra
    assert ev.extra == {"currency": "XYZ"}
    ev = DealWon.model_validate(event("deal_won"))
    assert ev.original_currency == "USD"
    with pytest.raises(ValidationError):
        Message.model_validate(event("message", author="operator"))


def test_python_side_construction_defaults_type():
    ev = AdSpend(event_id="x", occurred_at="2026-05-01T00:00:00Z", source="s", campaign_id="c", channel="direct",
                 date="2026-05-01", cost="1", currency="USD")
    assert ev.type == "ad_spend" and ev.cost == Decimal("1")


def test_call_model_roundtrip_to_json(ctx):
    ev = validate_event(event("call_completed"), ctx)
    assert isinstance(ev, CallCompleted)
    data = json.loads(ev.model_dump_json())
    assert data["started_at"] == "2026-05-01T10:00:00Z"
    assert data["identity"]["phone"] == "+15550102030"


# --------------------------------------------------------------------------- context


def test_context_defaults():
    c = ContractContext()
    assert c.reporting_currency == "USD" and dict(c.rates) == {}
    assert c.marketing_channels == ("search_ads", "social_ads", "display_ads", "email", "organic", "referral", "direct")
    assert c.conversation_channels == ("chat", "call", "email", "social", "messenger")
    assert c.received_at.tzinfo is UTC
    assert abs(dt.datetime.now(UTC) - c.received_at) < dt.timedelta(minutes=1)


def test_context_normalises_and_checks():
    c = ContractContext(reporting_currency="eur", rates={"usd": 0.9},
                        received_at=dt.datetime(2026, 5, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=3))))
    assert c.reporting_currency == "EUR"
    assert dict(c.rates) == {"USD": Decimal("0.9")}
    assert c.received_at == dt.datetime(2026, 5, 1, 0, tzinfo=UTC) and c.received_at.tzinfo is UTC
    with pytest.raises(ValueError):
        ContractContext(received_at=dt.datetime(2026, 5, 1))
    with pytest.raises(ValueError):
        ContractContext(reporting_currency="dollars")
    with pytest.raises(ValueError):
        ContractContext(rates={"EUR": 0})


def test_context_copies_keep_the_validated_configuration(ctx):
    later = ctx.at(dt.datetime(2026, 8, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=3))))
    assert later.received_at == dt.datetime(2026, 8, 1, 0, tzinfo=UTC) and later.received_at.tzinfo is UTC
    assert later.rates is ctx.rates and dict(later.rates) == {"EUR": Decimal("1.10")}
    again = dataclasses.replace(ctx, received_at=RECEIVED_AT)
    assert validate_event(event("payment", currency="EUR", amount="1"), again).amount == Decimal("1.10")
    with pytest.raises(TypeError):
        ctx.rates["GBP"] = Decimal(1)  # read-only


# --------------------------------------------------------------------------- shared contract files


def _jsonl(name: str) -> list[str]:
    return [line for line in contract_file(name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_example_validates(ctx):
    lines = _jsonl("examples.jsonl")
    events = [validate_event(json.loads(line), ctx) for line in lines]
    assert {e.type for e in events} == set(EVENT_TYPES)
    by_id = {e.event_id: e for e in events}
    # Spot checks of normalisation on the shared examples.
    assert by_id["ld-1"].identity.email == "anna.k@example.org"
    assert by_id["ld-1"].identity.phone == "+79161234567"
    assert by_id["call-2"].identity.phone == "+15550102030"
    assert by_id["m-3"].occurred_at == dt.datetime(2026, 5, 1, 10, 0, 21, 500000, tzinfo=UTC)
    assert by_id["dw-1"].occurred_at == dt.datetime(2026, 5, 9, 13, 0, tzinfo=UTC)
    assert by_id["dw-1"].revenue == Decimal("1899.00")
    assert by_id["sp-1"].cost == Decimal("412.50")


# Expected path per invalid.jsonl line, keyed by event_id (None: the line without one).
INVALID_EXPECTED = {"x-1": "identity", "x-2": "operator_id", "x-3": "score", "x-4": "cost", "x-5": "answered_at",
                    None: "event_id"}


def test_every_invalid_line_is_rejected(ctx):
    seen = 0
    for line in _jsonl("invalid.jsonl"):
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # "not json" is handled upstream (the ingest decoder)
        seen += 1
        paths = error_paths(obj, ctx)
        assert all(p for p in paths), f"expected field paths for {line}: {paths}"
        key = obj.get("event_id") if isinstance(obj, dict) else None
        if key in INVALID_EXPECTED:
            assert INVALID_EXPECTED[key] in paths, (line, paths)
    assert seen >= len(INVALID_EXPECTED)
