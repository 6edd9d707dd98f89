"""The checked-in JSON Schemas (schemas/jsonschema/*.json) are exactly what the
models export, and they list the contract's fields.

If this fails after a model change, regenerate and commit:
    .venv/bin/python -m schemas.export
"""
import json
from pathlib import Path

import pytest

from schemas import EVENT_TYPES, export_json_schemas

CHECKED_IN = Path(__file__).resolve().parents[1] / "schemas" / "jsonschema"

ENVELOPE = {"event_id", "type", "occurred_at", "source", "identity"}
ENVELOPE_REQUIRED = {"event_id", "type", "occurred_at", "source"}

# Fields per type, as in events.md: (all fields, required fields) besides the envelope.
CONTRACT_FIELDS = {
    "ad_spend": ({"campaign_id", "channel", "date", "cost", "currency", "impressions", "clicks"},
                 {"campaign_id", "channel", "date", "cost", "currency"}),
    "ad_click": ({"campaign_id", "channel", "landing_url", "utm"}, {"identity", "campaign_id", "channel"}),
    "lead": ({"lead_id", "channel", "campaign_id", "form"}, {"identity", "lead_id", "channel"}),
    "conversation_started": ({"conversation_id", "channel", "initiated_by", "campaign_id"},
                             {"identity", "conversation_id", "channel", "initiated_by"}),
    "message": ({"conversation_id", "author", "operator_id", "template_id", "text_length"},
                {"conversation_id", "author"}),
    "conversation_transferred": ({"conversation_id", "from_operator_id", "to_operator_id"},
                                 {"conversation_id", "from_operator_id", "to_operator_id"}),
    "conversation_closed": ({"conversation_id", "resolved"}, {"conversation_id"}),
    "call_completed": ({"call_id", "direction", "started_at", "answered_at", "ended_at", "outcome", "operator_id",
                        "queue", "tracking_number", "campaign_id"},
                       {"identity", "call_id", "direction", "started_at", "ended_at", "outcome"}),
    "deal_won": ({"deal_id", "revenue", "currency"}, {"identity", "deal_id", "revenue", "currency"}),
    "deal_lost": ({"deal_id", "reason"}, {"identity", "deal_id"}),
    "payment": ({"payment_id", "amount", "currency", "deal_id"}, {"identity", "payment_id", "amount", "currency"}),
    "survey_response": ({"survey", "score", "conversation_id", "call_id", "operator_id"}, {"survey", "score"}),
}

EXPECTED_FILES = {"event.json", *(f"{t}.json" for t in EVENT_TYPES)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("jsonschema")
    paths = export_json_schemas(out)
    assert all(p.parent == out for p in paths)
    return {p.name: p.read_bytes() for p in paths}


def test_exports_the_union_and_one_file_per_type(exported):
    assert set(exported) == EXPECTED_FILES
    assert set(CONTRACT_FIELDS) == set(EVENT_TYPES)


def test_checked_in_files_are_up_to_date(exported):
    checked_in = {p.name for p in CHECKED_IN.glob("*.json")}
    assert checked_in == EXPECTED_FILES, "run: .venv/bin/python -m schemas.export"
    for name, data in exported.items():
        assert (CHECKED_IN / name).read_bytes() == data, f"{name} is stale; run: .venv/bin/python -m schemas.export"


def test_export_is_deterministic(exported, tmp_path):
    again = {p.name: p.read_bytes() for p in export_json_schemas(tmp_path)}
    assert again == exported
    for name, data in exported.items():
        text = data.decode("utf-8")
        assert text.endswith("}\n") and not text.endswith("\n\n"), name
        assert json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n" == text, name


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_type_schema_has_exactly_the_contract_fields(type_, exported):
    schema = json.loads(exported[f"{type_}.json"])
    fields, required = CONTRACT_FIELDS[type_]
    properties = set(schema["properties"])
    assert ENVELOPE | fields <= properties
    # Nothing that is not on the wire (extra, original_currency, original_value).
    assert properties == ENVELOPE | fields
    assert set(schema["required"]) == ENVELOPE_REQUIRED | required
    assert schema["properties"]["type"]["const"] == type_


def test_union_schema_dispatches_on_type(exported):
    schema = json.loads(exported["event.json"])
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert len(schema["oneOf"]) == len(EVENT_TYPES)
    defs = schema["$defs"]
    for type_, ref in schema["discriminator"]["mapping"].items():
        model = defs[ref.rsplit("/", 1)[1]]
        assert set(model["properties"]) == ENVELOPE | CONTRACT_FIELDS[type_][0]


def test_identity_schema(exported):
    identity = json.loads(exported["lead.json"])["$defs"]["Identity"]
    assert set(identity["properties"]) == {"visitor_id", "email", "phone", "crm_contact_id"}


def test_wire_formats_in_schema(exported):
    spend = json.loads(exported["ad_spend.json"])["properties"]
    assert spend["date"]["format"] == "date"
    assert spend["occurred_at"]["format"] == "date-time"
    assert {s["type"] for s in spend["cost"]["anyOf"]} == {"number", "string"}
    assert spend["event_id"]["maxLength"] == 128
    assert spend["source"]["maxLength"] == 64
    survey = json.loads(exported["survey_response.json"])["properties"]
    assert survey["score"]["type"] == "integer"
    assert set(survey["survey"]["enum"] if "enum" in survey["survey"] else [survey["survey"]["const"]]) == {"nps", "csat"}
