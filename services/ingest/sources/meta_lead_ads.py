"""meta-lead-ads: Meta (Facebook / Instagram) lead ads, through the Page `leadgen` webhook.

The webhook holds ids only (entry[].changes[].value: leadgen_id, form_id, ad_id, adgroup_id,
page_id, created_time in unix seconds); the lead itself (field_data, campaign_id,
created_time) is read from the Graph API at `api_url` with the page token. Signed as GitHub
signs: X-Hub-Signature-256 = "sha256=" + HEX(HMAC-SHA256(app secret, raw body)).
"""
from __future__ import annotations

import asyncio

import orjson

from services.ingest.sources.base import (AuthFailed, Mapping, SourceContext, SourceRequest, Unmappable,
                                          event_id, from_text_time, from_unix, hmac_digest, identity,
                                          require_secret, same)

NAME = "meta-lead-ads"
DEFAULT_API_URL = "https://graph.facebook.com/v21.0"
LEAD_FIELDS = "id,created_time,field_data,campaign_id,ad_id,form_id,is_organic"
EMAIL_FIELDS = ("email", "work_email")
PHONE_FIELDS = ("phone_number", "work_phone_number", "phone")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac_digest(secret, body).hex()


def authenticate(req: SourceRequest, ctx: SourceContext) -> None:
    given = req.headers.get("X-Hub-Signature-256")
    if not given:
        raise AuthFailed("X-Hub-Signature-256 header missing")
    if not same(given.strip().lower(), signature(require_secret(ctx.config, NAME), req.body)):
        raise AuthFailed("X-Hub-Signature-256 does not match the body")


def challenge(req: SourceRequest, ctx: SourceContext) -> str:
    """The GET subscription check: echo hub.challenge when hub.verify_token is ours."""
    expected = ctx.config.verify_token
    if expected is None:
        raise AuthFailed(f"{NAME}: no verify_token configured ([sources.{NAME}] verify_token)", status=403)
    if req.query.get("hub.mode") != "subscribe" or not same(req.query.get("hub.verify_token", ""), expected):
        raise AuthFailed("hub.mode is not subscribe or hub.verify_token does not match", status=403)
    return req.query.get("hub.challenge", "")


def _first(field_data: dict[str, list], names: tuple[str, ...]) -> str | None:
    for name in names:
        values = field_data.get(name) or []
        if values and isinstance(values[0], str) and values[0].strip():
            return values[0]
    return None


def lead_event(change: dict, lead: dict, ctx: SourceContext) -> dict:
    """A Graph API lead (and the webhook change that announced it) as a contract `lead`."""
    fields = {f.get("name"): f.get("values") for f in lead.get("field_data") or [] if isinstance(f, dict)}
    occurred = (from_text_time(lead["created_time"]) if lead.get("created_time")
                else from_unix(change.get("created_time")))
    event = {
        "event_id": event_id(NAME, change["leadgen_id"]),
        "type": "lead",
        "occurred_at": occurred,
        "source": ctx.source,
        "identity": identity(email=_first(fields, EMAIL_FIELDS), phone=_first(fields, PHONE_FIELDS)),
        "lead_id": str(change["leadgen_id"]),
        "channel": ctx.config.channel or "social_ads",
        "form": "lead_ad",
        "form_id": str(change.get("form_id") or lead.get("form_id") or ""),
        "ad_id": str(change.get("ad_id") or lead.get("ad_id") or ""),
    }
    campaign = lead.get("campaign_id") or ctx.config.campaign_id
    if campaign:
        event["campaign_id"] = str(campaign)
    return {k: v for k, v in event.items() if v != ""}


async def fetch_lead(leadgen_id: str, ctx: SourceContext) -> dict:
    base = (ctx.config.api_url or DEFAULT_API_URL).rstrip("/")
    return await ctx.api.get_json(f"{base}/{leadgen_id}", params={"access_token": ctx.config.token or "",
                                                                  "fields": LEAD_FIELDS})


async def map_request(req: SourceRequest, ctx: SourceContext) -> Mapping:
    out = Mapping()
    try:
        payload = orjson.loads(req.body)
        entries = payload["entry"]
        changes = [(change, entry) for entry in entries for change in entry.get("changes", [])]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        out.unmappable(req.body, f"not a leadgen webhook (entry[].changes[]): {exc}")
        return out
    wanted = []
    for change, entry in changes:
        raw = orjson.dumps({"entry_id": entry.get("id"), "change": change})
        value = change.get("value") if isinstance(change, dict) else None
        if not isinstance(change, dict) or change.get("field") != "leadgen":
            out.ignore(f"change of field {change.get('field') if isinstance(change, dict) else None!r}")
        elif not isinstance(value, dict) or not value.get("leadgen_id"):
            out.unmappable(raw, "leadgen change without value.leadgen_id")
        else:
            wanted.append((raw, value))
    leads = await asyncio.gather(*(fetch_lead(str(v["leadgen_id"]), ctx) for _, v in wanted))
    for (raw, value), lead in zip(wanted, leads):
        try:
            out.event(lead_event(value, lead, ctx), raw)
        except Unmappable as exc:
            out.unmappable(raw, str(exc))
    return out
