"""chatwoot: Chatwoot webhooks (conversation_created, message_created,
conversation_status_changed, message_updated for CSAT).

X-Chatwoot-Signature = "sha256=" + HEX(HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}.{raw body}"));
a timestamp more than `max_age_seconds` (300) away from now is refused (a replayed capture).
"""
from __future__ import annotations

from services.ingest.sources.base import (AuthFailed, Mapping, SourceContext, SourceRequest, Unmappable,
                                          check_fresh, describe, event_id, load_json, from_text_time, from_unix, hmac_digest, identity,
                                          require_secret, same)

NAME = "chatwoot"
CHANNELS = {"Channel::WebWidget": "chat", "Channel::Email": "email", "Channel::FacebookPage": "social",
            "Channel::Instagram": "social", "Channel::TwitterProfile": "social", "Channel::Whatsapp": "messenger",
            "Channel::Telegram": "messenger", "Channel::Line": "messenger", "Channel::Sms": "messenger",
            "Channel::TwilioSms": "messenger", "Channel::Api": "messenger"}
AUTHORS = {"user": "operator", "agent_bot": "bot", "captain_assistant": "bot"}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac_digest(secret, timestamp.encode() + b"." + body).hex()


def authenticate(req: SourceRequest, ctx: SourceContext) -> None:
    given, stamp = req.headers.get("X-Chatwoot-Signature"), req.headers.get("X-Chatwoot-Timestamp")
    if not given or not stamp:
        raise AuthFailed("X-Chatwoot-Signature or X-Chatwoot-Timestamp header missing")
    if not same(given.strip().lower(), signature(require_secret(ctx.config, NAME), stamp, req.body)):
        raise AuthFailed("X-Chatwoot-Signature does not match the timestamp and body")
    try:
        sent = float(stamp)
    except ValueError:
        raise AuthFailed("X-Chatwoot-Timestamp is not a unix time") from None
    check_fresh(sent, ctx.now.timestamp(), ctx.config.max_age_seconds, "X-Chatwoot-Timestamp")


def _time(value) -> str:
    return from_unix(value) if isinstance(value, (int, float)) else from_text_time(value)


def _conversation(payload: dict) -> dict:
    conv = payload.get("conversation") if payload.get("event", "").startswith("message_") else payload
    if not isinstance(conv, dict) or conv.get("id") is None:
        raise Unmappable("no conversation id")
    return conv


def _conversation_id(conv: dict) -> str:
    return f"chatwoot:{conv['id']}"


def _contact_identity(conv: dict, payload: dict) -> dict[str, str]:
    contact = (conv.get("meta") or {}).get("sender") or {}
    sender = payload.get("sender") or {}
    if not contact and sender.get("type") == "contact":
        contact = sender
    if not contact:
        return {}
    visitor = contact.get("identifier") or (f"chatwoot-contact:{contact['id']}" if contact.get("id") else None)
    return identity(visitor_id=visitor, email=contact.get("email"), phone=contact.get("phone_number"))


def _envelope(payload: dict, conv: dict, kind: str, *ids, occurred: str, ctx: SourceContext) -> dict:
    event = {"event_id": event_id(NAME, kind, *ids), "occurred_at": occurred, "source": ctx.source,
             "conversation_id": _conversation_id(conv)}
    ident = _contact_identity(conv, payload)
    if ident:
        event["identity"] = ident
    return event


def conversation_started(payload: dict, ctx: SourceContext) -> dict:
    conv = _conversation(payload)
    first = next(iter(conv.get("messages") or []), {})
    by_operator = first.get("message_type") in (1, "outgoing")
    event = _envelope(payload, conv, "conversation", conv["id"], occurred=_time(conv.get("created_at")), ctx=ctx)
    event.update(type="conversation_started", initiated_by="operator" if by_operator else "visitor",
                 channel=CHANNELS.get(conv.get("channel"), ctx.config.channel or "chat"))
    if ctx.config.campaign_id:
        event["campaign_id"] = ctx.config.campaign_id
    return event


def message(payload: dict, ctx: SourceContext) -> dict | None:
    kind = payload.get("message_type")
    if payload.get("private") or kind not in ("incoming", "outgoing", "template"):
        return None  # private notes and activity lines are not messages
    conv = _conversation(payload)
    sender = payload.get("sender") or {}
    author = "visitor" if kind == "incoming" else AUTHORS.get(sender.get("type"), "bot")
    event = _envelope(payload, conv, "message", payload["id"], occurred=_time(payload.get("created_at")), ctx=ctx)
    event.update(type="message", author=author)
    if author == "operator":
        event["operator_id"] = f"chatwoot-agent:{sender['id']}"
    if kind == "template":
        params = (payload.get("additional_attributes") or {}).get("template_params") or {}
        event["template_id"] = str(params.get("name") or "template")
    if isinstance(payload.get("content"), str):
        event["text_length"] = len(payload["content"])
    return event


def closed(payload: dict, ctx: SourceContext) -> dict | None:
    if payload.get("status") != "resolved":
        return None
    conv = _conversation(payload)
    at = conv.get("timestamp") or conv.get("last_activity_at") or conv.get("updated_at")
    event = _envelope(payload, conv, "resolved", conv["id"], at, occurred=_time(at), ctx=ctx)
    event.update(type="conversation_closed", resolved=True)
    return event


def csat(payload: dict, ctx: SourceContext) -> dict | None:
    attrs = payload.get("content_attributes") or {}
    rating = ((attrs.get("submitted_values") or {}).get("csat_survey_response") or {}).get("rating")
    if rating is None:
        return None
    conv = _conversation(payload)
    at = payload.get("updated_at") or payload.get("created_at")
    event = _envelope(payload, conv, "csat", payload["id"], occurred=_time(at), ctx=ctx)
    event.update(type="survey_response", survey="csat", score=rating)
    assignee = (conv.get("meta") or {}).get("assignee") or {}
    if assignee.get("id") is not None:
        event["operator_id"] = f"chatwoot-agent:{assignee['id']}"
    return event


MAPPERS = {"conversation_created": conversation_started, "message_created": message,
           "conversation_status_changed": closed, "message_updated": csat}


async def map_request(req: SourceRequest, ctx: SourceContext) -> Mapping:
    out = Mapping()
    name = None
    try:
        payload = load_json(req.body)
        name = payload.get("event") if isinstance(payload, dict) else None
        mapper = MAPPERS.get(name)
        event = mapper(payload, ctx) if mapper else None
    except (Unmappable, KeyError, TypeError, AttributeError) as exc:
        out.unmappable(req.body, f"{name}: {describe(exc)}" if name else describe(exc))
        return out
    if mapper is None:
        out.ignore(f"event {name!r} carries no contract event")
    elif event is None:
        out.ignore(f"{name} without a contract event (private note, activity, other status, no rating)")
    else:
        out.event(event, req.body)
    return out
