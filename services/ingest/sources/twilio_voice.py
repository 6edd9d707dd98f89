"""twilio-voice: Twilio Programmable Voice status callbacks (form-encoded POSTs).

X-Twilio-Signature = Base64(HMAC-SHA1(auth token, URL + every POST parameter's name and value,
sorted by name)), the URL being the one configured in Twilio (`public_url`, query included).
Twilio calls back at each status of a call (queued, ringing, in-progress, ...); only a terminal
status (completed, busy, failed, no-answer, canceled) ends the call and makes a call_completed.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from services.ingest.sources.base import (AuthFailed, Mapping, SourceContext, SourceRequest, Unmappable, b64,
                                          event_id, from_rfc2822, hmac_digest, identity, iso, require_secret, same)

NAME = "twilio-voice"
TERMINAL = {"completed": "answered", "busy": "busy", "failed": "failed", "no-answer": "missed",
            "canceled": "abandoned"}
NOT_YET = {"queued", "initiated", "ringing", "in-progress"}


def signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature (the algorithm of its helper libraries' RequestValidator)."""
    data = url + "".join(name + value for name, value in sorted(params))
    return b64(hmac_digest(token, data.encode("utf-8"), hashlib.sha1))


def authenticate(req: SourceRequest, ctx: SourceContext) -> None:
    given = req.headers.get("X-Twilio-Signature")
    if not given:
        raise AuthFailed("X-Twilio-Signature header missing")
    url = ctx.config.public_url or req.url
    if not same(given, signature(require_secret(ctx.config, NAME), url, req.form or [])):
        raise AuthFailed("X-Twilio-Signature does not match the URL and parameters")


def call_event(p: dict[str, str], ctx: SourceContext) -> dict:
    outcome = TERMINAL[p["CallStatus"]]
    ended = datetime.fromisoformat(from_rfc2822(p.get("Timestamp")).replace("Z", "+00:00"))
    try:
        duration = int(p.get("CallDuration") or 0)
    except ValueError:
        raise Unmappable(f"CallDuration is not a number: {p.get('CallDuration')!r}") from None
    if outcome == "answered" and duration <= 0:
        outcome = "missed"  # completed with no talk time: nobody picked up
    inbound = p.get("Direction", "inbound") == "inbound"
    customer = p.get("From") if inbound else p.get("To")
    # Twilio says when the call ended and how long it was connected, not when it began ringing
    answered = ended - timedelta(seconds=duration) if outcome == "answered" else None
    event = {
        "event_id": event_id(NAME, p["CallSid"]),
        "type": "call_completed",
        "occurred_at": iso(ended),
        "source": ctx.source,
        "identity": identity(phone=customer),
        "call_id": p["CallSid"],
        "direction": "inbound" if inbound else "outbound",
        "started_at": iso(answered or ended),
        "ended_at": iso(ended),
        "outcome": outcome,
    }
    if answered is not None:
        event["answered_at"] = iso(answered)
        event["operator_id"] = ctx.config.operator_id or "twilio"
    if inbound and p.get("To"):
        event["tracking_number"] = p["To"]
    if ctx.config.campaign_id:
        event["campaign_id"] = ctx.config.campaign_id
    return event


async def map_request(req: SourceRequest, ctx: SourceContext) -> Mapping:
    out = Mapping()
    p = dict(req.form or [])
    status = p.get("CallStatus")
    if not p.get("CallSid") or not status:
        out.unmappable(req.body, "CallSid or CallStatus missing: not a voice status callback")
    elif p.get("ParentCallSid"):
        out.ignore(f"child leg {p['CallSid']} of {p['ParentCallSid']}: the parent call is the contact")
    elif status in NOT_YET:
        out.ignore(f"status {status}: the call has not ended")
    elif status not in TERMINAL:
        out.unmappable(req.body, f"unknown CallStatus {status!r}")
    else:
        try:
            out.event(call_event(p, ctx), req.body)
        except Unmappable as exc:
            out.unmappable(req.body, str(exc))
    return out
