"""google-lead-forms: Google Ads lead form extensions, through their webhook.

The body is JSON: lead_id, user_column_data[] (column_id EMAIL, PHONE_NUMBER, FULL_NAME, ...;
string_value), campaign_id and form_id (64-bit integers), gcl_id, google_key, is_test. Google
signs nothing: the body carries the key set on the form, compared with `secret` in constant
time. The payload has no time: the lead occurred when it arrived. Test leads (is_test, sent by
the form's "Send test data" button) are not leads: they become dead letters of kind
`test_lead`, so a setup can be checked with `leadflow deadletters` without counting them.
"""
from __future__ import annotations

import orjson

from services.ingest.sources.base import (AuthFailed, Mapping, SourceContext, SourceRequest, event_id, identity, iso,
                                          require_secret, same)

NAME = "google-lead-forms"
EMAIL_COLUMNS = ("EMAIL", "WORK_EMAIL")
PHONE_COLUMNS = ("PHONE_NUMBER", "WORK_PHONE")


def _payload(req: SourceRequest) -> dict:
    try:
        payload = orjson.loads(req.body)
    except orjson.JSONDecodeError:
        raise AuthFailed("body is not JSON, so it carries no google_key", status=400) from None
    if not isinstance(payload, dict):
        raise AuthFailed("body is not a JSON object, so it carries no google_key", status=400)
    return payload


def authenticate(req: SourceRequest, ctx: SourceContext) -> None:
    key = _payload(req).get("google_key")
    if not isinstance(key, str) or not key:
        raise AuthFailed("google_key missing")
    if not same(key, require_secret(ctx.config, NAME)):
        raise AuthFailed("google_key does not match")


def _column(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((columns[n] for n in names if columns.get(n)), None)


async def map_request(req: SourceRequest, ctx: SourceContext) -> Mapping:
    out = Mapping()
    payload = _payload(req)
    if payload.get("is_test") is True:
        out.unmappable(req.body, "Google test lead (is_test): not counted as a lead", kind="test_lead")
        return out
    lead_id = payload.get("lead_id")
    if not isinstance(lead_id, str) or not lead_id:
        out.unmappable(req.body, "lead_id missing")
        return out
    columns = {c.get("column_id"): c.get("string_value") for c in payload.get("user_column_data") or []
               if isinstance(c, dict)}
    event = {
        "event_id": event_id(NAME, lead_id),
        "type": "lead",
        "occurred_at": iso(ctx.now),
        "source": ctx.source,
        "identity": identity(email=_column(columns, EMAIL_COLUMNS), phone=_column(columns, PHONE_COLUMNS)),
        "lead_id": lead_id,
        "channel": ctx.config.channel or "search_ads",
        "form": "lead_form",
    }
    campaign = payload.get("campaign_id") or ctx.config.campaign_id
    if campaign is not None:
        event["campaign_id"] = str(campaign)  # a 64-bit integer: orjson reads it exactly
    for key in ("form_id", "gcl_id"):
        if payload.get(key) is not None:
            event[key] = str(payload[key])
    out.event(event, req.body)
    return out
