"""Source adapters, one by one: the vendors' published signature test vectors, payloads shaped
like the vendors' documented samples (tests/data/sources/), a wrong signature, a stale
timestamp, a replayed delivery and an unmappable payload. The Graph and CRM look-ups run
against the loopback stand-in of tests/vendor_standin.py (recorded vendor responses)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest

from leadflow.config import SourceSettings, load_settings
from services.ingest.sources import (asterisk_cdr, chatwoot, google_ads_spend, google_lead_forms, hubspot_deals,
                                     meta_ads_spend, meta_lead_ads, pipedrive_deals, twilio_voice)
from services.ingest.sources.api import VendorApi
from services.ingest.sources.base import AuthFailed, FileOptions, SourceContext, SourceRequest
from services.ingest.sources.registry import FILE_ADAPTERS, HTTP_ADAPTERS

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.vendor_standin import CRM_TOKEN, DATA, GRAPH_TOKEN, recorded_vendor_apis  # noqa: E402

UTC = timezone.utc
NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def ctx(name: str, api=None, **config) -> SourceContext:
    return SourceContext(name, SourceSettings(**config), load_settings(), NOW, api)


def request(body: bytes, headers: dict | None = None, *, url="https://leadflow.example/v1/sources/x",
            method="POST", query=None, form=None) -> SourceRequest:
    return SourceRequest(method=method, url=url, headers=headers or {}, body=body, query=query or {}, form=form)


def run(coro):
    return asyncio.run(coro)


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_registry_names_match_the_contract():
    assert sorted(HTTP_ADAPTERS) == ["chatwoot", "google-lead-forms", "hubspot-deals", "meta-lead-ads",
                                     "pipedrive-deals", "twilio-voice"]
    assert sorted(FILE_ADAPTERS) == ["asterisk-cdr", "google-ads-spend", "meta-ads-spend"]


# ------------------------------------------------------------------ vendors' published test vectors
def test_twilio_vector_from_its_helper_libraries():
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_voice.signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    c = ctx("twilio-voice", secret="12345", public_url=url)
    twilio_voice.authenticate(request(urlencode(params).encode(), {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
                                      form=params), c)
    with pytest.raises(AuthFailed):
        twilio_voice.authenticate(request(b"", {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
                                          form=params[:-1] + [("To", "+18005551213")]), c)


def test_hubspot_v3_vector_from_its_docs():
    assert hubspot_deals.signature("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "POST", "https://www.example.com/webhook_uri",
                                   b"{'example_field':'example_value'}", "15000000") == \
        "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="


def test_meta_uses_githubs_scheme_and_vector():
    assert meta_lead_ads.signature("It's a Secret to Everybody", b"Hello, World!") == \
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


# ------------------------------------------------------------------ meta-lead-ads
def meta_ctx(api, standin):
    return ctx("meta-lead-ads", api, secret="app-secret", verify_token="vt-1", api_url=standin.graph_url,
               token=GRAPH_TOKEN)


def test_meta_lead_ads_maps_every_change_through_the_graph_api():
    body = data("meta_leadgen_webhook.json")
    signed = {"X-Hub-Signature-256": "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()}

    async def scenario():
        async with recorded_vendor_apis() as standin:
            api = VendorApi()
            c = meta_ctx(api, standin)
            meta_lead_ads.authenticate(request(body, signed), c)
            first = await meta_lead_ads.map_request(request(body, signed), c)
            again = await meta_lead_ads.map_request(request(body, signed), c)  # Meta retries the delivery
            await api.close()
            return first, again, standin.requests

    first, again, served = run(scenario())
    assert served == ["graph 444444444444", "graph 555555555555", "graph 666666666666"] * 2
    events = [e for e, _ in first.events]
    assert events[0] == {
        "event_id": "meta-lead-ads:444444444444", "type": "lead", "occurred_at": "2026-05-01T10:00:00.000Z",
        "source": "meta-lead-ads", "identity": {"email": "Joe@Example.com", "phone": "+1 415 555 0100"},
        "lead_id": "444444444444", "channel": "social_ads", "form": "lead_ad", "form_id": "1234567890123",
        "ad_id": "23851234560001", "campaign_id": "23851234560000"}
    assert [e["identity"] for e in events[1:]] == [{"email": "ann@example.org"}, {}]  # the last: no contact (dead later)
    assert [e["event_id"] for e, _ in again.events] == [e["event_id"] for e in events]
    assert json.loads(first.events[2][1])["change"]["value"]["leadgen_id"] == "666666666666"


def test_meta_lead_ads_refuses_bad_signatures_and_answers_the_subscription_check():
    body = data("meta_leadgen_webhook.json")
    c = ctx("meta-lead-ads", secret="app-secret", verify_token="vt-1")
    for headers in ({}, {"X-Hub-Signature-256": "sha256=" + "0" * 64},
                    {"X-Hub-Signature-256": meta_lead_ads.signature("other-secret", body)}):
        with pytest.raises(AuthFailed) as exc:
            meta_lead_ads.authenticate(request(body, headers), c)
        assert exc.value.status == 401
    query = {"hub.mode": "subscribe", "hub.verify_token": "vt-1", "hub.challenge": "1158201444"}
    assert meta_lead_ads.challenge(request(b"", method="GET", query=query), c) == "1158201444"
    with pytest.raises(AuthFailed) as exc:
        meta_lead_ads.challenge(request(b"", method="GET", query={**query, "hub.verify_token": "nope"}), c)
    assert exc.value.status == 403


def test_meta_lead_ads_unmappable_payload():
    c = ctx("meta-lead-ads", secret="s")
    out = run(meta_lead_ads.map_request(request(b'{"object": "page"}'), c))
    assert out.events == [] and [d.raw for d in out.dead] == [b'{"object": "page"}']
    assert "entry" in out.dead[0].reason
    body = b'{"entry": [{"id": "1", "changes": [{"field": "leadgen", "value": {"form_id": 1}}, {"field": "feed"}]}]}'
    out = run(meta_lead_ads.map_request(request(body), c))
    assert [d.reason for d in out.dead] == ["leadgen change without value.leadgen_id"]
    assert out.ignored == ["change of field 'feed'"]


# ------------------------------------------------------------------ google-lead-forms
def test_google_lead_forms_maps_the_documented_sample():
    body = data("google_lead_form.json")
    c = ctx("google-lead-forms", secret="my-google-key")
    google_lead_forms.authenticate(request(body), c)
    out = run(google_lead_forms.map_request(request(body), c))
    assert [e for e, _ in out.events] == [{
        "event_id": "google-lead-forms:TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz-0123456789-"
                    "AaBbCcDdEeFfGgHhIiJjKkLl",
        "type": "lead", "occurred_at": "2026-05-10T12:00:00.000Z", "source": "google-lead-forms",
        "identity": {"email": "test@example.com", "phone": "+16505550123"},
        "lead_id": "TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz-0123456789-AaBbCcDdEeFfGgHhIiJjKkLl",
        "channel": "search_ads", "form": "lead_form",
        "campaign_id": "9223372036854775807",  # the largest 64-bit integer, exact
        "form_id": "40000000000", "gcl_id": "gcl-id-123"}]
    assert run(google_lead_forms.map_request(request(body), c)).events[0][0]["event_id"] == out.events[0][0]["event_id"]


def test_google_lead_forms_key_test_leads_and_unmappable():
    body = data("google_lead_form.json")
    with pytest.raises(AuthFailed):
        google_lead_forms.authenticate(request(body), ctx("google-lead-forms", secret="my-google-kez"))
    with pytest.raises(AuthFailed) as exc:
        google_lead_forms.authenticate(request(b"not json"), ctx("google-lead-forms", secret="k"))
    assert exc.value.status == 400
    test_lead = body.replace(b'"is_test": false', b'"is_test": true')
    out = run(google_lead_forms.map_request(request(test_lead), ctx("google-lead-forms", secret="my-google-key")))
    assert out.events == [] and [(d.kind, d.raw) for d in out.dead] == [("test_lead", test_lead)]
    out = run(google_lead_forms.map_request(request(b'{"google_key": "k", "user_column_data": []}'),
                                            ctx("google-lead-forms", secret="k")))
    assert [d.reason for d in out.dead] == ["lead_id missing"]


# ------------------------------------------------------------------ twilio-voice
URL = "https://leadflow.example/v1/sources/twilio-voice"


def twilio_params(status: str, **extra) -> list[tuple[str, str]]:
    base = {"AccountSid": "AC0123456789abcdef0123456789abcdef", "ApiVersion": "2010-04-01",
            "CallSid": "CA5b2a1fcb0a3b4c5d6e7f80910111213", "CallStatus": status, "Called": "+18005550100",
            "Caller": "+14158675309", "Direction": "inbound", "From": "+14158675309", "To": "+18005550100",
            "SequenceNumber": "3", "Timestamp": "Sat, 02 May 2026 08:15:40 +0000", "CallbackSource": "call-progress-events"}
    base.update(extra)
    return sorted(base.items())


def twilio_request(params, token="auth-token"):
    return request(urlencode(params).encode(), {"X-Twilio-Signature": twilio_voice.signature(token, URL, params)},
                   url="http://127.0.0.1:8080/v1/sources/twilio-voice", form=params)


def test_twilio_voice_terminal_statuses_only():
    c = ctx("twilio-voice", secret="auth-token", public_url=URL, operator_id="op-chen")
    done = twilio_request(twilio_params("completed", CallDuration="322"))
    twilio_voice.authenticate(done, c)
    out = run(twilio_voice.map_request(done, c))
    assert [e for e, _ in out.events] == [{
        "event_id": "twilio-voice:CA5b2a1fcb0a3b4c5d6e7f80910111213", "type": "call_completed",
        "occurred_at": "2026-05-02T08:15:40.000Z", "source": "twilio-voice", "identity": {"phone": "+14158675309"},
        "call_id": "CA5b2a1fcb0a3b4c5d6e7f80910111213", "direction": "inbound",
        "started_at": "2026-05-02T08:10:18.000Z", "ended_at": "2026-05-02T08:15:40.000Z", "outcome": "answered",
        "answered_at": "2026-05-02T08:10:18.000Z", "operator_id": "op-chen", "tracking_number": "+18005550100"}]
    for status, outcome in (("busy", "busy"), ("no-answer", "missed"), ("failed", "failed"), ("canceled", "abandoned")):
        event = run(twilio_voice.map_request(twilio_request(twilio_params(status, CallDuration="0")), c)).events[0][0]
        assert (event["outcome"], "answered_at" in event, "operator_id" in event) == (outcome, False, False)
    for status in ("queued", "ringing", "in-progress"):
        out = run(twilio_voice.map_request(twilio_request(twilio_params(status)), c))
        assert out.events == [] and out.dead == [] and out.ignored == [f"status {status}: the call has not ended"]
    child = run(twilio_voice.map_request(twilio_request(twilio_params("completed", ParentCallSid="CAparent")), c))
    assert child.events == [] and len(child.ignored) == 1


def test_twilio_voice_wrong_signature_and_unmappable():
    c = ctx("twilio-voice", secret="auth-token", public_url=URL)
    with pytest.raises(AuthFailed):
        twilio_voice.authenticate(twilio_request(twilio_params("completed"), token="other"), c)
    tampered = twilio_request(twilio_params("completed"))
    tampered.form = twilio_params("completed", From="+10000000000")
    with pytest.raises(AuthFailed):
        twilio_voice.authenticate(tampered, c)
    out = run(twilio_voice.map_request(twilio_request([("Foo", "bar")]), c))
    assert [d.reason for d in out.dead] == ["CallSid or CallStatus missing: not a voice status callback"]
    out = run(twilio_voice.map_request(twilio_request(twilio_params("completed", Timestamp="yesterday")), c))
    assert out.dead[0].reason == "not an RFC 2822 time: 'yesterday'"


# ------------------------------------------------------------------ chatwoot
def chatwoot_request(name: str | bytes, *, stamp: int | None = None, secret="cw-secret"):
    body = data(name) if isinstance(name, str) else name
    stamp = str(int(NOW.timestamp()) if stamp is None else stamp)
    sig = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return request(body, {"X-Chatwoot-Signature": sig, "X-Chatwoot-Timestamp": stamp})


def test_chatwoot_conversation_messages_close_and_csat():
    c = ctx("chatwoot", secret="cw-secret")
    ident = {"visitor_id": "v-77"}
    got = []
    for name in ("chatwoot_conversation_created.json", "chatwoot_message_incoming.json",
                 "chatwoot_message_outgoing.json", "chatwoot_note.json", "chatwoot_resolved.json",
                 "chatwoot_csat.json"):
        req = chatwoot_request(name)
        chatwoot.authenticate(req, c)
        got.append(run(chatwoot.map_request(req, c)))
    base = {"source": "chatwoot", "conversation_id": "chatwoot:1042", "identity": ident}
    assert [e for out in got for e, _ in out.events] == [
        {**base, "event_id": "chatwoot:conversation:1042", "occurred_at": "2026-05-01T10:00:00.000Z",
         "type": "conversation_started", "initiated_by": "visitor", "channel": "chat"},
        {**base, "event_id": "chatwoot:message:90001", "occurred_at": "2026-05-01T10:00:02.000Z", "type": "message",
         "author": "visitor", "text_length": 41},
        {**base, "event_id": "chatwoot:message:90002", "occurred_at": "2026-05-01T10:00:20.000Z", "type": "message",
         "author": "operator", "operator_id": "chatwoot-agent:7", "text_length": 33},
        {**base, "event_id": "chatwoot:resolved:1042:1777629960", "occurred_at": "2026-05-01T10:06:00.000Z",
         "type": "conversation_closed", "resolved": True},
        {**base, "event_id": "chatwoot:csat:90010", "occurred_at": "2026-05-01T10:07:00.000Z",
         "type": "survey_response", "survey": "csat", "score": 4, "operator_id": "chatwoot-agent:7"},
    ]
    assert got[3].ignored and not got[3].dead  # the private note is not a message


def test_chatwoot_wrong_signature_stale_timestamp_and_unmappable():
    c = ctx("chatwoot", secret="cw-secret")
    with pytest.raises(AuthFailed, match="does not match"):
        chatwoot.authenticate(chatwoot_request("chatwoot_message_incoming.json", secret="nope"), c)
    stale = chatwoot_request("chatwoot_message_incoming.json", stamp=int(NOW.timestamp()) - 301)
    with pytest.raises(AuthFailed, match="301 s away from now"):
        chatwoot.authenticate(stale, c)
    chatwoot.authenticate(chatwoot_request("chatwoot_message_incoming.json", stamp=int(NOW.timestamp()) - 299), c)
    body = b'{"event": "message_created", "id": 5, "message_type": "incoming", "content": "hi"}'
    out = run(chatwoot.map_request(chatwoot_request(body), c))
    assert [(d.raw, d.reason) for d in out.dead] == [(body, "message_created: no conversation id")]


# ------------------------------------------------------------------ hubspot-deals
def hubspot_request(body: bytes, stamp_ms: int, secret="hs-secret"):
    uri = "https://leadflow.example/v1/sources/hubspot-deals"
    sig = base64.b64encode(hmac.new(secret.encode(), b"POST" + uri.encode() + body + str(stamp_ms).encode(),
                                    hashlib.sha256).digest()).decode()
    return request(body, {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": str(stamp_ms)},
                   url="http://127.0.0.1:8080/v1/sources/hubspot-deals")


def hubspot_ctx(api=None, api_url=None):
    return ctx("hubspot-deals", api, secret="hs-secret", public_url="https://leadflow.example/v1/sources/hubspot-deals",
               api_url=api_url, token=CRM_TOKEN)


def test_hubspot_won_and_lost_moves_read_the_crm():
    body = data("hubspot_webhook.json")
    now_ms = int(NOW.timestamp() * 1000)

    async def scenario():
        async with recorded_vendor_apis() as standin:
            api = VendorApi()
            c = hubspot_ctx(api, standin.base)
            hubspot_deals.authenticate(hubspot_request(body, now_ms - 299_000), c)
            out = await hubspot_deals.map_request(hubspot_request(body, now_ms), c)
            await api.close()
            return out, standin.requests

    out, served = run(scenario())
    assert served == ["crm deals/9876", "crm deals/9878", "crm contacts/201", "crm contacts/202"]
    assert [e for e, _ in out.events] == [
        {"event_id": "hubspot-deals:1001", "type": "deal_won", "occurred_at": "2026-05-09T12:00:00.000Z",
         "source": "hubspot-deals", "identity": {"crm_contact_id": "hubspot:201", "email": "joe@example.com",
                                                  "phone": "+14155550100"},
         "deal_id": "hubspot:9876", "revenue": "1899.00", "currency": "USD"},
        {"event_id": "hubspot-deals:1004", "type": "deal_lost", "occurred_at": "2026-05-09T12:03:20.000Z",
         "source": "hubspot-deals", "identity": {"crm_contact_id": "hubspot:202", "email": "ann@example.org"},
         "deal_id": "hubspot:9878", "reason": "too expensive"}]
    assert out.ignored == ["deal.creation: not a move to a won or lost stage",
                           "dealstage 'appointmentscheduled': neither won nor lost"]


def test_hubspot_wrong_signature_stale_timestamp_and_unmappable():
    body = data("hubspot_webhook.json")
    now_ms = int(NOW.timestamp() * 1000)
    c = hubspot_ctx()
    with pytest.raises(AuthFailed, match="does not match"):
        hubspot_deals.authenticate(hubspot_request(body, now_ms, secret="wrong"), c)
    with pytest.raises(AuthFailed, match="301 s away"):
        hubspot_deals.authenticate(hubspot_request(body, now_ms - 301_000), c)
    out = run(hubspot_deals.map_request(hubspot_request(b'[{"foo": 1}]', now_ms), c))
    assert [(d.raw, d.reason) for d in out.dead] == [(b'{"foo":1}', "not a HubSpot webhook event (eventId, objectId)")]
    out = run(hubspot_deals.map_request(hubspot_request(b'{"eventId": 1}', now_ms), c))
    assert out.dead[0].reason == "not a JSON array of webhook events"


# ------------------------------------------------------------------ pipedrive-deals
def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_pipedrive_won_deal_and_basic_auth():
    body = data("pipedrive_deal_won.json")
    c = ctx("pipedrive-deals", secret="pd-pass", username="leadflow")
    pipedrive_deals.authenticate(request(body, basic("leadflow", "pd-pass")), c)
    for headers in ({}, basic("leadflow", "wrong"), basic("other", "pd-pass"), {"Authorization": "Basic %%%"}):
        with pytest.raises(AuthFailed):
            pipedrive_deals.authenticate(request(body, headers), c)
    out = run(pipedrive_deals.map_request(request(body), c))
    assert [e for e, _ in out.events] == [{
        "event_id": "pipedrive-deals:31:won:2026-05-09T14:25:28Z", "type": "deal_won",
        "occurred_at": "2026-05-09T14:25:28.000Z", "source": "pipedrive-deals",
        "identity": {"crm_contact_id": "pipedrive:3"}, "deal_id": "pipedrive:31", "revenue": "1250.5",
        "currency": "EUR"}]
    payload = json.loads(body)
    lost = {**payload, "data": {**payload["data"], "status": "lost", "lost_time": "2026-05-10T09:00:00Z",
                                "lost_reason": "went elsewhere"}}
    event = run(pipedrive_deals.map_request(request(json.dumps(lost).encode()), c)).events[0][0]
    assert (event["type"], event["reason"], event["occurred_at"]) == ("deal_lost", "went elsewhere",
                                                                       "2026-05-10T09:00:00.000Z")
    renamed = {**payload, "previous": {"title": "Sofa"}}  # a won deal renamed: not a move to won
    assert run(pipedrive_deals.map_request(request(json.dumps(renamed).encode()), c)).events == []


def test_pipedrive_unmappable():
    out = run(pipedrive_deals.map_request(request(b'{"meta": {"action": "change"}}'), ctx("pipedrive-deals")))
    assert [d.reason for d in out.dead] == ["not a webhooks v2 deal payload: field 'data' missing"]


# ------------------------------------------------------------------ file adapters
OPTIONS = FileOptions(reported_at=datetime(2026, 5, 3, 6, 0, tzinfo=UTC))


def test_asterisk_cdr_groups_rows_by_linkedid_in_local_time():
    out = asterisk_cdr.map_file(data("asterisk_master.csv"), ctx("asterisk-cdr"),
                                FileOptions(OPTIONS.reported_at, timezone="Europe/Berlin"))
    events = [e for e, _ in out.events]
    assert events[0] == {
        "event_id": "asterisk-cdr:1777716600.1", "type": "call_completed", "occurred_at": "2026-05-02T08:15:40.000Z",
        "source": "asterisk-cdr", "identity": {"phone": "+14155550100"}, "call_id": "asterisk:1777716600.1",
        "direction": "inbound", "started_at": "2026-05-02T08:10:00.000Z", "ended_at": "2026-05-02T08:15:40.000Z",
        "outcome": "answered", "answered_at": "2026-05-02T08:10:18.000Z", "operator_id": "anna", "queue": "sales"}
    assert [(e["call_id"], e["direction"], e["outcome"], e["identity"]["phone"]) for e in events[1:]] == [
        ("asterisk:1777737620.5", "inbound", "missed", "+15550102030"),
        ("asterisk:1777741200.7", "outbound", "busy", "+14155550199")]
    assert out.events[0][1].count(b"\n") == 1  # both rows of the call are its original bytes
    assert [d.reason for d in out.dead] == ["line 5: 6 columns; cdr_csv writes 16, 17, 18 or 21"]
    utc = asterisk_cdr.map_file(data("asterisk_master.csv"), ctx("asterisk-cdr"), OPTIONS)
    assert utc.events[0][0]["started_at"] == "2026-05-02T10:10:00.000Z"
    again = asterisk_cdr.map_file(data("asterisk_master.csv"), ctx("asterisk-cdr"), OPTIONS)
    assert [e["event_id"] for e, _ in again.events] == [e["event_id"] for e in events]


def test_google_ads_spend_report():
    out = google_ads_spend.map_file(data("google_ads_campaign_report.csv"), ctx("google-ads-spend"), OPTIONS)
    events = [e for e, _ in out.events]
    assert [(e["campaign_id"], e["date"], e["cost"], e["impressions"], e["clicks"]) for e in events] == [
        ("21000000001", "2026-05-01", "1234.56", 12000, 310), ("21000000001", "2026-05-02", "87.10", 1500, 41),
        ("21000000002", "2026-05-01", "15.00", 300, 12)]
    assert {(e["type"], e["channel"], e["currency"], e["occurred_at"]) for e in events} == {
        ("ad_spend", "search_ads", "USD", "2026-05-03T06:00:00.000Z")}
    assert [d.reason for d in out.dead] == ["line 7: Cost is not a number: 'not a number'"]
    assert out.ignored == ["line 8: a total row", "line 9: a total row"]
    restated = data("google_ads_campaign_report.csv").replace(b"87.10", b"90.00")
    ids = [e["event_id"] for e, _ in google_ads_spend.map_file(restated, ctx("google-ads-spend"), OPTIONS).events]
    assert ids[0] == events[0]["event_id"] and ids[1] != events[1]["event_id"]  # a restated day is a new event
    bad = google_ads_spend.map_file(b"a,b\n1,2\n", ctx("google-ads-spend"), OPTIONS)
    assert bad.events == [] and bad.dead[0].raw == b"a,b\n1,2\n"


@pytest.mark.parametrize("name", ["meta_insights.json", "meta_insights.csv"])
def test_meta_ads_spend_json_and_csv(name):
    out = meta_ads_spend.map_file(data(name), ctx("meta-ads-spend", channel="social_ads"), OPTIONS)
    assert [(e["campaign_id"], e["date"], e["cost"], e["impressions"], e["clicks"], e["channel"])
            for e, _ in out.events] == [
        ("23851234560000", "2026-05-01", "250.40", 40000, 900, "social_ads"),
        ("23851234560000", "2026-05-02", "199.60", 35000, 700, "social_ads")]
    reasons = [d.reason for d in out.dead]
    assert reasons == (["a row over several days: export with time_increment=1"] if name.endswith("json")
                       else ["campaign id missing"])


def test_a_failed_vendor_look_up_refuses_the_delivery():
    """The Graph API does not know the lead (or the token is wrong): UpstreamFailed, so the route
    answers 502, keeps nothing, and Meta's retry brings the delivery again."""
    from services.ingest.sources.base import UpstreamFailed

    body = b'{"entry": [{"id": "1", "changes": [{"field": "leadgen", "value": {"leadgen_id": "999"}}]}]}'

    async def scenario(token):
        async with recorded_vendor_apis() as standin:
            api = VendorApi()
            c = ctx("meta-lead-ads", api, secret="s", api_url=standin.graph_url, token=token)
            try:
                with pytest.raises(UpstreamFailed) as exc:
                    await meta_lead_ads.map_request(request(body), c)
            finally:
                await api.close()
            return str(exc.value)

    assert "answered 400" in run(scenario(GRAPH_TOKEN)) and "Unsupported get request" in run(scenario(GRAPH_TOKEN))
    assert "Invalid OAuth access token" in run(scenario("expired"))

    async def nobody_listening():
        api = VendorApi()
        down = ctx("meta-lead-ads", api, secret="s", api_url="http://127.0.0.1:9/graph", token=GRAPH_TOKEN)
        try:
            with pytest.raises(UpstreamFailed, match="failed"):
                await meta_lead_ads.map_request(request(body), down)
        finally:
            await api.close()

    run(nobody_listening())


def test_sources_tables_sit_beside_a_leadflow_table(tmp_path):
    config = tmp_path / "leadflow.toml"
    config.write_text('[leadflow]\nreporting_currency = "EUR"\n[sources.pipedrive-deals]\nsecret = "pd-S3CRET"\n'
                      'username = "u"\n[sources.chatwoot]\nsecret = "c"\nmax_age_seconds = 60\n')
    settings = load_settings(config)
    assert settings.reporting_currency == "EUR"
    assert (settings.sources["pipedrive-deals"].username, settings.sources["chatwoot"].max_age_seconds) == ("u", 60)
    assert "S3CRET" not in repr(settings) + str(settings) + str(settings.sources["pipedrive-deals"])  # never printed
    config.write_text('[sources.chatwoot]\nsecret = "c"\nsecrett = "typo"\n')
    from leadflow.config import ConfigError

    with pytest.raises(ConfigError, match="sources.chatwoot.secrett"):
        load_settings(config)
