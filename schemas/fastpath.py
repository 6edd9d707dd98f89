"""A fast path for the common case of `validate_event`: a plain, valid event.

`dump_valid(obj, ctx)` returns exactly `validate_event(obj, ctx).model_dump(mode="json",
exclude_none=True)` for an event it is sure of, and None for anything else: an invalid event,
an unknown top-level field (kept in `extra`), a value of an unusual type, a type whose fields
it does not know. The caller then takes the full path (`validate_event`), which gives the
errors, so error messages and dead letters never come from here.

It reuses the contract's own parsers (timestamps, dates, money, currencies, e-mail and phone
normalisation) and reads the field order, required fields and per-type rules (identity
required, channel set, money field) from the pydantic models, so a field added to a model
without a rule here turns the fast path off for that type instead of letting it guess. Tested
against the full path on the samples and on generated events (tests/test_fastpath.py).
"""
from __future__ import annotations

import datetime as dt
import re
import typing
from decimal import Decimal
from typing import Any, Callable

from .events import EVENT_MODELS, ContractContext, parse_date, parse_timestamp
from .identity import normalize_email, normalize_phone
from .money import convert, parse_currency, parse_money, parse_positive_money

__all__ = ["dump_valid"]


class _Decline(Exception):
    """Not a case the fast path is sure of: take the full path.

    Raised as the class, so each raise makes a new instance: re-raising one shared instance
    chains every raise's traceback onto it (CPython prepends to the instance's __traceback__),
    which kept every declined event's frames alive (5.3 GiB after replaying 1M events)."""
Check = Callable[[Any, ContractContext], Any]  # wire value -> dumped value, or raises


def _fmt_ts(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _id(v: Any, ctx: ContractContext) -> str:
    if type(v) is not str or not v:
        raise _Decline
    return v


def _exactly(kind: type) -> Check:
    """A value of exactly this JSON type (strict: no bool for int, no int for float)."""
    def check(v: Any, ctx: ContractContext) -> Any:
        if type(v) is not kind:
            raise _Decline
        return v
    return check


_text, _int, _bool = _exactly(str), _exactly(int), _exactly(bool)


def _bounded(limit: int) -> Check:
    def check(v: Any, ctx: ContractContext) -> str:
        if type(v) is not str or not v or len(v) > limit:
            raise _Decline
        return v
    return check


# the usual spelling: UTC with Z, whole seconds or up to milliseconds; others go through parse_timestamp
_UTC_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]{1,3}))?Z")
_fromisoformat = dt.datetime.fromisoformat


def _parse_ts(v: Any) -> tuple[dt.datetime, str]:
    """(the time, its dump) of a timestamp the contract accepts; _Decline otherwise."""
    if type(v) is not str:
        raise _Decline
    m = _UTC_Z.fullmatch(v)
    if m is not None:
        try:
            parsed = _fromisoformat(v)  # the calendar: no 30 February, no hour 25
        except ValueError:
            raise _Decline from None
        frac = m.group(1)
        if frac is None or frac.strip("0") == "":
            return parsed, v[:19] + "Z"
        return parsed, f"{v[:19]}.{frac.ljust(6, '0')}Z"
    try:
        parsed = parse_timestamp(v)
    except Exception:
        raise _Decline from None
    return parsed, _fmt_ts(parsed)


def _timestamp(v: Any, ctx: ContractContext) -> str:
    return _parse_ts(v)[1]


def _occurred_at(v: Any, ctx: ContractContext) -> str:
    parsed, dumped = _parse_ts(v)
    if parsed > ctx._latest_occurred_at:  # type: ignore[attr-defined]
        raise _Decline
    return dumped


def _date(v: Any, ctx: ContractContext) -> str:
    try:
        return parse_date(v).isoformat()
    except Exception:
        raise _Decline from None


def _money(parse: Callable[[Any], Decimal]) -> Check:
    def check(v: Any, ctx: ContractContext) -> Decimal:  # converted by the event rule below
        if type(v) not in (int, float, str):
            raise _Decline
        try:
            return parse(v)
        except Exception:
            raise _Decline from None
    return check


def _currency(v: Any, ctx: ContractContext) -> str:
    try:
        code = parse_currency(v)
    except Exception:
        raise _Decline from None
    if code != ctx.reporting_currency and code not in ctx.rates:
        raise _Decline
    return code


def _count(v: Any, ctx: ContractContext) -> int:
    if type(v) is not int or v < 0:
        raise _Decline
    return v


def _str_map(v: Any, ctx: ContractContext) -> dict:
    if type(v) is not dict:
        raise _Decline
    for val in v.values():
        if type(val) is not str:
            raise _Decline
    return dict(v)


def _marketing(v: Any, ctx: ContractContext) -> str:
    if type(v) is not str or v not in ctx.marketing_channels:
        raise _Decline
    return v


def _conversation(v: Any, ctx: ContractContext) -> str:
    if type(v) is not str or v not in ctx.conversation_channels:
        raise _Decline
    return v


def _literal(values: tuple) -> Check:
    allowed = frozenset(values)

    def check(v: Any, ctx: ContractContext) -> str:
        if type(v) is not str or v not in allowed:
            raise _Decline
        return v
    return check


def _identity(v: Any, ctx: ContractContext) -> dict | None:
    """Identity's dump: its known keys in model order, email and phone normalised; None when empty."""
    if type(v) is not dict:
        raise _Decline
    out = {}
    for key in ("visitor_id", "email", "phone", "crm_contact_id"):
        val = v.get(key)
        if val is None:
            continue
        if type(val) is not str or not val:
            raise _Decline
        if key == "email":
            try:
                val = normalize_email(val)
            except ValueError:
                raise _Decline from None
        elif key == "phone":
            try:
                val = normalize_phone(val)
            except ValueError:
                raise _Decline from None
        out[key] = val
    return out or None


# wire field -> check; a field of a model that is not here turns the fast path off for that model
_CHECKS: dict[str, Check] = {
    "event_id": _bounded(128), "source": _bounded(64), "occurred_at": _occurred_at, "identity": _identity,
    "campaign_id": _id, "lead_id": _id, "conversation_id": _id, "operator_id": _id, "template_id": _id,
    "from_operator_id": _id, "to_operator_id": _id, "call_id": _id, "deal_id": _id, "payment_id": _id,
    "landing_url": _text, "form": _text, "queue": _text, "tracking_number": _text, "reason": _text,
    "utm": _str_map, "date": _date, "started_at": _timestamp, "answered_at": _timestamp, "ended_at": _timestamp,
    "impressions": _count, "clicks": _count, "text_length": _count, "score": _int, "resolved": _bool,
    "cost": _money(parse_money), "amount": _money(parse_money), "revenue": _money(parse_positive_money),
    "currency": _currency,
}
_DERIVED = ("extra", "original_currency", "original_value")  # not on the wire


def _type_marker(v: Any, ctx: ContractContext) -> Any:  # markers: the plan's places of `type` and `extra`
    raise AssertionError


def _extra_marker(v: Any, ctx: ContractContext) -> Any:
    raise AssertionError


_MONEY_LAST = ("original_currency", "original_value")


def _plan(model) -> tuple[tuple[str, Check | None, bool], ...] | None:
    """(field, check, required) in dump order, or None when a field has no check here."""
    plan = []
    for name, info in model.model_fields.items():
        if name == "type":
            plan.append((name, _type_marker, True))
            continue
        if name == "extra":
            plan.append((name, _extra_marker, False))
            continue
        if name in _MONEY_LAST:
            continue
        check = _CHECKS.get(name)
        if typing.get_origin(info.annotation) is typing.Literal:
            check = _literal(typing.get_args(info.annotation))
        elif name == "channel":
            check = {"marketing": _marketing, "conversation": _conversation}.get(model.CHANNELS)
        if check is None:
            return None
        plan.append((name, None if check is _id else check, info.is_required()))  # None: checked inline
    if model.MONEY_FIELD is not None and tuple(model.model_fields)[-2:] != _MONEY_LAST:
        return None  # the money fields as sent are expected last
    return tuple(plan)


def _rule_message(out: dict) -> bool:
    return out.get("author") != "operator" or "operator_id" in out


def _rule_call(out: dict) -> bool:
    # ISO strings of UTC times in one format compare like the times
    started, answered, ended = out["started_at"], out.get("answered_at"), out["ended_at"]
    if answered is not None and (_key(answered) < _key(started) or _key(ended) < _key(answered)):
        return False
    if _key(ended) < _key(started):
        return False
    return out["outcome"] != "answered" or "operator_id" in out


def _key(ts: str) -> str:
    """A dumped UTC timestamp in a form that sorts like the time (`...:00Z` and `...:00.400000Z`)."""
    return ts[:-1] if "." in ts else ts[:-1] + ".000000"


_SCORES = {"nps": (0, 10), "csat": (1, 5)}


def _rule_survey(out: dict) -> bool:
    low, high = _SCORES[out["survey"]]
    return low <= out["score"] <= high


def _rule_lead(out: dict) -> bool:
    identity = out["identity"]
    return "email" in identity or "phone" in identity


_RULES: dict[str, Callable[[dict], bool]] = {
    "message": _rule_message, "call_completed": _rule_call, "survey_response": _rule_survey, "lead": _rule_lead,
}


def _compile(tag: str, fields: tuple[tuple[str, Check | None, bool], ...]) -> Callable[[dict, ContractContext], dict | None]:
    """The plan as one straight function (no loop over fields, ids checked inline): the dump of the
    wire fields in model order, or None; a check may raise _Decline."""
    names: dict[str, Any] = {}
    lines = ["def dump(obj, ctx):", "    out = {}"]
    for i, (name, check, required) in enumerate(fields):
        key = repr(name)
        if check is _type_marker:
            lines.append(f"    out[{key}] = {tag!r}")
        elif check is _extra_marker:
            lines.append(f"    out[{key}] = {{}}")
        elif check is None:  # an id: a non-empty string
            lines.append(f"    v = obj.get({key})")
            if required:
                lines += ["    if type(v) is not str or not v:", "        return None", f"    out[{key}] = v"]
            else:
                lines += ["    if v is not None:", "        if type(v) is not str or not v:", "            return None",
                          f"        out[{key}] = v"]
        else:
            names[f"c{i}"] = check
            lines.append(f"    v = obj.get({key})")
            if required:  # absent, null, or an empty identity where one is required
                lines += ["    if v is None:", "        return None", f"    v = c{i}(v, ctx)", "    if v is None:",
                          "        return None", f"    out[{key}] = v"]
            else:
                lines += ["    if v is not None:", f"        v = c{i}(v, ctx)", "        if v is not None:",
                          f"            out[{key}] = v"]
    lines.append("    return out")
    exec("\n".join(lines), names)  # noqa: S102 - the source is made above from the models' field names
    return names["dump"]


class _TypePlan(typing.NamedTuple):
    wire: frozenset
    dump: Callable[[dict, ContractContext], dict | None]
    money: str | None
    rule: Callable[[dict], bool] | None


_PLANS: dict[str, _TypePlan] = {}
for _name, _model in EVENT_MODELS.items():
    _fields = _plan(_model)
    if _fields is not None:
        _PLANS[_name] = _TypePlan(_model.WIRE_FIELDS, _compile(_name, _fields), _model.MONEY_FIELD, _RULES.get(_name))


def dump_valid(obj: Any, ctx: ContractContext) -> dict | None:
    """The JSON dump of the valid event `obj` (as validate_event + model_dump(mode="json",
    exclude_none=True) give it), or None: take the full path."""
    if type(obj) is not dict:
        return None
    tag = obj.get("type")
    plan = _PLANS.get(tag) if type(tag) is str else None
    if plan is None or not obj.keys() <= plan.wire:
        return None
    try:
        out = plan.dump(obj, ctx)  # built in the model's field order: the dump's key order
    except _Decline:
        return None
    if out is None:
        return None
    if plan.rule is not None and not plan.rule(out):
        return None
    money = plan.money
    if money is not None:  # as the model's after-validator: the value as sent kept, converted
        value, currency = out[money], out["currency"]
        out["original_currency"] = currency
        out["original_value"] = str(value)
        if currency != ctx.reporting_currency:
            value = convert(value, currency, ctx.reporting_currency, ctx.rates)
            out["currency"] = ctx.reporting_currency
        out[money] = str(value)
    return out
