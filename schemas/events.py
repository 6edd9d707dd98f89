"""Event models: the wire contract of docs/contract/events.md (v1).

Use `validate_event(obj, ctx)` on every decoded JSON value: it returns one of
the event models or raises `ContractError` with *all* problems found, as
`(path, message)` pairs ready for the dead-letter table.

Context-dependent rules (channel sets, reporting currency and rates, the
"not more than 24 h in the future" check) read a `ContractContext` passed as
pydantic validation context; models validated without one use the contract
defaults and the current time.
"""
import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Mapping, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from .identity import IDENTITY_KEYS, Identity
from .money import Currency, Money, PositiveMoney, _json_type, convert

__all__ = [
    "CONTEXT_KEY",
    "CONVERSATION_CHANNELS",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "MARKETING_CHANNELS",
    "AdClick",
    "AdSpend",
    "CallCompleted",
    "ContractContext",
    "ContractError",
    "RateTable",
    "ConversationClosed",
    "ConversationStarted",
    "ConversationTransferred",
    "DealLost",
    "DealWon",
    "Event",
    "EventAdapter",
    "Lead",
    "Message",
    "Payment",
    "SurveyResponse",
    "validate_event",
]

MARKETING_CHANNELS: tuple[str, ...] = (
    "search_ads",
    "social_ads",
    "display_ads",
    "email",
    "organic",
    "referral",
    "direct",
)
CONVERSATION_CHANNELS: tuple[str, ...] = ("chat", "call", "email", "social", "messenger")

MAX_FUTURE = dt.timedelta(hours=24)
CONTEXT_KEY = "contract"  # key of the ContractContext in the pydantic validation context dict

_UTC = dt.timezone.utc


# --------------------------------------------------------------------------- context / errors


def _utcnow() -> dt.datetime:
    return dt.datetime.now(_UTC)


class RateTable(Mapping[str, Decimal]):
    """Read-only, validated rate table (currency -> multiplier into the reporting currency)."""

    __slots__ = ("_rates",)

    def __init__(self, rates: dict[str, Decimal]):
        self._rates = rates

    def __getitem__(self, code: str) -> Decimal:
        return self._rates[code]

    def __iter__(self) -> Any:
        return iter(self._rates)

    def __len__(self) -> int:
        return len(self._rates)

    def __contains__(self, code: object) -> bool:
        return code in self._rates

    def get(self, code: str, default: Any = None) -> Any:
        return self._rates.get(code, default)

    def __repr__(self) -> str:
        return f"RateTable({self._rates!r})"


def _rate_table(raw: Mapping[str, Any]) -> RateTable:
    rates: dict[str, Decimal] = {}
    for code, rate in dict(raw).items():
        if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
            raise ValueError(f"rate table key must be a 3-letter ISO 4217 code, got {code!r}")
        value = rate if isinstance(rate, Decimal) else Decimal(str(rate))
        if not value.is_finite() or value <= 0:
            raise ValueError(f"rate for {code} must be a positive number, got {rate!r}")
        rates[code.upper()] = value
    return RateTable(rates)


@dataclass(frozen=True)
class ContractContext:
    """Configuration the contract depends on.

    `rates` maps a currency to the multiplier into `reporting_currency`.
    `received_at` is the receive time used by the "at most 24 h in the
    future" rule; it defaults to the time the context is created, so a
    long-running consumer should make a fresh one per batch
    (`ctx.at(received_at)`).
    """

    reporting_currency: str = "USD"
    rates: Mapping[str, Decimal] = field(default_factory=dict, hash=False)
    marketing_channels: tuple[str, ...] = MARKETING_CHANNELS
    conversation_channels: tuple[str, ...] = CONVERSATION_CHANNELS
    received_at: dt.datetime = field(default_factory=_utcnow)

    def __post_init__(self) -> None:
        cur = self.reporting_currency
        if not isinstance(cur, str) or len(cur) != 3 or not cur.isascii() or not cur.isalpha():
            raise ValueError(f"reporting_currency must be a 3-letter ISO 4217 code, got {cur!r}")
        received = self.received_at
        if not isinstance(received, dt.datetime) or received.utcoffset() is None:
            raise ValueError("received_at must be a timezone-aware datetime")
        set_ = object.__setattr__
        if not cur.isupper():
            set_(self, "reporting_currency", cur.upper())
        if type(self.rates) is not RateTable:  # already validated when copied with dataclasses.replace()
            set_(self, "rates", _rate_table(self.rates))
        if type(self.marketing_channels) is not tuple:
            set_(self, "marketing_channels", tuple(self.marketing_channels))
        if type(self.conversation_channels) is not tuple:
            set_(self, "conversation_channels", tuple(self.conversation_channels))
        if received.tzinfo is not _UTC:
            set_(self, "received_at", received.astimezone(_UTC))
        # Derived, not dataclass fields.
        set_(self, "_latest_occurred_at", self.received_at + MAX_FUTURE)
        set_(self, "_validation_context", {CONTEXT_KEY: self})

    def at(self, received_at: dt.datetime) -> "ContractContext":
        """The same configuration with another receive time."""
        return dataclasses.replace(self, received_at=received_at)


class ContractError(ValueError):
    """An event that breaks the contract. `.errors` lists every problem found
    as `(path, message)`: path is dotted (`"identity.email"`, `"score"`) or
    `""` for the event as a whole."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = list(errors)
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.errors) or "invalid event")


def _err(msg: str) -> PydanticCustomError:
    return PydanticCustomError("contract", "{msg}", {"msg": msg})


def _context(info: ValidationInfo) -> "ContractContext | None":
    ctx = info.context
    if isinstance(ctx, dict):
        return ctx.get(CONTEXT_KEY)
    return None


# --------------------------------------------------------------------------- field types

_RFC3339 = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]+))?(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_timestamp(value: Any) -> dt.datetime:
    """RFC 3339 timestamp string with offset, ms precision or coarser -> aware UTC datetime."""
    if isinstance(value, dt.datetime):  # Python callers
        if value.utcoffset() is None:
            raise _err("timestamp has no UTC offset (naive datetime)")
        parsed = value
    else:
        if not isinstance(value, str):
            raise _err(f"must be an RFC 3339 timestamp string, got {_json_type(value)}")
        m = _RFC3339.fullmatch(value)
        if m is None:
            raise _err(f"{value!r} is not an RFC 3339 timestamp (expected e.g. 2026-05-01T10:00:00.120Z)")
        offset = m.group("offset")
        if offset is None:
            raise _err(f"timestamp {value!r} has no UTC offset (add Z or e.g. +03:00)")
        frac = m.group("frac")
        if frac and len(frac) > 3:
            raise _err(f"timestamp {value!r} is finer than milliseconds (the contract allows ms precision or coarser)")
        text = f"{m.group('date')}T{m.group('time')}{'.' + frac[:6].ljust(6, '0') if frac else ''}"
        text += "+00:00" if offset in ("Z", "z") else offset
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _err(f"{value!r} is not a valid date and time") from None
    if parsed.tzinfo is not _UTC:
        parsed = parsed.astimezone(_UTC)
    us = parsed.microsecond % 1000
    if us:
        parsed = parsed.replace(microsecond=parsed.microsecond - us)
    return parsed


def parse_date(value: Any) -> dt.date:
    """`YYYY-MM-DD` string -> date."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise _err(f"must be a YYYY-MM-DD date string, got {_json_type(value)}")
    if len(value) != 10 or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise _err(f"{value!r} is not a YYYY-MM-DD date")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _err(f"{value!r} is not a valid date") from None


Timestamp = Annotated[dt.datetime, BeforeValidator(parse_timestamp)]
Date = Annotated[dt.date, BeforeValidator(parse_date)]
Id = Annotated[str, StringConstraints(min_length=1)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Source = Annotated[str, StringConstraints(min_length=1, max_length=64)]
NonNegativeInt = Annotated[int, Field(ge=0)]


# --------------------------------------------------------------------------- base

def _schema_type_required(schema: dict[str, Any], cls: type) -> None:
    """On the wire `type` is required (it selects the model); the Python-side
    default is a convenience for code that builds events directly."""
    type_schema = schema.get("properties", {}).get("type")
    if type_schema is not None:
        type_schema.pop("default", None)
        required = schema.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")


_MODEL_CONFIG = ConfigDict(strict=True, frozen=True, extra="ignore", json_schema_extra=_schema_type_required)


class _Envelope(BaseModel):
    """Fields every event has."""

    model_config = _MODEL_CONFIG

    event_id: EventId = Field(description="Globally unique; the idempotency key.")
    type: str = Field(description="The event type.")
    occurred_at: Timestamp = Field(
        description="When it happened at the source: RFC 3339 with offset; stored in UTC, ms precision."
    )
    source: Source = Field(description="The producing system, e.g. site-chat, pbx, ads-meta, crm.")
    identity: Identity | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, v: dt.datetime, info: ValidationInfo) -> dt.datetime:
        ctx = _context(info)
        if ctx is not None:
            latest = ctx._latest_occurred_at  # type: ignore[attr-defined]
            received = ctx.received_at
        else:
            received = _utcnow()
            latest = received + MAX_FUTURE
        if v > latest:
            raise _err(
                f"occurred_at {v.isoformat().replace('+00:00', 'Z')} is more than 24 h after the receive time "
                f"{received.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
            )
        return v


class _EventBase(_Envelope):
    # Per-type rules, read by the shared validators.
    IDENTITY_REQUIRED: ClassVar[bool] = False
    CHANNELS: ClassVar[str | None] = None  # "marketing" | "conversation"
    MONEY_FIELD: ClassVar[str | None] = None
    WIRE_FIELDS: ClassVar[frozenset[str]] = frozenset()

    extra: SkipJsonSchema[dict[str, Any]] = Field(
        default_factory=dict, description="Unknown top-level fields, kept as sent."
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.keys() <= cls.WIRE_FIELDS:
            wire = cls.WIRE_FIELDS
            known = {k: v for k, v in data.items() if k in wire}
            known["extra"] = {k: v for k, v in data.items() if k not in wire}
            return known
        return data

    @field_validator("identity")
    @classmethod
    def _identity(cls, v: Identity | None) -> Identity | None:
        if v is not None and v.is_empty:
            v = None
        if v is None and cls.IDENTITY_REQUIRED:
            kind = cls.model_fields["type"].default
            raise _err(f"{kind} needs an identity with at least one of {', '.join(IDENTITY_KEYS)}")
        return v

    @field_validator("channel", check_fields=False)
    @classmethod
    def _channel(cls, v: str, info: ValidationInfo) -> str:
        kind = cls.CHANNELS
        if kind is None:
            return v
        ctx = _context(info)
        if kind == "marketing":
            names = ctx.marketing_channels if ctx is not None else MARKETING_CHANNELS
        else:
            names = ctx.conversation_channels if ctx is not None else CONVERSATION_CHANNELS
        if v not in names:
            raise _err(f"channel {v!r} is not a {kind} channel (one of {', '.join(names)})")
        return v

    @field_validator("currency", check_fields=False)
    @classmethod
    def _currency_known(cls, v: str, info: ValidationInfo) -> str:
        ctx = _context(info)
        reporting = ctx.reporting_currency if ctx is not None else "USD"
        rates = ctx.rates if ctx is not None else {}
        if v != reporting and v not in rates:
            raise _err(f"currency {v} is neither the reporting currency {reporting} nor in the rate table")
        return v

    @model_validator(mode="after")
    def _to_reporting_currency(self, info: ValidationInfo) -> Any:
        name = self.MONEY_FIELD
        if name is None:
            return self
        ctx = _context(info)
        reporting = ctx.reporting_currency if ctx is not None else "USD"
        rates = ctx.rates if ctx is not None else {}
        d = self.__dict__
        value = d[name]
        currency = d["currency"]
        d["original_currency"] = currency
        d["original_value"] = value
        if currency != reporting:
            converted = convert(value, currency, reporting, rates)
            if converted is None:  # unreachable: the currency validator checked the rate table
                raise _err(f"currency {currency} is neither the reporting currency {reporting} nor in the rate table")
            d[name] = converted
            d["currency"] = reporting
        self.__pydantic_fields_set__.update(("original_currency", "original_value"))
        return self


def _finish(cls: type[_EventBase]) -> type[_EventBase]:
    """Compute the set of wire field names (everything but the derived ones)."""
    cls.WIRE_FIELDS = frozenset(cls.model_fields) - {"extra", "original_currency", "original_value"}
    return cls


MarketingChannel = Annotated[
    str,
    StringConstraints(min_length=1),
    Field(description="Marketing channel: " + ", ".join(MARKETING_CHANNELS) + " (more by configuration)."),
]
ConversationChannel = Annotated[
    str,
    StringConstraints(min_length=1),
    Field(description="Conversation channel: " + ", ".join(CONVERSATION_CHANNELS) + " (more by configuration)."),
]


# --------------------------------------------------------------------------- types


@_finish
class AdSpend(_EventBase):
    """What a campaign cost on a day. No identity. A later occurred_at for the
    same (campaign_id, date) replaces the earlier one."""

    CHANNELS: ClassVar[str | None] = "marketing"
    MONEY_FIELD: ClassVar[str | None] = "cost"

    type: Literal["ad_spend"] = "ad_spend"
    campaign_id: Id
    channel: MarketingChannel
    date: Date = Field(description="The reporting day, YYYY-MM-DD.")
    cost: Money
    currency: Currency
    impressions: NonNegativeInt | None = None
    clicks: NonNegativeInt | None = None
    # Derived (not on the wire): the value as sent.
    original_currency: SkipJsonSchema[str | None] = Field(None, description="Currency as sent; `currency` is the reporting currency.")
    original_value: SkipJsonSchema[Decimal | None] = Field(None, description="Money value as sent, before conversion.")


@_finish
class AdClick(_EventBase):
    """A visitor arrived from a campaign. Identity required (normally visitor_id). A marketing touch."""

    IDENTITY_REQUIRED: ClassVar[bool] = True
    CHANNELS: ClassVar[str | None] = "marketing"

    type: Literal["ad_click"] = "ad_click"
    identity: Identity
    campaign_id: Id
    channel: MarketingChannel
    landing_url: str | None = None
    utm: dict[str, str] | None = None


@_finish
class Lead(_EventBase):
    """Contact details were captured. Identity required, with email or phone.
    A marketing touch; counted by distinct lead_id."""

    IDENTITY_REQUIRED: ClassVar[bool] = True
    CHANNELS: ClassVar[str | None] = "marketing"

    type: Literal["lead"] = "lead"
    identity: Identity
    lead_id: Id
    channel: MarketingChannel
    campaign_id: Id | None = None
    form: str | None = Field(None, description="e.g. site_form, lead_ad, chat, call.")

    @field_validator("identity")
    @classmethod
    def _email_or_phone(cls, v: Identity | None) -> Identity | None:
        if v is not None and v.email is None and v.phone is None:
            raise _err("lead needs identity.email or identity.phone")
        return v


@_finish
class ConversationStarted(_EventBase):
    """A conversation began (initiated_by operator/bot = proactive invitation). Identity required. A touch."""

    IDENTITY_REQUIRED: ClassVar[bool] = True
    CHANNELS: ClassVar[str | None] = "conversation"

    type: Literal["conversation_started"] = "conversation_started"
    identity: Identity
    conversation_id: Id
    channel: ConversationChannel
    initiated_by: Literal["visitor", "operator", "bot"]
    campaign_id: Id | None = None


@_finish
class Message(_EventBase):
    """One message of a conversation (text is never sent nor stored)."""

    type: Literal["message"] = "message"
    conversation_id: Id
    author: Literal["visitor", "operator", "bot"]
    operator_id: Id | None = Field(None, validate_default=True, description="Required when author is operator.")
    template_id: Id | None = Field(None, description="A canned reply was used.")
    text_length: NonNegativeInt | None = None

    @field_validator("operator_id")
    @classmethod
    def _operator_required(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("author") == "operator":
            raise _err("operator_id is required when author is 'operator'")
        return v


@_finish
class ConversationTransferred(_EventBase):
    """A conversation moved from one operator to another."""

    type: Literal["conversation_transferred"] = "conversation_transferred"
    conversation_id: Id
    from_operator_id: Id
    to_operator_id: Id


@_finish
class ConversationClosed(_EventBase):
    """A conversation ended."""

    type: Literal["conversation_closed"] = "conversation_closed"
    conversation_id: Id
    resolved: bool | None = None


def _fmt(ts: dt.datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@_finish
class CallCompleted(_EventBase):
    """One call detail record, sent when the call ends. Identity required (the
    caller's phone). started_at <= answered_at <= ended_at."""

    IDENTITY_REQUIRED: ClassVar[bool] = True

    type: Literal["call_completed"] = "call_completed"
    identity: Identity
    call_id: Id
    direction: Literal["inbound", "outbound"]
    started_at: Timestamp = Field(description="Ringing or dial began.")
    answered_at: Timestamp | None = None
    ended_at: Timestamp
    outcome: Literal["answered", "missed", "abandoned", "busy", "failed"]
    operator_id: Id | None = Field(None, validate_default=True, description="Required if outcome is answered.")
    queue: str | None = None
    tracking_number: str | None = Field(None, description="The number the caller dialled (call tracking).")
    campaign_id: Id | None = None

    @field_validator("answered_at")
    @classmethod
    def _answered_after_start(cls, v: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        started = info.data.get("started_at")
        if v is not None and started is not None and v < started:
            raise _err(f"answered_at {_fmt(v)} is before started_at {_fmt(started)}")
        return v

    @field_validator("ended_at")
    @classmethod
    def _ended_last(cls, v: dt.datetime, info: ValidationInfo) -> dt.datetime:
        answered = info.data.get("answered_at")
        if answered is not None:
            if v < answered:
                raise _err(f"ended_at {_fmt(v)} is before answered_at {_fmt(answered)}")
            return v
        started = info.data.get("started_at")
        # No valid answered_at: compare with the start (unless answered_at was
        # sent but invalid, which is reported on its own).
        if started is not None and v < started:
            raise _err(f"ended_at {_fmt(v)} is before started_at {_fmt(started)}")
        return v

    @field_validator("operator_id")
    @classmethod
    def _operator_if_answered(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("outcome") == "answered":
            raise _err("operator_id is required when outcome is 'answered'")
        return v


@_finish
class DealWon(_EventBase):
    """A conversion. The same deal_id won twice counts once (the later occurred_at wins)."""

    IDENTITY_REQUIRED: ClassVar[bool] = True
    MONEY_FIELD: ClassVar[str | None] = "revenue"

    type: Literal["deal_won"] = "deal_won"
    identity: Identity
    deal_id: Id
    revenue: PositiveMoney
    currency: Currency
    # Derived (not on the wire): the value as sent.
    original_currency: SkipJsonSchema[str | None] = Field(None, description="Currency as sent; `currency` is the reporting currency.")
    original_value: SkipJsonSchema[Decimal | None] = Field(None, description="Money value as sent, before conversion.")


@_finish
class DealLost(_EventBase):
    """A deal was lost."""

    IDENTITY_REQUIRED: ClassVar[bool] = True

    type: Literal["deal_lost"] = "deal_lost"
    identity: Identity
    deal_id: Id
    reason: str | None = None


@_finish
class Payment(_EventBase):
    """Repeat revenue from an existing customer: counts toward LTV, not conversions."""

    IDENTITY_REQUIRED: ClassVar[bool] = True
    MONEY_FIELD: ClassVar[str | None] = "amount"

    type: Literal["payment"] = "payment"
    identity: Identity
    payment_id: Id
    amount: Money
    currency: Currency
    deal_id: Id | None = None
    # Derived (not on the wire): the value as sent.
    original_currency: SkipJsonSchema[str | None] = Field(None, description="Currency as sent; `currency` is the reporting currency.")
    original_value: SkipJsonSchema[Decimal | None] = Field(None, description="Money value as sent, before conversion.")


_SCORE_RANGE = {"nps": (0, 10), "csat": (1, 5)}


@_finish
class SurveyResponse(_EventBase):
    """A survey answer: nps 0-10 or csat 1-5. Identity optional."""

    type: Literal["survey_response"] = "survey_response"
    survey: Literal["nps", "csat"]
    score: int = Field(description="Integer; nps 0-10, csat 1-5.")
    conversation_id: Id | None = None
    call_id: Id | None = None
    operator_id: Id | None = None

    @field_validator("score")
    @classmethod
    def _score_range(cls, v: int, info: ValidationInfo) -> int:
        survey = info.data.get("survey")
        bounds = _SCORE_RANGE.get(survey)  # type: ignore[arg-type]
        if bounds is not None and not bounds[0] <= v <= bounds[1]:
            raise _err(f"{survey} score must be between {bounds[0]} and {bounds[1]}, got {v}")
        return v


# --------------------------------------------------------------------------- union

EVENT_MODELS: dict[str, type[_EventBase]] = {
    m.model_fields["type"].default: m
    for m in (
        AdSpend,
        AdClick,
        Lead,
        ConversationStarted,
        Message,
        ConversationTransferred,
        ConversationClosed,
        CallCompleted,
        DealWon,
        DealLost,
        Payment,
        SurveyResponse,
    )
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)

Event = Annotated[
    Union[
        AdSpend,
        AdClick,
        Lead,
        ConversationStarted,
        Message,
        ConversationTransferred,
        ConversationClosed,
        CallCompleted,
        DealWon,
        DealLost,
        Payment,
        SurveyResponse,
    ],
    Field(discriminator="type"),
]

EventAdapter: TypeAdapter[Any] = TypeAdapter(Event)
_validate = EventAdapter.validate_python
_envelope_validate = _Envelope.model_validate
_TYPE_SET = frozenset(EVENT_TYPES)


# --------------------------------------------------------------------------- errors -> (path, message)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "contract":
        return err["msg"]
    got = _json_type(err.get("input"))
    if kind == "missing":
        return "required field is missing"
    if kind == "string_type":
        return f"must be a string, got {got}"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return f"must be an integer, got {got} {err['input']!r}" if got != "null" else "must be an integer, got null"
    if kind == "bool_type":
        return f"must be true or false, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be an object, got {got}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}, got {err['input']!r}"
    if kind == "string_too_short":
        return "must not be empty" if err.get("ctx", {}).get("min_length") == 1 else err["msg"]
    if kind == "string_too_long":
        return f"must be at most {err['ctx']['max_length']} characters, got {len(err['input'])}"
    if kind == "greater_than_equal":
        return f"must be >= {err['ctx']['ge']}, got {err['input']!r}"
    return err["msg"]


def _collect(exc: ValidationError, drop_tag: bool) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if drop_tag and loc and loc[0] in _TYPE_SET:
            loc = loc[1:]
        errors.append((_path(loc), _message(err)))
    return errors


def _type_problem(obj: dict) -> str:
    if "type" not in obj:
        return "required field is missing"
    tag = obj["type"]
    if not isinstance(tag, str):
        return f"must be a string, got {_json_type(tag)}"
    return f"unknown event type {tag!r} (expected one of {', '.join(EVENT_TYPES)})"


def _errors_without_type(obj: dict, ctx: ContractContext) -> list[tuple[str, str]]:
    """When the type is unusable, still report the envelope's problems."""
    errors = [("type", _type_problem(obj))]
    try:
        _envelope_validate(obj, context=ctx._validation_context)  # type: ignore[attr-defined]
    except ValidationError as exc:
        errors.extend(e for e in _collect(exc, drop_tag=False) if e[0] != "type")
    return errors


# --------------------------------------------------------------------------- entry point


def validate_event(obj: Any, ctx: ContractContext) -> Any:
    """Validate one decoded JSON value against the contract.

    Returns the event model (one of EVENT_MODELS), with identity normalised,
    occurred_at in UTC (ms), money in the reporting currency and unknown
    top-level fields in `.extra`. Raises ContractError listing every problem.
    """
    if type(obj) is not dict and not isinstance(obj, dict):
        raise ContractError([("", f"event must be a JSON object, got {_json_type(obj)}")])
    try:
        return _validate(obj, context=ctx._validation_context)  # type: ignore[attr-defined]
    except ValidationError as exc:
        tag = obj.get("type")
        if not isinstance(tag, str) or tag not in _TYPE_SET:
            raise ContractError(_errors_without_type(obj, ctx)) from None
        raise ContractError(_collect(exc, drop_tag=True)) from None
