"""pipedrive-deals: Pipedrive webhooks v2 on deals (meta.action create/change, meta.entity deal).

Pipedrive signs nothing: the webhook is set up with HTTP Basic credentials (`username`,
`secret`), compared in constant time. A deal whose status becomes won (or lost) is a deal_won
(deal_lost): data.status, data.value, data.currency; `previous` holds the fields that changed.
"""
from __future__ import annotations

import base64
import binascii

from services.ingest.sources.base import (AuthFailed, Mapping, SourceContext, SourceRequest, Unmappable,
                                          decimal_text, describe, event_id, from_text_time, from_unix, identity, load_json,
                                          require_secret, same)

NAME = "pipedrive-deals"


def authenticate(req: SourceRequest, ctx: SourceContext) -> None:
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        raise AuthFailed("HTTP Basic credentials missing")
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthFailed("HTTP Basic credentials unreadable") from None
    secret = require_secret(ctx.config, NAME)
    # both compared, always: the time taken says nothing about which one was wrong
    if not (same(user, ctx.config.username or "") & same(password, secret)):
        raise AuthFailed("HTTP Basic credentials do not match")


def _time(value) -> str:
    if isinstance(value, (int, float)):
        return from_unix(value)
    if isinstance(value, str) and len(value) == 19 and value[10] == " ":  # v1 style, UTC without offset
        return from_text_time(value + " UTC")
    return from_text_time(value)


def deal_event(payload: dict, ctx: SourceContext) -> dict | None:
    meta, data = payload["meta"], payload["data"]
    previous = payload.get("previous") or {}
    status = data.get("status")
    if meta.get("entity") != "deal" or meta.get("action") not in ("create", "change"):
        return None
    if status not in ("won", "lost") or (meta["action"] == "change" and previous.get("status") in (None, status)):
        return None  # not a move to won or lost (another field changed, or the status did not)
    at = data.get(f"{status}_time") or data.get("update_time") or meta.get("timestamp")
    event = {
        "event_id": event_id(NAME, data["id"], status, at),
        "type": f"deal_{status}",
        "occurred_at": _time(at),
        "source": ctx.source,
        "identity": identity(crm_contact_id=f"pipedrive:{data['person_id']}" if data.get("person_id") else None),
        "deal_id": f"pipedrive:{data['id']}",
    }
    if status == "won":
        event["revenue"] = decimal_text(data.get("value"), "data.value")
        event["currency"] = data.get("currency") or ctx.settings.reporting_currency
    elif data.get("lost_reason"):
        event["reason"] = str(data["lost_reason"])
    return event


async def map_request(req: SourceRequest, ctx: SourceContext) -> Mapping:
    out = Mapping()
    try:
        payload = load_json(req.body)
        event = deal_event(payload, ctx)
    except (Unmappable, KeyError, TypeError, AttributeError) as exc:
        out.unmappable(req.body, f"not a webhooks v2 deal payload: {describe(exc)}")
    else:
        if event is None:
            meta = payload.get("meta") or {}
            out.ignore(f"{meta.get('action')}.{meta.get('entity')}: not a deal won or lost")
        else:
            out.event(event, req.body)
    return out
