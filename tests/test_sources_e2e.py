"""Source adapters end to end on the real broker and chdb: vendors' payloads in through
`POST /v1/sources/ADAPTER` and `leadflow import`, KPIs out. The Graph and CRM look-ups go to
the loopback stand-in of tests/vendor_standin.py (recorded vendor responses)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from leadflow.config import load_settings
from leadflow.pipeline import Pipeline
from services.attribution.kpis import compute_kpis
from leadflow.serve import running_app
from leadflow.importer import import_file

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.vendor_standin import CRM_TOKEN, DATA, GRAPH_TOKEN, recorded_vendor_apis  # noqa: E402

PUBLIC = "https://leadflow.example/v1/sources"


def sources_settings(settings, api_base: str = "http://127.0.0.1:9"):
    return load_settings(**{**settings.model_dump(), "rates": {"EUR": Decimal("1.1")}, "sources": {
        "meta-lead-ads": {"secret": "app-secret", "verify_token": "vt-1", "api_url": f"{api_base}/graph/v21.0",
                          "token": GRAPH_TOKEN},
        "google-lead-forms": {"secret": "my-google-key"},
        "twilio-voice": {"secret": "auth-token", "public_url": f"{PUBLIC}/twilio-voice", "operator_id": "op-chen"},
        "chatwoot": {"secret": "cw-secret"},
        "hubspot-deals": {"secret": "hs-secret", "public_url": f"{PUBLIC}/hubspot-deals", "api_url": api_base,
                          "token": CRM_TOKEN},
        "pipedrive-deals": {"secret": "pd-pass", "username": "leadflow"},
    }})


def meta(body: bytes, secret="app-secret") -> dict:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def chatwoot(body: bytes, stamp: int | None = None, secret="cw-secret") -> dict:
    ts = str(int(time.time()) if stamp is None else stamp)
    return {"X-Chatwoot-Signature": "sha256=" + hmac.new(secret.encode(), f"{ts}.".encode() + body,
                                                         hashlib.sha256).hexdigest(), "X-Chatwoot-Timestamp": ts}


def hubspot(body: bytes, stamp_ms: int | None = None, secret="hs-secret") -> dict:
    ts = str(int(time.time() * 1000) if stamp_ms is None else stamp_ms)
    msg = b"POST" + f"{PUBLIC}/hubspot-deals".encode() + body + ts.encode()
    return {"X-HubSpot-Signature-v3": base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode(),
            "X-HubSpot-Request-Timestamp": ts, "Content-Type": "application/json"}


def twilio(params: list[tuple[str, str]], token="auth-token") -> tuple[bytes, dict]:
    data = f"{PUBLIC}/twilio-voice" + "".join(k + v for k, v in sorted(params))
    sig = base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return urlencode(params).encode(), {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CALL = [("CallSid", "CA5b2a1fcb0a3b4c5d6e7f80910111213"), ("CallStatus", "completed"), ("CallDuration", "322"),
        ("Direction", "inbound"), ("From", "+14158675309"), ("To", "+18005550100"), ("SequenceNumber", "3"),
        ("Timestamp", "Sat, 02 May 2026 08:15:40 +0000")]


async def _http_scenario(settings, client):
    answers: dict[str, list] = {}
    async with recorded_vendor_apis() as standin:
        settings = sources_settings(settings, standin.base)
        async with Pipeline(settings, settings.kafka_bootstrap, client) as pipe:
            async with running_app(settings, pipe, client, "127.0.0.1", 0) as (addr, publisher):
                base = f"http://{addr[0]}:{addr[1]}/v1/sources"
                async with aiohttp.ClientSession() as http:
                    async def post(name, body, headers=None, key=None):
                        async with http.post(f"{base}/{name}", data=body, headers=headers or {}) as r:
                            answers.setdefault(key or name, []).append(
                                (r.status, await r.json() if r.content_type == "application/json" else await r.text()))

                    async with http.get(f"{base}/meta-lead-ads", params={
                            "hub.mode": "subscribe", "hub.verify_token": "vt-1", "hub.challenge": "1158201444"}) as r:
                        answers["challenge"] = [(r.status, await r.text())]
                    leadgen = (DATA / "meta_leadgen_webhook.json").read_bytes()
                    for _ in range(2):  # Meta retries the delivery: duplicates, never second events
                        await post("meta-lead-ads", leadgen, meta(leadgen))
                    await post("meta-lead-ads", leadgen, meta(leadgen, "wrong"))
                    await post("meta-lead-ads", b'{"object": "page"}', meta(b'{"object": "page"}'))
                    odd = b'{"entry": [{"changes": [{"field": "leadgen", "value": {"leadgen_id": "777777777777"}}]}]}'
                    await post("meta-lead-ads", odd, meta(odd))  # the Graph answers a list: kept, never a 500

                    google = (DATA / "google_lead_form.json").read_bytes()
                    for body in (google, google, google.replace(b"my-google-key", b"guess"),
                                 google.replace(b'"is_test": false', b'"is_test": true'),
                                 b'{"google_key": "my-google-key"}'):
                        await post("google-lead-forms", body)

                    for params in (CALL, CALL, [*CALL[:1], ("CallStatus", "ringing")]):
                        await post("twilio-voice", *twilio(params))
                    await post("twilio-voice", *twilio(CALL, "wrong"))
                    await post("twilio-voice", *twilio([("Foo", "bar")]))

                    for name in ("conversation_created", "message_incoming", "message_outgoing", "note", "resolved",
                                 "csat", "csat"):
                        body = (DATA / f"chatwoot_{name}.json").read_bytes()
                        await post("chatwoot", body, chatwoot(body))
                    await post("chatwoot", body, chatwoot(body, int(time.time()) - 600))
                    await post("chatwoot", body, chatwoot(body, secret="wrong"))
                    await post("chatwoot", b'{"event": "message_created", "message_type": "incoming"}',
                               chatwoot(b'{"event": "message_created", "message_type": "incoming"}'))

                    deals = (DATA / "hubspot_webhook.json").read_bytes()
                    for headers in (hubspot(deals), hubspot(deals), hubspot(deals, int(time.time() * 1000) - 600_000),
                                    hubspot(deals, secret="wrong")):
                        await post("hubspot-deals", deals, headers)
                    await post("hubspot-deals", b'[{"foo": 1}]', hubspot(b'[{"foo": 1}]'))

                    won = (DATA / "pipedrive_deal_won.json").read_bytes()
                    for headers in (basic("leadflow", "pd-pass"), basic("leadflow", "pd-pass"),
                                    basic("leadflow", "wrong"), {}):
                        await post("pipedrive-deals", won, headers)
                    await post("pipedrive-deals", b"{}", basic("leadflow", "pd-pass"))
                    await post("no-such-adapter", b"{}")
                    async with http.get(f"http://{addr[0]}:{addr[1]}/metrics") as r:
                        answers["metrics"] = [await r.text()]
                await pipe.drain(publisher.tracker)
    return settings, answers


def counts(answer) -> tuple:
    """(events taken, dead letters, ignored) of a delivery, or its status code when refused. A
    retried event is taken again: whether ingest answers it `duplicate` at once or the warehouse
    sink drops it by event_id is ingest's business; that it is stored once is checked below."""
    status, body = answer
    if status != 200:
        return status
    return body["accepted"] + body["duplicate"], body["dead_letters"], body["ignored"]


def test_http_adapters_end_to_end(settings, client):
    settings, answers = asyncio.run(_http_scenario(settings, client))
    assert answers["challenge"] == [(200, "1158201444")]
    # (events taken, dead letters, ignored) per delivery; a status code when refused
    assert [counts(a) for a in answers["meta-lead-ads"]] == [(2, 1, 0), (2, 1, 0), 401, (0, 1, 0), (0, 1, 0)]
    assert answers["meta-lead-ads"][4][1]["dead_letter_reasons"][0].startswith(
        "meta-lead-ads adapter failed on this payload: AttributeError")
    assert [counts(a) for a in answers["google-lead-forms"]] == [(1, 0, 0), (1, 0, 0), 401, (0, 1, 0), (0, 1, 0)]
    assert [counts(a) for a in answers["twilio-voice"]] == [(1, 0, 0), (1, 0, 0), (0, 0, 1), 401, (0, 1, 0)]
    assert [counts(a) for a in answers["chatwoot"]] == [(1, 0, 0), (1, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 0),
                                                        (1, 0, 0), (1, 0, 0), 401, 401, (0, 1, 0)]
    assert [counts(a) for a in answers["hubspot-deals"]] == [(2, 0, 2), (2, 0, 2), 401, 401, (0, 1, 0)]
    assert [counts(a) for a in answers["pipedrive-deals"]] == [(1, 0, 0), (1, 0, 0), 401, 401, (0, 1, 0)]
    # every retried delivery gave the same event_ids as the first: the same events, never second ones
    for name, first, retry in (("meta-lead-ads", 0, 1), ("google-lead-forms", 0, 1), ("twilio-voice", 0, 1),
                               ("chatwoot", 5, 6), ("hubspot-deals", 0, 1), ("pipedrive-deals", 0, 1)):
        assert [e["event_id"] for e in answers[name][first][1]["events"]] == \
            [e["event_id"] for e in answers[name][retry][1]["events"]], name
    assert answers["no-such-adapter"][0][0] == 404
    refused = {line.split(" ")[0]: float(line.split(" ")[1]) for line in answers["metrics"][0].splitlines()
               if line.startswith("leadflow_source_deliveries_refused_total{")}
    assert refused['leadflow_source_deliveries_refused_total{adapter="chatwoot",status="401"}'] >= 2
    assert refused['leadflow_source_deliveries_refused_total{adapter="hubspot-deals",status="401"}'] >= 2
    assert "lead" in answers["meta-lead-ads"][0][1]["dead_letter_reasons"][0]  # the lead with no email or phone

    stored = client.query("SELECT type, count() FROM raw_events FINAL GROUP BY type ORDER BY type").result_rows
    assert stored == [("call_completed", 1), ("conversation_closed", 1), ("conversation_started", 1), ("deal_lost", 1),
                      ("deal_won", 2), ("lead", 3), ("message", 2), ("survey_response", 1)]
    dead = client.query("SELECT source, error_kind, count() FROM dead_letters FINAL GROUP BY source, error_kind "
                        "ORDER BY source, error_kind").result_rows
    assert dead == [("chatwoot", "unmappable", 1), ("google-lead-forms", "test_lead", 1),
                    ("google-lead-forms", "unmappable", 1), ("hubspot-deals", "unmappable", 1),
                    ("meta-lead-ads", "schema", 1), ("meta-lead-ads", "unmappable", 2),
                    ("pipedrive-deals", "unmappable", 1), ("twilio-voice", "unmappable", 1)]
    raw = client.query("SELECT raw_payload FROM dead_letters FINAL WHERE error_kind = 'schema'").result_rows[0][0]
    assert json.loads(raw)["change"]["value"]["leadgen_id"] == "666666666666"  # the vendor's bytes, not the mapping

    channels = {r["channel"]: r for r in compute_kpis(client, settings, "channels", model="linear")}
    # Joe's Meta lead (Joe@Example.com) and his HubSpot deal (joe@example.com): one person, a social_ads conversion
    assert (channels["social_ads"]["leads"], channels["social_ads"]["converted_leads"],
            channels["social_ads"]["conversions"], channels["social_ads"]["revenue"]) == (2, 1, 1.0, 1899.0)
    assert channels["search_ads"]["leads"] == 1
    # the Pipedrive deal (EUR 1,250.50 at 1.1) has no touch: (none)
    assert channels["(none)"]["conversions"] == 1.0 and channels["(none)"]["revenue"] == pytest.approx(1375.55)
    service = {r["channel"]: r for r in compute_kpis(client, settings, "service")}
    assert (service["chat"]["conversations"], service["chat"]["frt_median_s"], service["chat"]["sla_rate"],
            service["chat"]["csat"]) == (1, 18.0, 1.0, 1.0)
    assert (service["call"]["calls_offered"], service["call"]["answer_rate"], service["call"]["wait_mean_s"]) == \
        (1, 1.0, 0.0)
    operators = {r["operator_id"]: r for r in compute_kpis(client, settings, "operators")}
    assert (operators["chatwoot-agent:7"]["frt_median_s"], operators["chatwoot-agent:7"]["csat"]) == (18.0, 1.0)


def test_file_adapters_end_to_end(settings, client, tmp_path):
    settings = sources_settings(settings)
    cdr = tmp_path / "Master.csv"
    cdr.write_bytes((DATA / "asterisk_master.csv").read_bytes())
    first = asyncio.run(import_file(settings, "asterisk-cdr", cdr, "Europe/Berlin"))
    again = asyncio.run(import_file(settings, "asterisk-cdr", cdr, "Europe/Berlin"))
    assert (first.mapped, first.accepted, first.duplicates, first.dead_letters) == (3, 3, 0, 1)
    assert (again.mapped, again.accepted, again.duplicates, again.dead_letters) == (3, 0, 3, 1)
    report = tmp_path / "campaign-report.csv"
    report.write_bytes((DATA / "google_ads_campaign_report.csv").read_bytes())
    google = asyncio.run(import_file(settings, "google-ads-spend", report))
    assert (google.accepted, google.dead_letters, google.ignored) == (3, 1, 2)
    insights = tmp_path / "insights.json"
    insights.write_bytes((DATA / "meta_insights.json").read_bytes())
    meta = asyncio.run(import_file(settings, "meta-ads-spend", insights))
    assert (meta.accepted, meta.dead_letters) == (2, 1)  # the weekly row is not a day's spend

    service = {r["channel"]: r for r in compute_kpis(client, settings, "service")}
    call = service["call"]
    assert (call["calls_offered"], call["answer_rate"], call["missed_calls"], call["wait_mean_s"], call["talk_mean_s"]) \
        == (2, 0.5, 1, 18.0, 322.0)
    operators = {r["operator_id"] for r in compute_kpis(client, settings, "operators")}
    assert "anna" in operators
    channels = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert channels["search_ads"]["spend"] == pytest.approx(1234.56 + 87.10 + 15.00)
    assert channels["social_ads"]["spend"] == pytest.approx(250.40 + 199.60)
    dead = client.query("SELECT source, count() FROM dead_letters FINAL GROUP BY source ORDER BY source").result_rows
    assert dead == [("asterisk-cdr", 1), ("google-ads-spend", 1), ("meta-ads-spend", 1)]


def test_import_command(settings, client, tmp_path, capsys):
    from leadflow.cli import main

    config = tmp_path / "leadflow.toml"
    config.write_text(f'kafka_bootstrap = "{settings.kafka_bootstrap}"\nwarehouse_dir = "{settings.warehouse_dir}"\n'
                      f'clickhouse_database = "{settings.clickhouse_database}"\ntopic_prefix = "{settings.topic_prefix}"\n'
                      f'identity_secret = "{settings.identity_secret}"\n'
                      '[sources.meta-ads-spend]\nchannel = "display_ads"\n')
    csv_file = tmp_path / "insights.csv"
    csv_file.write_bytes((DATA / "meta_insights.csv").read_bytes())
    assert main(["import", "meta-ads-spend", str(csv_file), "--config", str(config), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["mapped"], summary["accepted"], summary["dead_letters"]) == (2, 2, 1)
    assert summary["first_reasons"] == ["campaign id missing"]
    channels = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert channels["display_ads"]["spend"] == pytest.approx(450.0)  # the [sources.meta-ads-spend] channel
    for argv, message in ((["import", "nope", str(csv_file)], "invalid choice: 'nope'"),
                          (["import", "asterisk-cdr", str(tmp_path / "missing.csv")], "file not found"),
                          (["import", "asterisk-cdr", str(csv_file), "--timezone", "Mars/Olympus"], "unknown time zone")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
