"""Reference implementation of every KPI of kpis.md (contract v1), in pure Python.

Independent of the project code on purpose: standard library only, no import
of `leadflow`, `schemas` or `services`. It is the oracle the ClickHouse SQL
is compared against, so it favours being obviously right over being fast
(quadratic loops are fine for test-sized data).

Every choice made where the contract is silent or ambiguous is listed in
docs/kpi-readings.md, by number (keep the two in sync).

    from tests.reference.kpis import compute_kpis, ReferenceConfig
    rows = compute_kpis(events, "channels", model="linear",
                        date_from=None, date_to=None, config=ReferenceConfig())
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Iterable, Mapping

__all__ = [
    "MODELS",
    "MARKOV",
    "GROUPINGS",
    "OUTPUT_KEYS",
    "NONE_CHANNEL",
    "ReferenceConfig",
    "compute_kpis",
    "validate_event",
    "percentile",
    "normalize_email",
    "normalize_phone",
    "markov_chain",
]

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
MARKOV = "markov"  # contract v1.1 section 1: credited from the chain of every journey (see _Markov)
GROUPINGS = ("channels", "campaigns", "operators", "service")
NONE_CHANNEL = "(none)"

OUTPUT_KEYS: dict[str, tuple[str, ...]] = {
    "channels": (
        "channel", "spend", "leads", "cpl", "converted_leads", "conversion_rate",
        "conversions", "revenue", "cpa", "romi", "customers", "ltv",
    ),
    "campaigns": (
        "campaign_id", "channel", "spend", "leads", "cpl", "converted_leads",
        "conversion_rate", "conversions", "revenue", "cpa", "romi",
    ),
    "operators": (
        "operator_id", "conversations", "frt_median_s", "frt_p90_s", "frt_mean_s",
        "art_s", "sla_rate", "transfers", "template_share", "csat", "nps",
        "operator_conversion_rate", "max_concurrency",
    ),
    "service": (
        "channel", "conversations", "frt_median_s", "frt_p90_s", "frt_mean_s",
        "art_s", "sla_rate", "missed_conversations", "transfer_rate",
        "contact_capture_rate", "calls_offered", "answer_rate", "missed_calls",
        "abandoned_calls", "wait_mean_s", "wait_median_s", "talk_mean_s", "csat",
        "nps", "lost_revenue",
    ),
}
# contract v1.1 section 4: bot keys on the operator and service rows (readings B1-B4)
BOT_KEYS = ("bot_conversations", "bot_contained", "bot_containment_rate", "handoff_wait_median_s",
            "handoff_wait_p90_s")
OUTPUT_KEYS["operators"] += BOT_KEYS
OUTPUT_KEYS["service"] += BOT_KEYS

MARKETING_CHANNELS = (
    "search_ads", "social_ads", "display_ads", "email", "organic", "referral", "direct",
)
CONVERSATION_CHANNELS = ("chat", "call", "email", "social", "messenger")
IDENTITY_KEYS = ("visitor_id", "email", "phone", "crm_contact_id")
EVENT_TYPES = (
    "ad_spend", "ad_click", "lead", "conversation_started", "message",
    "conversation_transferred", "conversation_closed", "call_completed",
    "deal_won", "deal_lost", "payment", "survey_response",
)
# Types whose identity is required (with at least one key).
IDENTITY_REQUIRED = frozenset(
    {"ad_click", "lead", "conversation_started", "call_completed", "deal_won",
     "deal_lost", "payment"}
)


@dataclass(frozen=True)
class ReferenceConfig:
    lookback_days: float = 90
    half_life_days: float = 7
    sla_seconds: Mapping[str, float] = field(
        default_factory=lambda: {"chat": 30, "messenger": 300, "social": 3600, "email": 3600}
    )
    missed_after_hours: float = 24
    rates: Mapping[str, float] = field(default_factory=dict)
    # --- beyond the brief; defaults are the contract's fixed numbers ---
    reporting_currency: str = "USD"
    # "lead_at + 90d" (converted_leads), "within 90 days after the
    # conversation start" (operator_conversion_rate, lost revenue).
    conversion_window_days: float = 90
    # contact_capture_rate: "between the conversation start and 24 h after it".
    capture_window_hours: float = 24
    # "now" for the never-closed missed-conversation timeout; None = the latest
    # occurred_at among the accepted events (reading S5).
    now: datetime | None = None
    marketing_channels: tuple[str, ...] = MARKETING_CHANNELS
    conversation_channels: tuple[str, ...] = CONVERSATION_CHANNELS


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

_TS_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def parse_ts(value: Any) -> datetime:
    """RFC 3339 with a mandatory offset, ms precision or coarser -> aware UTC."""
    if not isinstance(value, str):
        raise ValueError("timestamp must be a string")
    m = _TS_RE.match(value)
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {value!r}")
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    micro = int((frac or "").ljust(6, "0")) if frac else 0
    if z:
        tz = timezone.utc
    else:
        oh_i, om_i = int(oh), int(om)
        if oh_i > 23 or om_i > 59:
            raise ValueError(f"bad offset in {value!r}")
        delta = timedelta(hours=oh_i, minutes=om_i)
        tz = timezone(delta if sign == "+" else -delta)
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tz)
    return dt.astimezone(timezone.utc)


def parse_date(value: Any) -> date:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    return date.fromisoformat(value)


def parse_money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("money must be a JSON number or a numeric string")
    try:
        d = Decimal(str(value)) if not isinstance(value, str) else Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return d


def normalize_email(v: str) -> str:
    return v.strip().lower()


def normalize_phone(v: str) -> str:
    digits = re.sub(r"\D", "", v)
    if digits.startswith("00"):
        digits = digits[2:]
    return "+" + digits if digits else ""


def _identity_nodes(ident: Any) -> list[tuple[str, str]]:
    """(kind, normalised value) of an identity object; empty values dropped."""
    if not isinstance(ident, dict):
        return []
    out = []
    for k in IDENTITY_KEYS:
        v = ident.get(k)
        if not isinstance(v, str):
            continue
        if k == "email":
            v = normalize_email(v)
        elif k == "phone":
            v = normalize_phone(v)
        if v:
            out.append((k, v))
    return out


def percentile(values: Iterable[float], p: float) -> float | None:
    """numpy's default ('linear') percentile, p in [0, 1]; None when empty."""
    s = sorted(values)
    if not s:
        return None
    rank = p * (len(s) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (rank - lo))


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return float(num) / float(den)


# --------------------------------------------------------------------------
# validation (events.md)
# --------------------------------------------------------------------------

def validate_event(ev: Any, config: ReferenceConfig = ReferenceConfig()) -> list[str]:
    """Errors of one decoded event per events.md; [] when valid.

    The "more than 24 h in the future of the receive time" rule is not
    checked: the reference has no receive time (reading V3).
    """
    if not isinstance(ev, dict):
        return ["event is not a JSON object"]
    errs: list[str] = []

    def req_str(key: str, maxlen: int | None = None) -> str | None:
        v = ev.get(key)
        if v is None:
            errs.append(f"{key}: required")
            return None
        if not isinstance(v, str) or not v:
            errs.append(f"{key}: must be a non-empty string")
            return None
        if maxlen is not None and len(v) > maxlen:
            errs.append(f"{key}: longer than {maxlen}")
        return v

    def opt_str(key: str) -> None:
        v = ev.get(key)
        if v is not None and not isinstance(v, str):
            errs.append(f"{key}: must be a string")

    def req_enum(key: str, allowed: Iterable[str]) -> str | None:
        v = ev.get(key)
        if v not in tuple(allowed):
            errs.append(f"{key}: must be one of {sorted(set(allowed))}, got {v!r}")
            return None
        return v

    def opt_int(key: str, lo: int | None = None, hi: int | None = None) -> None:
        v = ev.get(key)
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, int):
            errs.append(f"{key}: must be an integer")
        elif (lo is not None and v < lo) or (hi is not None and v > hi):
            errs.append(f"{key}: out of range")

    def req_ts(key: str) -> datetime | None:
        if ev.get(key) is None:
            errs.append(f"{key}: required")
            return None
        try:
            return parse_ts(ev[key])
        except ValueError as e:
            errs.append(f"{key}: {e}")
            return None

    def opt_ts(key: str) -> datetime | None:
        return None if ev.get(key) is None else req_ts(key)

    def req_money(key: str, strictly_positive: bool = False) -> None:
        if ev.get(key) is None:
            errs.append(f"{key}: required")
        else:
            try:
                d = parse_money(ev[key])
            except ValueError as e:
                errs.append(f"{key}: {e}")
            else:
                if d < 0 or (strictly_positive and d == 0):
                    errs.append(f"{key}: must be {'> 0' if strictly_positive else '>= 0'}")
        cur = ev.get("currency")
        if not isinstance(cur, str) or not _CURRENCY_RE.match(cur):
            errs.append("currency: must be a 3-letter ISO 4217 code")
        elif cur != config.reporting_currency and cur not in config.rates:
            errs.append(f"currency: {cur} is neither {config.reporting_currency} nor in the rate table")

    # envelope
    req_str("event_id", 128)
    etype = req_enum("type", EVENT_TYPES)
    req_ts("occurred_at")
    req_str("source", 64)
    ident = ev.get("identity")
    nodes: list[tuple[str, str]] = []
    if ident is not None:
        if not isinstance(ident, dict):
            errs.append("identity: must be an object")
        else:
            for k in IDENTITY_KEYS:
                if k in ident and ident[k] is not None and not isinstance(ident[k], str):
                    errs.append(f"identity.{k}: must be a string")
            nodes = _identity_nodes(ident)
    if etype in IDENTITY_REQUIRED and not nodes:
        errs.append("identity: required (with at least one of " + ", ".join(IDENTITY_KEYS) + ")")

    if etype == "ad_spend":
        req_str("campaign_id")
        req_enum("channel", config.marketing_channels)
        try:
            parse_date(ev.get("date"))
        except ValueError as e:
            errs.append(f"date: {e}")
        req_money("cost")
        opt_int("impressions", 0)
        opt_int("clicks", 0)
    elif etype == "ad_click":
        req_str("campaign_id")
        req_enum("channel", config.marketing_channels)
        opt_str("landing_url")
        utm = ev.get("utm")
        if utm is not None and not (
            isinstance(utm, dict) and all(isinstance(v, str) for v in utm.values())
        ):
            errs.append("utm: must be an object of strings")
    elif etype == "lead":
        req_str("lead_id")
        req_enum("channel", config.marketing_channels)
        opt_str("campaign_id")
        opt_str("form")
        if not any(k in ("email", "phone") for k, _ in nodes):
            errs.append("identity: a lead needs email or phone")
    elif etype == "conversation_started":
        req_str("conversation_id")
        req_enum("channel", config.conversation_channels)
        req_enum("initiated_by", ("visitor", "operator", "bot"))
        opt_str("campaign_id")
    elif etype == "message":
        req_str("conversation_id")
        author = req_enum("author", ("visitor", "operator", "bot"))
        if author == "operator":
            req_str("operator_id")
        else:
            opt_str("operator_id")
        opt_str("template_id")
        opt_int("text_length")
    elif etype == "conversation_transferred":
        req_str("conversation_id")
        req_str("from_operator_id")
        req_str("to_operator_id")
    elif etype == "conversation_closed":
        req_str("conversation_id")
        r = ev.get("resolved")
        if r is not None and not isinstance(r, bool):
            errs.append("resolved: must be a boolean")
    elif etype == "call_completed":
        req_str("call_id")
        req_enum("direction", ("inbound", "outbound"))
        started = req_ts("started_at")
        answered = opt_ts("answered_at")
        ended = req_ts("ended_at")
        outcome = req_enum("outcome", ("answered", "missed", "abandoned", "busy", "failed"))
        if outcome == "answered":
            req_str("operator_id")
        else:
            opt_str("operator_id")
        for k in ("queue", "tracking_number", "campaign_id"):
            opt_str(k)
        chain = [t for t in (started, answered, ended) if t is not None]
        if any(a > b for a, b in zip(chain, chain[1:])):
            errs.append("call times: need started_at <= answered_at <= ended_at")
    elif etype == "deal_won":
        req_str("deal_id")
        req_money("revenue", strictly_positive=True)
    elif etype == "deal_lost":
        req_str("deal_id")
        opt_str("reason")
    elif etype == "payment":
        req_str("payment_id")
        req_money("amount")
        opt_str("deal_id")
    elif etype == "survey_response":
        survey = req_enum("survey", ("nps", "csat"))
        score = ev.get("score")
        if isinstance(score, bool) or not isinstance(score, int):
            errs.append("score: required integer")
        elif survey == "nps" and not 0 <= score <= 10:
            errs.append("score: nps must be 0-10")
        elif survey == "csat" and not 1 <= score <= 5:
            errs.append("score: csat must be 1-5")
        for k in ("conversation_id", "call_id", "operator_id"):
            opt_str(k)
    return errs


# --------------------------------------------------------------------------
# the model of accepted data
# --------------------------------------------------------------------------

class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, x: tuple[str, str]) -> tuple[str, str]:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: tuple[str, str], b: tuple[str, str]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # deterministic representative: the smaller node
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


@dataclass
class _Touch:
    time: datetime
    event_id: str
    channel: str
    campaign_id: str | None
    person: Any


@dataclass
class _Deal:
    deal_id: str
    won_at: datetime
    revenue: float
    person: Any


@dataclass
class _Conversation:
    conversation_id: str
    start: datetime
    channel: str
    initiated_by: str
    person: Any
    messages: list[dict] = field(default_factory=list)  # sorted (ts, event_id)
    transfers: list[dict] = field(default_factory=list)
    closed_at: datetime | None = None


@dataclass
class _Call:
    call_id: str
    direction: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    outcome: str
    operator_id: str | None
    campaign_id: str | None
    person: Any
    event_id: str


def _later(a: dict, b: dict) -> bool:
    """Is a later than b by (occurred_at, event_id)?"""
    return (a["_ts"], a["event_id"]) > (b["_ts"], b["event_id"])


class _Data:
    def __init__(self, events: Iterable[Any], config: ReferenceConfig) -> None:
        self.config = config
        # 1. validate, then deduplicate by event_id (first valid occurrence wins)
        accepted: list[dict] = []
        seen: set[str] = set()
        for ev in events:
            if validate_event(ev, config):
                continue
            if ev["event_id"] in seen:
                continue
            seen.add(ev["event_id"])
            e = dict(ev)
            e["_ts"] = parse_ts(ev["occurred_at"])
            accepted.append(e)
        self.events = accepted
        self.now = config.now.astimezone(timezone.utc) if config.now else (
            max((e["_ts"] for e in accepted), default=None)
        )

        # 2. identity graph over every accepted event
        uf = _UnionFind()
        for e in accepted:
            nodes = _identity_nodes(e.get("identity"))
            for n in nodes:
                uf.find(n)
            for a, b in zip(nodes, nodes[1:]):
                uf.union(a, b)
        self._uf = uf

        def person(e: dict) -> Any:
            nodes = _identity_nodes(e.get("identity"))
            return uf.find(nodes[0]) if nodes else None

        by_type: dict[str, list[dict]] = defaultdict(list)
        for e in accepted:
            by_type[e["type"]].append(e)

        def money(e: dict, key: str) -> float:
            d = parse_money(e[key])
            cur = e["currency"]
            if cur != config.reporting_currency:
                d = d * Decimal(str(config.rates[cur]))
            return float(d)

        # 3. ad_spend: (campaign_id, date) -> later occurred_at wins
        spend: dict[tuple[str, str], dict] = {}
        for e in by_type["ad_spend"]:
            k = (e["campaign_id"], e["date"])
            if k not in spend or _later(e, spend[k]):
                spend[k] = e
        self.spend = [
            {"campaign_id": e["campaign_id"], "channel": e["channel"],
             "date": parse_date(e["date"]), "cost": money(e, "cost"),
             "_ts": e["_ts"], "event_id": e["event_id"]}
            for e in spend.values()
        ]

        # 4. leads: distinct lead_id, the earliest (occurred_at, event_id) wins
        leads: dict[str, dict] = {}
        for e in by_type["lead"]:
            k = e["lead_id"]
            if k not in leads or _later(leads[k], e):
                leads[k] = e
        self.leads = [
            {"lead_id": e["lead_id"], "channel": e["channel"],
             "campaign_id": e.get("campaign_id"), "at": e["_ts"],
             "person": person(e), "event_id": e["event_id"]}
            for e in leads.values()
        ]

        # 5. deals: distinct deal_id, the later (occurred_at, event_id) wins
        deals: dict[str, dict] = {}
        for e in by_type["deal_won"]:
            k = e["deal_id"]
            if k not in deals or _later(e, deals[k]):
                deals[k] = e
        self.deals = [
            _Deal(e["deal_id"], e["_ts"], money(e, "revenue"), person(e))
            for e in deals.values()
        ]
        self.deals_by_person: dict[Any, list[_Deal]] = defaultdict(list)
        for d in self.deals:
            self.deals_by_person[d.person].append(d)

        # 6. payments: distinct payment_id, the later (occurred_at, event_id) wins
        pays: dict[str, dict] = {}
        for e in by_type["payment"]:
            k = e["payment_id"]
            if k not in pays or _later(e, pays[k]):
                pays[k] = e
        self.payments_by_person: dict[Any, float] = defaultdict(float)
        for e in pays.values():
            self.payments_by_person[person(e)] += money(e, "amount")

        # 7. conversations: only those with a conversation_started; the earliest
        #    conversation_started of a conversation_id wins
        starts: dict[str, dict] = {}
        for e in by_type["conversation_started"]:
            k = e["conversation_id"]
            if k not in starts or _later(starts[k], e):
                starts[k] = e
        self.conversations: dict[str, _Conversation] = {
            k: _Conversation(k, e["_ts"], e["channel"], e["initiated_by"], person(e))
            for k, e in starts.items()
        }
        self._conv_start_events = starts
        for e in sorted(by_type["message"], key=lambda e: (e["_ts"], e["event_id"])):
            c = self.conversations.get(e["conversation_id"])
            if c is not None:
                c.messages.append(e)
        for e in sorted(by_type["conversation_transferred"], key=lambda e: (e["_ts"], e["event_id"])):
            c = self.conversations.get(e["conversation_id"])
            if c is not None:
                c.transfers.append(e)
        for e in by_type["conversation_closed"]:
            c = self.conversations.get(e["conversation_id"])
            if c is not None and (c.closed_at is None or e["_ts"] < c.closed_at):
                c.closed_at = e["_ts"]

        # 8. calls: distinct call_id, the later (occurred_at, event_id) wins
        calls: dict[str, dict] = {}
        for e in by_type["call_completed"]:
            k = e["call_id"]
            if k not in calls or _later(e, calls[k]):
                calls[k] = e
        self.calls: dict[str, _Call] = {
            k: _Call(
                k, e["direction"], parse_ts(e["started_at"]),
                parse_ts(e["answered_at"]) if e.get("answered_at") is not None else None,
                parse_ts(e["ended_at"]), e["outcome"], e.get("operator_id"),
                e.get("campaign_id"), person(e), e["event_id"],
            )
            for k, e in calls.items()
        }
        self.inbound_calls = [c for c in self.calls.values() if c.direction == "inbound"]

        self.surveys = by_type["survey_response"]

        # 9. touches
        touches: list[_Touch] = []
        for e in by_type["ad_click"]:
            touches.append(_Touch(e["_ts"], e["event_id"], e["channel"], e["campaign_id"], person(e)))
        for ld in self.leads:
            touches.append(_Touch(ld["at"], ld["event_id"], ld["channel"], ld["campaign_id"], ld["person"]))
        for k, e in starts.items():
            touches.append(_Touch(e["_ts"], e["event_id"], e["channel"], e.get("campaign_id"), person(e)))
        for c in self.inbound_calls:
            touches.append(_Touch(c.started_at, c.event_id, "call", c.campaign_id, c.person))
        touches.sort(key=lambda t: (t.time, t.event_id))
        self.touches = touches
        self.touches_by_person: dict[Any, list[_Touch]] = defaultdict(list)
        for t in touches:
            self.touches_by_person[t.person].append(t)

    # ---------------------------------------------------------------- helpers
    def conversions_within(self, who: Any, start: datetime, days: float) -> list[_Deal]:
        end = start + timedelta(days=days)
        return [d for d in self.deals_by_person.get(who, []) if start <= d.won_at <= end]

    def first_touch_channel(self, who: Any) -> str:
        ts = self.touches_by_person.get(who)
        return ts[0].channel if ts else NONE_CHANNEL

    def eligible_touches(self, deal: _Deal) -> list[_Touch]:
        lo = deal.won_at - timedelta(days=self.config.lookback_days)
        return [t for t in self.touches_by_person.get(deal.person, []) if lo <= t.time <= deal.won_at]

    def credits(self, deal: _Deal, model: str) -> list[tuple[_Touch | None, float]]:
        ts = self.eligible_touches(deal)
        n = len(ts)
        if n == 0:
            return [(None, 1.0)]
        if model == MARKOV:
            return self.markov().credits(ts)
        if model == "first_touch":
            w = [1.0] + [0.0] * (n - 1)
        elif model == "last_touch":
            w = [0.0] * (n - 1) + [1.0]
        elif model == "linear":
            w = [1.0 / n] * n
        elif model == "time_decay":
            hl = self.config.half_life_days * 86400.0
            raw = [2.0 ** (-(deal.won_at - t.time).total_seconds() / hl) for t in ts]
            total = sum(raw)
            w = [r / total for r in raw]
        elif model == "position_based":
            if n == 1:
                w = [1.0]
            elif n == 2:
                w = [0.5, 0.5]
            else:
                w = [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
        else:
            raise ValueError(f"unknown model {model!r}; one of {MODELS}")
        return list(zip(ts, w))


    def markov(self) -> "_Markov":
        if not hasattr(self, "_markov"):
            self._markov = _Markov(self)
        return self._markov


# --------------------------------------------------------------------------
# contract v1.1 section 1: the markov model, in exact rational arithmetic
# --------------------------------------------------------------------------

def _collapse(channels: list[str]) -> list[str]:
    out: list[str] = []
    for c in channels:
        if not out or out[-1] != c:
            out.append(c)
    return out


def _absorption(states: list[str], counts: dict[tuple[str, str], int], removed: str | None) -> Fraction:
    """P(reach "conversion" from "start") by solving x = R + Q x with Gaussian elimination
    over Fractions; transitions into `removed` go to "null" instead."""
    n = len(states)
    index = {s: i for i, s in enumerate(states)}
    out = defaultdict(int)
    for (a, _), k in counts.items():
        out[a] += k
    # rows of (I - Q | R)
    m = [[Fraction(int(i == j)) for j in range(n)] + [Fraction(0)] for i in range(n)]
    for (a, b), k in counts.items():
        p = Fraction(k, out[a])
        if b == "conversion":
            m[index[a]][n] += p
        elif b != "null" and b != removed:
            m[index[a]][index[b]] -= p
    for col in range(n):
        piv = next(r for r in range(col, n) if m[r][col] != 0)
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col and m[r][col] != 0:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col])]
    return m[0][n] / m[0][0]


class _Markov:
    """Paths of every conversion (its eligible touches) and of every person with touches
    in the lookback window ending at the newest occurred_at and no conversion."""

    def __init__(self, data: "_Data") -> None:
        paths: list[tuple[list[str], bool]] = []
        for d in data.deals:
            ts = data.eligible_touches(d)
            if ts:
                paths.append((_collapse([t.channel for t in ts]), True))
        converting = {d.person for d in data.deals}
        now = max((e["_ts"] for e in data.events), default=None)
        lo = now - timedelta(days=data.config.lookback_days) if now else None
        for who, ts in data.touches_by_person.items():
            if who in converting:
                continue
            window = [t.channel for t in ts if lo <= t.time <= now]
            if window:
                paths.append((_collapse(window), False))
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for path, conv in paths:
            steps = ["start"] + path + ["conversion" if conv else "null"]
            for a, b in zip(steps, steps[1:]):
                counts[(a, b)] += 1
        self.paths = len(paths)
        self.channels = sorted({c for path, _ in paths for c in path})
        states = ["start"] + self.channels
        self.p_conversion = _absorption(states, counts, None) if paths else None
        self.removal_effects: dict[str, Fraction | None] = {
            c: (1 - _absorption(states, counts, c) / self.p_conversion if self.p_conversion else None)
            for c in self.channels}

    def credits(self, ts: list["_Touch"]) -> list[tuple["_Touch", float]]:
        distinct = list(dict.fromkeys(t.channel for t in ts))
        re = {c: self.removal_effects.get(c) or Fraction(0) for c in distinct}
        total = sum(re.values())
        share = {c: (re[c] / total if total else Fraction(1, len(distinct))) for c in distinct}
        per = {c: sum(1 for t in ts if t.channel == c) for c in distinct}
        return [(t, float(share[t.channel] / per[t.channel])) for t in ts]


def markov_chain(events: list[dict], config: "ReferenceConfig" = None) -> dict[str, Any]:
    """`leadflow kpis markov --format json` over these events."""
    mk = _Data(events, config or ReferenceConfig()).markov()
    return {"p_conversion": None if mk.p_conversion is None else float(mk.p_conversion), "paths": mk.paths,
            "removal_effects": {c: (None if v is None else float(v)) for c, v in mk.removal_effects.items()}}


# --------------------------------------------------------------------------
# conversation-level facts (shared by operators and service)
# --------------------------------------------------------------------------

@dataclass
class _ConvFacts:
    conv: _Conversation
    frt: float | None            # seconds, human first reply
    frt_operator: str | None     # who sent that first reply
    has_visitor_msg: bool
    turns: list[tuple[float, str, str | None]]  # (response_s, author, operator_id)
    missed: bool | None          # None: not visitor-initiated / no visitor message
    operators: list[str]         # operators who sent a message, first message order
    op_first_msg: dict[str, datetime]
    last_operator: str | None


def _conv_facts(c: _Conversation, data: _Data) -> _ConvFacts:
    msgs = c.messages
    visitor_msgs = [m for m in msgs if m["author"] == "visitor"]
    frt = frt_op = None
    if c.initiated_by == "visitor" and visitor_msgs:
        first_v = visitor_msgs[0]
        key_v = (first_v["_ts"], first_v["event_id"])
        for m in msgs:
            if m["author"] == "operator" and (m["_ts"], m["event_id"]) > key_v:
                frt = (m["_ts"] - first_v["_ts"]).total_seconds()
                frt_op = m["operator_id"]
                break

    turns: list[tuple[float, str, str | None]] = []
    turn_start: datetime | None = None
    for m in msgs:
        if m["author"] == "visitor":
            if turn_start is None:
                turn_start = m["_ts"]
        elif turn_start is not None:
            turns.append(((m["_ts"] - turn_start).total_seconds(), m["author"], m.get("operator_id")))
            turn_start = None

    missed: bool | None = None
    if c.initiated_by == "visitor" and visitor_msgs:
        if c.closed_at is not None:
            deadline = c.closed_at
            elapsed = True
        else:
            deadline = visitor_msgs[-1]["_ts"] + timedelta(hours=data.config.missed_after_hours)
            elapsed = data.now is not None and data.now >= deadline
        replied = any(m["author"] in ("operator", "bot") and m["_ts"] <= deadline for m in msgs)
        missed = (not replied) and elapsed

    operators: list[str] = []
    op_first: dict[str, datetime] = {}
    last_op = None
    for m in msgs:
        if m["author"] == "operator":
            op = m["operator_id"]
            if op not in op_first:
                op_first[op] = m["_ts"]
                operators.append(op)
            last_op = op
    return _ConvFacts(c, frt, frt_op, bool(visitor_msgs), turns, missed, operators, op_first, last_op)


def _conv_end(c: _Conversation) -> datetime:
    """End of a conversation for max_concurrency: its close, else its last message/transfer."""
    if c.closed_at is not None:
        return c.closed_at
    times = [m["_ts"] for m in c.messages] + [t["_ts"] for t in c.transfers] + [c.start]
    return max(times)


def _max_concurrency(intervals: list[tuple[datetime, datetime]]) -> int:
    best = 0
    for s_i, _e_i in intervals:
        n = sum(1 for s_j, e_j in intervals if s_j <= s_i and (e_j > s_i or (s_j == s_i)))
        best = max(best, n)
    return best


def _survey_group(sv: dict, data: _Data, facts: dict[str, _ConvFacts]) -> tuple[str | None, str]:
    """(operator_id or None, service channel) of a survey response."""
    op = sv.get("operator_id")
    channel = None
    cid = sv.get("conversation_id")
    conv = data.conversations.get(cid) if cid is not None else None
    if conv is not None:
        channel = conv.channel
        if op is None:
            f = facts.get(cid) or _conv_facts(conv, data)
            op = f.last_operator
    call_id = sv.get("call_id")
    call = data.calls.get(call_id) if call_id is not None else None
    if call is not None:
        if channel is None:
            channel = "call"
        if op is None and call.outcome == "answered":
            op = call.operator_id
    return op, (channel or NONE_CHANNEL)


def _csat_nps(scores: list[tuple[str, int]]) -> tuple[float | None, float | None]:
    csat = [s for kind, s in scores if kind == "csat"]
    nps = [s for kind, s in scores if kind == "nps"]
    csat_v = _ratio(sum(1 for s in csat if s >= 4), len(csat))
    nps_v = None
    if nps:
        nps_v = 100.0 * (sum(1 for s in nps if s >= 9) - sum(1 for s in nps if s <= 6)) / len(nps)
    return csat_v, nps_v


# --------------------------------------------------------------------------
# groupings
# --------------------------------------------------------------------------

def _marketing_rows(data: _Data, grouping: str, model: str, in_period) -> list[dict]:
    by_campaign = grouping == "campaigns"
    win = data.config.conversion_window_days

    def key_of(channel: str | None, campaign: str | None) -> str | None:
        return campaign if by_campaign else channel

    # row set (period- and model-independent)
    groups: set[str] = set()
    for s in data.spend:
        groups.add(key_of(s["channel"], s["campaign_id"]))
    for t in data.touches:
        groups.add(key_of(t.channel, t.campaign_id))
    if not by_campaign:
        converting = {d.person for d in data.deals}
        if any(not data.eligible_touches(d) for d in data.deals) or any(
            data.first_touch_channel(p) == NONE_CHANNEL for p in converting
        ):
            groups.add(NONE_CHANNEL)
    groups.discard(None)

    spend: dict[str, float] = defaultdict(float)
    has_spend: set[str] = set()
    for s in data.spend:
        if in_period(s["date"]):
            k = key_of(s["channel"], s["campaign_id"])
            spend[k] += s["cost"]
            has_spend.add(k)

    leads: dict[str, int] = defaultdict(int)
    converted: dict[str, int] = defaultdict(int)
    for ld in data.leads:
        if not in_period(ld["at"].date()):
            continue
        k = key_of(ld["channel"], ld["campaign_id"])
        if k is None:
            continue
        leads[k] += 1
        if data.conversions_within(ld["person"], ld["at"], win):
            converted[k] += 1

    conv: dict[str, float] = defaultdict(float)
    rev: dict[str, float] = defaultdict(float)
    for d in data.deals:
        if not in_period(d.won_at.date()):
            continue
        for t, credit in data.credits(d, model):
            k = key_of(t.channel, t.campaign_id) if t is not None else key_of(NONE_CHANNEL, None)
            if k is None:
                continue
            conv[k] += credit
            rev[k] += credit * d.revenue

    customers: dict[str, int] = defaultdict(int)
    ltv_sum: dict[str, float] = defaultdict(float)
    ltv_n: dict[str, int] = defaultdict(int)
    if not by_campaign:
        for p, ds in data.deals_by_person.items():
            ch = data.first_touch_channel(p)
            if in_period(min(d.won_at for d in ds).date()):
                customers[ch] += 1
            ltv_sum[ch] += sum(d.revenue for d in ds) + data.payments_by_person.get(p, 0.0)
            ltv_n[ch] += 1

    campaign_channel: dict[str, str] = {}
    if by_campaign:
        for s in sorted(data.spend, key=lambda s: (s["date"], s["_ts"], s["event_id"])):
            campaign_channel.setdefault(s["campaign_id"], s["channel"])
        for t in data.touches:  # already sorted by (time, event_id)
            if t.campaign_id is not None:
                campaign_channel.setdefault(t.campaign_id, t.channel)

    rows = []
    for k in sorted(groups):
        sp = spend[k] if k in has_spend else None
        row: dict[str, Any] = {}
        if by_campaign:
            row["campaign_id"] = k
            row["channel"] = campaign_channel.get(k)
        else:
            row["channel"] = k
        row["spend"] = sp
        row["leads"] = leads[k]
        row["cpl"] = _ratio(sp, leads[k])
        row["converted_leads"] = converted[k]
        row["conversion_rate"] = _ratio(converted[k], leads[k])
        row["conversions"] = float(conv[k])
        row["revenue"] = float(rev[k])
        row["cpa"] = _ratio(sp, conv[k])
        row["romi"] = _ratio(None if sp is None else rev[k] - sp, sp)
        if not by_campaign:
            row["customers"] = customers[k]
            row["ltv"] = _ratio(ltv_sum[k], ltv_n[k])
        rows.append(row)
    return rows


def _operator_rows(data: _Data, in_period) -> list[dict]:
    cfg = data.config
    facts = {cid: _conv_facts(c, data) for cid, c in data.conversations.items()}

    # row set (period-independent): every operator who sent a message, answered an
    # inbound call, transferred a conversation, or is credited with a survey
    ops: set[str] = set()
    for f in facts.values():
        ops.update(f.operators)
        ops.update(t["from_operator_id"] for t in f.conv.transfers)
    for c in data.inbound_calls:
        if c.outcome == "answered" and c.operator_id:
            ops.add(c.operator_id)
    for sv in data.surveys:
        op, _ = _survey_group(sv, data, facts)
        if op is not None:
            ops.add(op)

    handled: dict[str, list[tuple[Any, datetime, datetime, datetime]]] = defaultdict(list)
    frts: dict[str, list[float]] = defaultdict(list)
    sla_n: dict[str, int] = defaultdict(int)
    sla_ok: dict[str, int] = defaultdict(int)
    arts: dict[str, list[float]] = defaultdict(list)
    transfers: dict[str, int] = defaultdict(int)
    op_msgs: dict[str, int] = defaultdict(int)
    tpl_msgs: dict[str, int] = defaultdict(int)

    for cid, f in facts.items():
        c = f.conv
        if not in_period(c.start.date()):
            continue
        end = _conv_end(c)
        for op in f.operators:
            # (person, conversation start, interval start, interval end)
            begin = max(c.start, f.op_first_msg[op])
            handled[op].append((c.person, c.start, begin, max(end, begin)))
        if f.frt is not None:
            frts[f.frt_operator].append(f.frt)
            target = cfg.sla_seconds.get(c.channel)
            if target is not None:
                sla_n[f.frt_operator] += 1
                if f.frt <= target:
                    sla_ok[f.frt_operator] += 1
        for secs, author, op in f.turns:
            if author == "operator":
                arts[op].append(secs)
        for t in c.transfers:
            transfers[t["from_operator_id"]] += 1
        for m in c.messages:
            if m["author"] == "operator":
                op_msgs[m["operator_id"]] += 1
                if m.get("template_id") is not None:
                    tpl_msgs[m["operator_id"]] += 1

    for call in data.inbound_calls:
        if call.outcome == "answered" and call.operator_id and in_period(call.started_at.date()):
            begin = call.answered_at or call.started_at
            handled[call.operator_id].append((call.person, call.started_at, begin, call.ended_at))

    scores: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for sv in data.surveys:
        if not in_period(sv["_ts"].date()):
            continue
        op, _ = _survey_group(sv, data, facts)
        if op is not None:
            scores[op].append((sv["survey"], sv["score"]))

    rows = []
    for op in sorted(ops):
        h = handled[op]
        csat, nps = _csat_nps(scores[op])
        converted = sum(
            1 for person, start, _b, _e in h
            if data.conversions_within(person, start, cfg.conversion_window_days)
        )
        rows.append({
            "operator_id": op,
            "conversations": len(h),
            "frt_median_s": percentile(frts[op], 0.5),
            "frt_p90_s": percentile(frts[op], 0.9),
            "frt_mean_s": _mean(frts[op]),
            "art_s": _mean(arts[op]),
            "sla_rate": _ratio(sla_ok[op], sla_n[op]),
            "transfers": transfers[op],
            "template_share": _ratio(tpl_msgs[op], op_msgs[op]),
            "csat": csat,
            "nps": nps,
            "operator_conversion_rate": _ratio(converted, len(h)),
            "max_concurrency": _max_concurrency([(b, e) for _p, _s, b, e in h]),
        })
    return rows


def _lost_revenue(missed: int, others: list[tuple[Any, datetime]], data: _Data) -> float | None:
    """missed x r x v (kpis.md "Lost revenue estimate"); others = (person, contact time)."""
    win = data.config.conversion_window_days
    converting = 0
    deals: dict[str, float] = {}
    for person, at in others:
        ds = data.conversions_within(person, at, win)
        if ds:
            converting += 1
            for d in ds:
                deals[d.deal_id] = d.revenue
    r = _ratio(converting, len(others))
    v = _mean(list(deals.values()))
    if r is None or v is None:
        return None
    return float(missed * r * v)


def _service_rows(data: _Data, in_period) -> list[dict]:
    cfg = data.config
    facts = {cid: _conv_facts(c, data) for cid, c in data.conversations.items()}

    survey_channel: list[tuple[str, dict]] = [
        (_survey_group(sv, data, facts)[1], sv) for sv in data.surveys
    ]
    channels: set[str] = {c.channel for c in data.conversations.values()}
    # reading S8: a conversation_started of channel "call" is not a row of its own:
    # the "call" row is the row of inbound calls (kpis.md Output keys).
    channels.discard("call")
    if data.inbound_calls:
        channels.add("call")
    channels.update(ch for ch, _ in survey_channel)

    scores: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for ch, sv in survey_channel:
        if in_period(sv["_ts"].date()):
            scores[ch].append((sv["survey"], sv["score"]))

    rows = []
    for ch in sorted(channels):
        row: dict[str, Any] = dict.fromkeys(OUTPUT_KEYS["service"])
        row["channel"] = ch
        row["csat"], row["nps"] = _csat_nps(scores[ch])
        if ch == "call":
            calls = [c for c in data.inbound_calls if in_period(c.started_at.date())]
            answered = [c for c in calls if c.outcome == "answered"]
            missed_calls = sum(1 for c in calls if c.outcome == "missed")
            abandoned = sum(1 for c in calls if c.outcome == "abandoned")
            waits = [(c.answered_at - c.started_at).total_seconds() for c in answered if c.answered_at]
            talks = [(c.ended_at - c.answered_at).total_seconds() for c in answered if c.answered_at]
            row.update({
                "conversations": len(calls),
                "calls_offered": len(calls),
                "answer_rate": _ratio(len(answered), len(calls)),
                "missed_calls": missed_calls,
                "abandoned_calls": abandoned,
                "wait_mean_s": _mean(waits),
                "wait_median_s": percentile(waits, 0.5),
                "talk_mean_s": _mean(talks),
            })
            others = [(c.person, c.started_at) for c in calls if c.outcome not in ("missed", "abandoned")]
            row["lost_revenue"] = _lost_revenue(missed_calls + abandoned, others, data)
        elif ch == NONE_CHANNEL:
            row["conversations"] = 0
        else:
            fs = [f for f in facts.values() if f.conv.channel == ch and in_period(f.conv.start.date())]
            frts = [f.frt for f in fs if f.frt is not None]
            turns = [secs for f in fs for secs, _a, _o in f.turns]
            target = cfg.sla_seconds.get(ch)
            sla_base = [f for f in fs if f.conv.initiated_by == "visitor" and f.has_visitor_msg]
            sla_rate = None
            if target is not None:
                sla_rate = _ratio(sum(1 for f in sla_base if f.frt is not None and f.frt <= target), len(sla_base))
            missed = sum(1 for f in fs if f.missed)
            row.update({
                "conversations": len(fs),
                "frt_median_s": percentile(frts, 0.5),
                "frt_p90_s": percentile(frts, 0.9),
                "frt_mean_s": _mean(frts),
                "art_s": _mean(turns),
                "sla_rate": sla_rate,
                "missed_conversations": missed,
                "transfer_rate": _ratio(sum(1 for f in fs if f.conv.transfers), len(fs)),
            })
            if ch in ("chat", "messenger"):
                hrs = timedelta(hours=cfg.capture_window_hours)
                captured = sum(
                    1 for f in fs
                    if any(ld["person"] == f.conv.person and f.conv.start <= ld["at"] <= f.conv.start + hrs
                           for ld in data.leads)
                )
                row["contact_capture_rate"] = _ratio(captured, len(fs))
            others = [(f.conv.person, f.conv.start) for f in fs if not f.missed]
            row["lost_revenue"] = _lost_revenue(missed, others, data)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------

def compute_kpis(
    events: list[dict],
    grouping: str,
    model: str = "linear",
    date_from: date | None = None,
    date_to: date | None = None,
    config: ReferenceConfig = ReferenceConfig(),
) -> list[dict]:
    """KPIs of kpis.md over the period [date_from, date_to) (UTC dates; None = open).

    Returns one dict per group, sorted by the group key, with exactly the
    output keys of kpis.md for the grouping, in order; None where undefined.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; one of {GROUPINGS}")
    if model not in MODELS and model != MARKOV:
        raise ValueError(f"unknown model {model!r}; one of {MODELS + (MARKOV,)}")

    def in_period(d: date) -> bool:
        return (date_from is None or d >= date_from) and (date_to is None or d < date_to)

    data = _Data(events, config)
    if grouping in ("channels", "campaigns"):
        rows = _marketing_rows(data, grouping, model, in_period)
    elif grouping == "operators":
        rows = _operator_rows(data, in_period)
    else:
        rows = _service_rows(data, in_period)
    if grouping in ("operators", "service"):
        _add_bot_keys(data, grouping, rows, in_period)
    keys = OUTPUT_KEYS[grouping]
    return [{k: r[k] for k in keys} for r in rows]


# --------------------------------------------------------------------------
# contract v1.1 section 4: bots and hand-over (readings B1-B4)
# --------------------------------------------------------------------------

def _bot_facts(c: _Conversation) -> tuple[bool, str | None, float | None]:
    """(a bot spoke, operator of the first operator message, hand-over wait in seconds)."""
    last_bot = None
    for m in c.messages:  # (t, id) order
        if m["author"] == "bot":
            last_bot = m
        elif m["author"] == "operator":
            wait = None if last_bot is None else (m["_ts"] - last_bot["_ts"]).total_seconds()
            return any(x["author"] == "bot" for x in c.messages), m["operator_id"], wait
    return last_bot is not None, None, None


def _add_bot_keys(data: _Data, grouping: str, rows: list[dict], in_period) -> None:
    per_channel: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_op: dict[str, int] = defaultdict(int)
    waits_channel: dict[str, list[float]] = defaultdict(list)
    waits_op: dict[str, list[float]] = defaultdict(list)
    for c in data.conversations.values():
        if c.initiated_by != "visitor" or not in_period(c.start.date()):
            continue
        spoke, first_op, wait = _bot_facts(c)
        if not spoke:
            continue
        missed = _conv_facts(c, data).missed
        per_channel[c.channel][0] += 1
        if c.closed_at is not None and first_op is None and not missed:
            per_channel[c.channel][1] += 1
        if first_op is not None:
            per_op[first_op] += 1
        if wait is not None:
            waits_channel[c.channel].append(wait)
            waits_op[first_op].append(wait)
    for row in rows:
        if grouping == "operators":
            op = row["operator_id"]
            row.update(bot_conversations=per_op[op], bot_contained=None, bot_containment_rate=None,
                       handoff_wait_median_s=percentile(waits_op[op], 0.5),
                       handoff_wait_p90_s=percentile(waits_op[op], 0.9))
        elif row["channel"] in ("call", NONE_CHANNEL):
            row.update(dict.fromkeys(BOT_KEYS))
        else:
            n, kept = per_channel[row["channel"]]
            waits = waits_channel[row["channel"]]
            row.update(bot_conversations=n, bot_contained=kept, bot_containment_rate=_ratio(kept, n),
                       handoff_wait_median_s=percentile(waits, 0.5), handoff_wait_p90_s=percentile(waits, 0.9))


# --------------------------------------------------------------------------
# contract v1.1 section 3: staffing by hour of week, Erlang C (readings K1-K8)
# --------------------------------------------------------------------------

STAFFING_KEYS = ("channel", "weekday", "hour", "contacts_per_hour", "aht_s", "target_s", "service_level",
                 "agents_needed", "agents_observed", "gap")
_HOUR = timedelta(hours=1)


def erlang_c(n: int, a: float) -> float:
    """Probability that a contact waits (M/M/n, offered load a erlangs, n > a), through the
    Erlang B recursion B(k) = a B(k-1) / (k + a B(k-1)), C = n B / (n - a (1 - B))."""
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return n * b / (n - a * (1 - b))


def erlang_c_service_level(n: int, a: float, target_s: float, aht_s: float) -> float:
    """Share of contacts answered within target_s with n agents: 1 - C(n, a) e^{-(n - a) T / aht}."""
    return 1 - erlang_c(n, a) * math.exp(-(n - a) * target_s / aht_s)


def agents_needed(a: float, target_s: float, aht_s: float, service_level: float) -> int:
    """The smallest n > a (occupancy a/n < 1) whose service level reaches the target."""
    if a == 0:
        return 1
    n = math.floor(a) + 1
    while erlang_c_service_level(n, a, target_s, aht_s) < service_level:
        n += 1
    return n


def _union_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    total, cur_b, cur_e = 0.0, None, None
    for b, e in sorted(intervals):
        if cur_e is None or b > cur_e:
            if cur_e is not None:
                total += (cur_e - cur_b).total_seconds()
            cur_b, cur_e = b, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += (cur_e - cur_b).total_seconds()
    return total


def compute_staffing(
    events: list[dict],
    date_from: date | None = None,
    date_to: date | None = None,
    config: ReferenceConfig = ReferenceConfig(),
    *,
    channels: Iterable[str] = (),
    tz: str = "UTC",
    service_level: float = 0.8,
    call_target_s: float = 20.0,
) -> list[dict]:
    """One row per (channel, weekday 0 = Monday, hour in `tz`) with STAFFING_KEYS."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    data = _Data(events, config)

    def slot(t: datetime) -> tuple[int, int]:
        local = t.astimezone(zone)
        return local.weekday(), local.hour

    # inbound contacts, all time: (channel, start, first operator, raw handle seconds)
    inbound: list[tuple[str, datetime, str | None, float | None]] = []
    for c in data.conversations.values():
        if c.channel == "call" or c.initiated_by != "visitor":
            continue
        first = next((m for m in c.messages if m["author"] == "operator"), None)
        raw = None
        if first is not None and c.closed_at is not None:
            raw = max(0.0, (c.closed_at - first["_ts"]).total_seconds())
        inbound.append((c.channel, c.start, first["operator_id"] if first else None, raw))
    for call in data.inbound_calls:
        raw = None
        if call.outcome == "answered" and call.answered_at is not None:
            raw = (call.ended_at - call.answered_at).total_seconds()
        inbound.append(("call", call.started_at, None, raw))
    if not inbound:
        return []

    # K1: the period, bounded by the contacts
    first_day = min(t for _c, t, _o, _r in inbound).date()
    last_day = max(t for _c, t, _o, _r in inbound).date() + timedelta(days=1)
    d0 = max(date_from, first_day) if date_from else first_day
    d1 = min(date_to, last_day) if date_to else last_day
    p0 = datetime(d0.year, d0.month, d0.day, tzinfo=timezone.utc)
    p1 = datetime(d1.year, d1.month, d1.day, tzinfo=timezone.utc)

    # K2: clock hours per hour of week
    n_hours: dict[tuple[int, int], int] = defaultdict(int)
    h = p0
    while h < p1:
        n_hours[slot(h)] += 1
        h += _HOUR

    # handling intervals of the period (as max_concurrency)
    intervals: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    for c in data.conversations.values():
        if c.channel == "call" or not p0 <= c.start < p1:
            continue
        f = _conv_facts(c, data)
        end = _conv_end(c)
        for op in f.operators:
            b = max(c.start, f.op_first_msg[op])
            intervals[(c.channel, op)].append((b, max(end, b)))
    for call in data.inbound_calls:
        if call.outcome == "answered" and call.operator_id and p0 <= call.started_at < p1:
            intervals[("call", call.operator_id)].append((call.answered_at or call.started_at, call.ended_at))

    # K3: mean concurrency = busy time / time with at least one open
    conc: dict[tuple[str, str], float] = {}
    for key, ivs in intervals.items():
        union = _union_seconds(ivs)
        conc[key] = 1.0 if union == 0 else sum((e - b).total_seconds() for b, e in ivs) / union

    counts: dict[tuple[str, int, int], int] = defaultdict(int)
    handles: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    channel_handles: dict[str, list[float]] = defaultdict(list)
    for ch, at, op, raw in inbound:
        if not p0 <= at < p1:
            continue
        wd, hr = slot(at)
        counts[(ch, wd, hr)] += 1
        if raw is not None:
            handle = raw if ch == "call" else raw / conc[(ch, op)]
            handles[(ch, wd, hr)].append(handle)
            channel_handles[ch].append(handle)

    # K5: distinct operators per clock hour their interval touches
    seen_hour: dict[tuple[str, int], set[str]] = defaultdict(set)
    for (ch, op), ivs in intervals.items():
        for b, e in ivs:
            b_ms = round(b.timestamp() * 1000)
            e_ms = round(e.timestamp() * 1000)
            for hr in range(b_ms // 3_600_000, max(b_ms, e_ms - 1) // 3_600_000 + 1):
                start = datetime.fromtimestamp(hr * 3600, tz=timezone.utc)
                if p0 <= start < p1:
                    seen_hour[(ch, hr)].add(op)
    seen: dict[tuple[str, int, int], int] = defaultdict(int)
    for (ch, hr), ops in seen_hour.items():
        wd, hh = slot(datetime.fromtimestamp(hr * 3600, tz=timezone.utc))
        seen[(ch, wd, hh)] += len(ops)

    wanted = set(channels)
    rows = []
    for ch in sorted({c for c, _t, _o, _r in inbound}):
        if wanted and ch not in wanted:
            continue
        target = call_target_s if ch == "call" else config.sla_seconds.get(ch)
        for wd in range(7):
            for hr in range(24):
                key = (ch, wd, hr)
                nh = n_hours.get((wd, hr), 0)
                cph = _ratio(counts[key], nh)
                aht = None
                if counts[key]:
                    aht = _mean(handles[key]) if handles[key] else _mean(channel_handles[ch])
                needed = None
                if cph and aht is not None and target is not None:
                    needed = agents_needed(cph * aht / 3600, target, aht, service_level)
                observed = _ratio(seen[key], nh)
                rows.append({
                    "channel": ch, "weekday": wd, "hour": hr, "contacts_per_hour": cph, "aht_s": aht,
                    "target_s": None if target is None else float(target), "service_level": service_level,
                    "agents_needed": needed, "agents_observed": observed,
                    "gap": None if needed is None or observed is None else needed - observed,
                })
    return rows
