"""hubspot-deals: HubSpot webhook subscriptions on deals (deal.creation, deal.propertyChange).

The body is a JSON array of events (objectId, propertyName, propertyValue, occurredAt in ms,
eventId). X-HubSpot-Signature-v3 = Base64(HMAC-SHA256(client secret, method + URI + body +
X-HubSpot-Request-Timestamp)); a timestamp older than `max_age_seconds` (300) is refused. A move
of `dealstage` to a won stage (`won_stages`) becomes deal_won, to a lost stage deal_lost; the
amount, the currency and the deal's contact (its email and phone) are read from the CRM API at
`api_url` with `token`.
"""
from __future__ import annotations

import asyncio

import orjson

from services.ingest.sources.base import (AuthFailed, Mapping, SourceContext, SourceRequest, Unmappable, b64,
                                          check_fresh, decimal_text, describe, event_id, from_unix, hmac_digest, load_json,
                                          identity, require_secret, same)

NAME = "hubspot-deals"
DEFAULT_API_URL = "https://api.hubapi.com"


def signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    return b64(hmac_digest(secret, method.encode() + uri.encode() + body + timestamp.encode()))


def authenticate(req: SourceRequest, ctx: SourceContext) -> None:
    given, stamp = req.headers.get("X-HubSpot-Signature-v3"), req.headers.get("X-HubSpot-Request-Timestamp")
    if not given or not stamp:
        raise AuthFailed("X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header missing")
    uri = ctx.config.public_url or req.url
    if not same(given, signature(require_secret(ctx.config, NAME), req.method, uri, req.body, stamp)):
        raise AuthFailed("X-HubSpot-Signature-v3 does not match the request")
    try:
        sent_ms = float(stamp)
    except ValueError:
        raise AuthFailed("X-HubSpot-Request-Timestamp is not a time in ms") from None
    check_fresh(sent_ms / 1000, ctx.now.timestamp(), ctx.config.max_age_seconds, "X-HubSpot-Request-Timestamp")


async def fetch_deal(deal_id: str, ctx: SourceContext) -> tuple[dict, dict]:
    """The deal's amount and currency, and its first associated contact's email and phone."""
    base = (ctx.config.api_url or DEFAULT_API_URL).rstrip("/")
    auth = {"Authorization": f"Bearer {ctx.config.token or ''}"}
    deal = await ctx.api.get_json(f"{base}/crm/v3/objects/deals/{deal_id}", headers=auth,
                                  params={"properties": "amount,deal_currency_code,dealstage,closed_lost_reason",
                                          "associations": "contacts"})
    contacts = ((deal.get("associations") or {}).get("contacts") or {}).get("results") or []
    contact: dict = {}
    if contacts:
        contact = await ctx.api.get_json(f"{base}/crm/v3/objects/contacts/{contacts[0]['id']}", headers=auth,
                                         params={"properties": "email,phone"})
    return deal, contact


def deal_event(change: dict, deal: dict, contact: dict, won: bool, ctx: SourceContext) -> dict:
    props = deal.get("properties") or {}
    cprops = contact.get("properties") or {}
    event = {
        "event_id": event_id(NAME, change["eventId"]),
        "type": "deal_won" if won else "deal_lost",
        "occurred_at": from_unix(change["occurredAt"], 1000),
        "source": ctx.source,
        "identity": identity(crm_contact_id=f"hubspot:{contact['id']}" if contact.get("id") else None,
                             email=cprops.get("email"), phone=cprops.get("phone")),
        "deal_id": f"hubspot:{change['objectId']}",
    }
    if won:
        if props.get("amount") in (None, ""):
            raise Unmappable(f"deal {change['objectId']} has no amount in the CRM")
        event["revenue"] = decimal_text(props["amount"], "amount")
        event["currency"] = props.get("deal_currency_code") or ctx.settings.reporting_currency
    elif props.get("closed_lost_reason"):
        event["reason"] = props["closed_lost_reason"]
    return event


async def map_request(req: SourceRequest, ctx: SourceContext) -> Mapping:
    out = Mapping()
    try:
        changes = load_json(req.body)
        if not isinstance(changes, list):
            raise Unmappable("not a JSON array of webhook events")
    except Unmappable as exc:
        out.unmappable(req.body, str(exc))
        return out
    wanted = []
    for change in changes:
        raw = orjson.dumps(change)
        if not isinstance(change, dict) or "eventId" not in change or "objectId" not in change:
            out.unmappable(raw, "not a HubSpot webhook event (eventId, objectId)")
            continue
        kind, prop, value = change.get("subscriptionType"), change.get("propertyName"), change.get("propertyValue")
        if kind != "deal.propertyChange" or prop != "dealstage":
            out.ignore(f"{kind} {prop or ''}".strip() + ": not a move to a won or lost stage")
        elif value in ctx.config.won_stages or value in ctx.config.lost_stages:
            wanted.append((raw, change, value in ctx.config.won_stages))
        else:
            out.ignore(f"dealstage {value!r}: neither won nor lost")
    fetched = await asyncio.gather(*(fetch_deal(str(c["objectId"]), ctx) for _, c, _ in wanted))
    for (raw, change, won), (deal, contact) in zip(wanted, fetched):
        try:
            out.event(deal_event(change, deal, contact, won, ctx), raw)
        except (Unmappable, KeyError, TypeError) as exc:
            out.unmappable(raw, describe(exc))
    return out
