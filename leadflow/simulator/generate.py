"""Event generation: turns the business of ``business.py`` into contract events.

The simulation walks day by day through arrivals (visits, calls, lead-ad forms,
support contacts) in time order, keeping the contact centre's state (who is on
shift, who holds how many chats, who is on a call), and writes each journey's
events at once: the chat with its messages, the lead, the CRM deal days later,
the payments months later. Every event is serialised once (orjson when
available) and put in a bucket of its *delivery* day; a day's bucket is sorted
by delivery time and yielded once no later arrival can add to it. Delivery
time is the occurrence time except for out-of-order events (delayed by minutes
to hours), duplicates (the same bytes re-sent later) and a few leads that
arrive after the CRM deal they link.

Same config -> same bytes (one ``random.Random(seed)``, no clock, no hash order).
"""
from __future__ import annotations

import gc
import heapq
import json
import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterator

from . import business as B
from .business import DAY_MS, HOUR_MS, MINUTE_MS

try:  # orjson is a project dependency; fall back to json so the module imports anywhere
    from orjson import dumps as _orjson_dumps

    def _dumps(obj) -> bytes:
        # orjson's bytes keep a ~4 KiB buffer each; a compact copy keeps a day of events small in memory
        return bytes(memoryview(_orjson_dumps(obj)))
except ImportError:  # pragma: no cover
    def _dumps(obj, _enc=json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode):
        return _enc(obj).encode()

VALID, DUPLICATE, INVALID = 0, 1, 2

INVALID_KINDS = ("lead_without_contact", "operator_message_without_operator", "score_out_of_range",
                 "negative_cost", "answered_before_started", "missing_event_id", "not_json")

SLOT_MS = B.SLOT_MIN * MINUTE_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# occurred_at offsets: the same instants written in three notations.
_TZS = ((0, "Z"), (3 * HOUR_MS, "+03:00"), (-5 * HOUR_MS, "-05:00"))
# per source: P(Z), P(Z or +03:00); the rest is -05:00
_SOURCE_TZ = {
    "site": (0.60, 1.00), "site-chat": (0.55, 0.90), "messenger-hub": (0.30, 0.65),
    "pbx": (0.25, 0.25), "crm": (0.20, 0.90), "billing": (1.00, 1.00),
    "ads-search": (0.50, 0.50), "ads-meta": (0.40, 0.40), "ads-display": (1.00, 1.00), "esp": (0.50, 1.00),
}
_MM = [f"{m:02d}:" for m in range(60)]
_SS_MS = [f"{s:02d}.{ms:03d}" for s in range(60) for ms in range(1000)]


@dataclass(frozen=True)
class SimulationConfig:
    days: int = 30
    seed: int = 7
    start: date = date(2026, 5, 1)
    visitors_per_day: int = 300
    duplicate_share: float = 0.01  # share of events re-sent later as an exact copy
    out_of_order_share: float = 0.02  # share of events delivered minutes to hours late
    invalid_share: float = 0.002  # invalid lines added per valid event
    operators: int | None = None  # None: 10 for 300 visitors a day, scaled with traffic
    utc_offset_hours: int = 0  # the business's local time (load curves, shifts, spend dates)
    run_id: str | None = None  # prefix of every id; default "s<seed>"
    tail_hours: float = 6.0  # events occurring up to this long after the last day are kept

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.visitors_per_day < 0:
            raise ValueError("visitors_per_day must be >= 0")
        for name in ("duplicate_share", "out_of_order_share", "invalid_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 0.5:
                raise ValueError(f"{name} must be in [0, 0.5]")
        if self.operators is not None and self.operators < 1:
            raise ValueError("operators must be >= 1")
        if not -12 <= self.utc_offset_hours <= 14:
            raise ValueError("utc_offset_hours must be in [-12, 14]")
        if self.tail_hours < 0:
            raise ValueError("tail_hours must be >= 0")


class _Op:
    __slots__ = ("id", "p", "open", "busy_until")

    def __init__(self, op_id: str, profile: B.OperatorProfile) -> None:
        self.id = op_id
        self.p = profile
        self.open: list[int] = []  # close times of the chats it holds (heap)
        self.busy_until = 0  # on a call until


class _Person:
    __slots__ = ("pid", "vid", "email", "phone", "crm", "intent", "deal")

    def __init__(self, pid: int, vid: str | None, intent: float) -> None:
        self.pid = pid
        self.vid = vid
        self.email: str | None = None
        self.phone: str | None = None  # E.164
        self.crm: str | None = None
        self.intent = intent
        self.deal = False  # a CRM outcome (won or lost) is decided


def _phone_style(e164: str, style: int) -> str:
    """The same number as different systems write it."""
    if style == 0:
        return e164
    cc, d = (e164[:2], e164[2:])
    if cc == "+7":
        return f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}" if style == 1 else f"+7 {d[:3]} {d[3:]}"
    return f"+1 ({d[:3]}) {d[3:6]}-{d[6:]}" if style == 1 else f"+1 {d[:3]} {d[3:6]} {d[6:]}"


_AREA_1 = ("212", "415", "646", "917", "305", "512", "617", "702")
_AREA_7 = ("916", "903", "925", "985", "967")


class _Simulation:
    def __init__(self, cfg: SimulationConfig) -> None:
        self.cfg = cfg
        self.rng = rng = random.Random(cfg.seed)
        self.r = rng.random
        self.run = cfg.run_id or f"s{cfg.seed}"
        off = cfg.utc_offset_hours * HOUR_MS
        self.base = int((datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=timezone.utc)
                         - _EPOCH).total_seconds() * 1000) - off  # local midnight of day 0, in UTC ms
        self.local_off = off
        self.wd0 = cfg.start.weekday()
        self.horizon = self.base + cfg.days * DAY_MS + int(cfg.tail_hours * HOUR_MS)
        self.ooo, self.dup, self.inv = cfg.out_of_order_share, cfg.duplicate_share, cfg.invalid_share
        self.buckets: dict[int, list] = {}
        self.seq = 0
        self.n_ev = 0
        self.n_ids = 0
        self.n_inv = 0
        self.inv_order = list(range(len(INVALID_KINDS)))
        rng.shuffle(self.inv_order)
        self.hour_cache: dict[int, str] = {}
        self.phone_salt = (cfg.seed * 1_000_003) % 10_000_000

        n_ops = cfg.operators or B.default_operator_count(cfg.visitors_per_day)
        self.ops = [_Op(i, p) for i, p in B.operator_profiles(n_ops)]
        # duty tables per 15-minute slot of the local week (Monday 00:00 = slot 0)
        self.duty_chat: list[list[_Op]] = []
        self.duty_call: list[list[_Op]] = []
        self.chat_pressure: list[float] = []
        self.call_pressure: list[float] = []
        for s in range(B.SLOTS_PER_WEEK):
            wd, minute = divmod(s, B.SLOTS_PER_DAY)
            minute *= B.SLOT_MIN
            on = [o for o in self.ops if o.p.on_duty(wd, minute)]
            self.duty_chat.append([o for o in on if o.p.chat])
            self.duty_call.append([o for o in on if o.p.calls])
            load = B.hourly_load(wd)[minute // 60] / B.PEAK_LOAD
            # staffing pressure: traffic per operator on duty (0.25 at a weekday peak with 4 people)
            scale = load * cfg.visitors_per_day / 300.0
            self.chat_pressure.append(min(1.5, scale / len(self.duty_chat[-1])) if self.duty_chat[-1] else 1.5)
            self.call_pressure.append(min(1.5, scale / len(self.duty_call[-1])) if self.duty_call[-1] else 1.5)
        self.next_chat = self._next_duty(self.duty_chat)
        self.next_call = self._next_duty(self.duty_call)
        self.rr = 0

        self.sources = {s.key: s for s in B.SOURCES}
        self.direct = self.sources["direct"]
        self.lead_ad_src = self.sources[B.LEAD_AD_SOURCE]
        self.new_cum = []
        self.ret_cum = []
        for wd in range(7):
            acc_n = acc_r = 0.0
            cn, cr = [], []
            for s in B.SOURCES:
                acc_n += s.new_weight * s.weekday_mult[wd]
                acc_r += s.return_weight * s.weekday_mult[wd]
                cn.append(acc_n)
                cr.append(acc_r)
            self.new_cum.append(cn)
            self.ret_cum.append(cr)
        self.hour_cum = {}
        for weekend in (False, True):
            acc, cum = 0.0, []
            for w in (B.HOURLY_WEEKEND if weekend else B.HOURLY_WEEKDAY):
                acc += w
                cum.append(acc)
            self.hour_cum[weekend] = cum
        self.urls = {s.key: tuple(f"https://shop.example{p}" for p in s.landing_paths) for s in B.SOURCES}
        self.utm = {s.key: ({"source": s.utm_source, "medium": "email" if s.channel == "email" else "cpc",
                             "campaign": s.campaign_id} if s.campaign_id else None) for s in B.SOURCES}
        self.clicks = {s.key: 0 for s in B.SOURCES}
        self.pool: list[_Person] = []  # recent visitors who may come back
        self.callers: list[_Person] = []  # people with a known phone (support calls)
        self.n_person = 0
        # customers from before day 0: they pay installments, call support, and some buy again
        for _ in range(min(50_000, max(20, 2 * cfg.visitors_per_day))):
            p = self._person(self.r() < 0.7)
            self._email(p)
            if self.r() < 0.8:
                self._phone(p)
            p.crm = f"crm-{self.run}-{p.pid}"
            if p.vid is not None:
                self._remember(p)
            if self.r() < 0.35:
                self._payments(p, self.base + int(self.r() * 30 * DAY_MS), round(20 + 130 * self.r(), 2), None)

    # ------------------------------------------------------------------ utilities
    @staticmethod
    def _next_duty(table: list[list[_Op]]) -> list[int | None]:
        """For each slot, how many slots until somebody is on duty (None: nobody ever is)."""
        n = len(table)
        out: list[int | None] = [None] * n
        nxt = None  # index of the next staffed slot, walking backwards twice round the week
        for i in range(2 * n - 1, -1, -1):
            s = i % n
            if table[s]:
                nxt = i
            if i < n and nxt is not None:
                out[s] = nxt - i
        return out

    def _slot(self, t: int) -> int:
        return ((t - self.base) // SLOT_MS + self.wd0 * B.SLOTS_PER_DAY) % B.SLOTS_PER_WEEK

    def _next_open(self, t: int, table: list[int | None]) -> int | None:
        """First moment at or after t when somebody of that kind is on duty (+ a little)."""
        k = table[self._slot(t)]
        if k is None:
            return None
        if k == 0:
            return t
        start = t - (t - self.base) % SLOT_MS + k * SLOT_MS
        return start + int(self.r() * 40 * MINUTE_MS)

    def _ts(self, t: int, source: str) -> str:
        pz, p3 = _SOURCE_TZ[source]
        r = self.r()
        tz = 0 if r < pz else (1 if r < p3 else 2)
        return self._fmt(t, tz)

    def _fmt(self, t: int, tz: int) -> str:
        off, suffix = _TZS[tz]
        local = t + off
        h = local // HOUR_MS
        prefix = self.hour_cache.get(h)
        if prefix is None:
            prefix = self.hour_cache[h] = (_EPOCH + timedelta(hours=h)).strftime("%Y-%m-%dT%H:")
        rem = local - h * HOUR_MS
        return prefix + _MM[rem // MINUTE_MS] + _SS_MS[rem % MINUTE_MS] + suffix

    def _id(self, prefix: str) -> str:
        self.n_ids += 1
        return f"{prefix}-{self.run}-{self.n_ids}"

    def _eid(self, prefix: str) -> str:
        self.n_ev += 1
        return f"{prefix}-{self.run}-{self.n_ev}"

    def _lognorm(self, median: float, sigma: float) -> float:
        return median * self.rng.lognormvariate(0.0, sigma)

    def _uniform_ms(self, lo_s: float, hi_s: float) -> int:
        return int((lo_s + (hi_s - lo_s) * self.r()) * 1000)

    # ------------------------------------------------------------------ delivery
    def _push(self, deliver: int, flag: int, line: bytes) -> None:
        if deliver >= self.horizon:
            return
        self.seq += 1
        day = (deliver - self.base) // DAY_MS
        b = self.buckets.get(day)
        if b is None:
            b = self.buckets[day] = []
        b.append((deliver, self.seq, flag, line))

    def _emit(self, t: int, obj: dict, deliver: int | None = None) -> None:
        if t >= self.horizon:
            return
        line = _dumps(obj)
        r = self.r
        if deliver is None:
            deliver = t
            if r() < self.ooo:
                x = r()
                if x < 0.70:
                    deliver += int((60 + 840 * r()) * 1000)  # 1-15 min
                elif x < 0.95:
                    deliver += int((900 + 9900 * r()) * 1000)  # 15 min - 3 h
                else:
                    deliver += int((10800 + 32400 * r()) * 1000)  # 3-12 h
        self._push(deliver, VALID, line)
        if r() < self.dup:
            self._push(deliver + int((5 + 7200 * r()) * 1000), DUPLICATE, line)
        if r() < self.inv:
            t_bad = deliver + int(60_000 * r())
            self._push(t_bad, INVALID, self._invalid_line(t_bad))

    def _invalid_line(self, t: int) -> bytes:
        """One line of each kind of invalid.jsonl, in turn (shuffled once per seed)."""
        kind = self.inv_order[self.n_inv % len(INVALID_KINDS)]
        self.n_inv += 1
        eid = f"bad-{self.run}-{self.n_inv}"
        ts = self._fmt(t, 0)
        r = self.r
        if kind == 0:
            obj = {"event_id": eid, "type": "lead", "occurred_at": ts, "source": "site",
                   "identity": {"visitor_id": f"v-{self.run}-x{self.n_inv}"}, "lead_id": f"L-{eid}",
                   "channel": "organic", "form": "site_form"}
        elif kind == 1:
            obj = {"event_id": eid, "type": "message", "occurred_at": ts, "source": "site-chat",
                   "conversation_id": f"conv-{eid}", "author": "operator", "text_length": 40}
        elif kind == 2:
            nps = r() < 0.5
            obj = {"event_id": eid, "type": "survey_response", "occurred_at": ts, "source": "site-chat",
                   "survey": "nps" if nps else "csat",
                   "score": (11 + int(r() * 5)) if nps else (0 if r() < 0.5 else 6 + int(r() * 5))}
        elif kind == 3:
            obj = {"event_id": eid, "type": "ad_spend", "occurred_at": ts, "source": "ads-search",
                   "campaign_id": "search-brand", "channel": "search_ads",
                   "date": self._local_date(t - DAY_MS), "cost": f"-{1 + 300 * r():.2f}", "currency": "USD"}
        elif kind == 4:
            obj = {"event_id": eid, "type": "call_completed", "occurred_at": ts, "source": "pbx",
                   "identity": {"phone": "+15550000000"}, "call_id": f"call-{eid}", "direction": "inbound",
                   "started_at": self._fmt(t - 120_000, 0), "answered_at": self._fmt(t - 150_000, 0),
                   "ended_at": ts, "outcome": "answered", "operator_id": self.ops[0].id}
        elif kind == 5:
            obj = {"type": "ad_click", "occurred_at": ts, "source": "site",
                   "identity": {"visitor_id": f"v-{self.run}-x{self.n_inv}"},
                   "campaign_id": "search-brand", "channel": "search_ads"}
        else:
            if r() < 0.3:
                return b"<html><body>502 Bad Gateway</body></html>"
            whole = _dumps({"event_id": eid, "type": "ad_click", "occurred_at": ts, "source": "site",
                            "identity": {"visitor_id": f"v-{self.run}-x{self.n_inv}"},
                            "campaign_id": "search-brand", "channel": "search_ads"})
            return whole[: 20 + int((len(whole) - 25) * r())]  # a truncated object is never JSON
        return _dumps(obj)

    def _local_date(self, t: int) -> str:
        return (_EPOCH + timedelta(milliseconds=t + self.local_off)).strftime("%Y-%m-%d")

    # ------------------------------------------------------------------ people
    def _person(self, with_visitor: bool) -> _Person:
        self.n_person += 1
        pid = self.n_person
        p = _Person(pid, f"v-{self.run}-{pid}" if with_visitor else None,
                    min(3.0, self.rng.lognormvariate(0.0, 0.45)))
        return p

    def _email(self, p: _Person) -> str:
        if p.email is None:
            k = p.pid * 2654435761
            p.email = (f"{B.FIRST_NAMES[k % 20]}.{B.LAST_NAMES[(k >> 8) % 15]}{p.pid}"
                       f"@{B.EMAIL_DOMAINS[(k >> 16) % 4]}")
        return p.email

    def _phone(self, p: _Person) -> str:
        if p.phone is None:
            n = ((p.pid + self.phone_salt) * 7_654_321) % 10_000_000
            k = p.pid * 40503
            if (k >> 4) % 10 < 3:
                p.phone = f"+7{_AREA_7[k % 5]}{n:07d}"
            else:
                p.phone = f"+1{_AREA_1[k % 8]}{n:07d}"
            if len(self.callers) < 50_000:
                self.callers.append(p)
            else:
                self.callers[int(self.r() * 50_000)] = p
        return p.phone

    def _phone_out(self, p: _Person) -> str:
        r = self.r()
        return _phone_style(self._phone(p), 0 if r < 0.6 else (1 if r < 0.85 else 2))

    def _email_out(self, e: str) -> str:
        r = self.r()
        if r < 0.65:
            return e
        if r < 0.8:
            return e[0].upper() + e[1:]
        if r < 0.9:
            return " " + e.upper()
        local, _, domain = e.partition("@")
        return f"{local.title()}@{domain.capitalize()} "

    def _remember(self, p: _Person) -> None:
        if len(self.pool) < 50_000:
            self.pool.append(p)
        else:
            self.pool[int(self.r() * 50_000)] = p

    # ------------------------------------------------------------------ the day
    def days(self) -> Iterator[list]:
        cfg = self.cfg
        for d in range(cfg.days):
            self._day(d)
            yield self._flush(d)
        for d in sorted(self.buckets):
            yield self._flush(d)

    def _flush(self, d: int) -> list:
        b = self.buckets.pop(d, None)
        if not b:
            return []
        b.sort()
        return b

    def _day(self, d: int) -> None:
        cfg, r, rng = self.cfg, self.r, self.rng
        wd = (self.wd0 + d) % 7
        day0 = self.base + d * DAY_MS
        factor = B.WEEKDAY_FACTOR[wd] * (0.9 + 0.2 * r())
        vpd = cfg.visitors_per_day * factor
        hour_cum = self.hour_cum[wd >= 5]

        def times(n: float) -> list[int]:
            k = int(n) + (1 if r() < n - int(n) else 0)
            hours = rng.choices(range(24), cum_weights=hour_cum, k=k)
            return [day0 + h * HOUR_MS + int(r() * HOUR_MS) for h in hours]

        # 0 visit, 1 support chat, 2 support call, 3 unknown caller, 4 lead-ad form
        arrivals = [(t, 0) for t in times(vpd)]
        arrivals += [(t, 1) for t in times(vpd * B.SUPPORT_CHATS_PER_VISIT)]
        arrivals += [(t, 2) for t in times(vpd * B.SUPPORT_CALLS_PER_VISIT)]
        arrivals += [(t, 3) for t in times(vpd * B.NEW_CALLERS_PER_VISIT)]
        arrivals += [(t, 4) for t in times(vpd * B.LEAD_ADS_PER_VISIT)]
        arrivals.sort()
        n_visits = sum(1 for a in arrivals if a[1] == 0)
        new_src = rng.choices(B.SOURCES, cum_weights=self.new_cum[wd], k=n_visits)
        ret_src = rng.choices(B.SOURCES, cum_weights=self.ret_cum[wd], k=n_visits)
        for c in self.clicks:
            self.clicks[c] = 0
        vi = 0
        pool = self.pool
        for t, kind in arrivals:
            if kind == 0:
                if pool and r() < B.RETURNING_SHARE:
                    person = pool[int(r() * len(pool))]
                    src = ret_src[vi]
                else:
                    person = self._person(True)
                    src = new_src[vi]
                    self._remember(person)
                vi += 1
                self._visit(t, src, person)
            elif kind == 1:
                if pool:
                    person = pool[int(r() * len(pool))]
                    self._chat(t, person, self.direct, "visitor", support=True)
            elif kind == 2:
                if self.callers:
                    person = self.callers[int(r() * len(self.callers))]
                    self._call_in(t, person, None, "support")
            elif kind == 3:
                person = self._person(False)
                answered, agent, _ = self._call_in(t, person, None, "sales")
                if answered:
                    self._qualify(t + 10 * MINUTE_MS, person, self.direct, 0.8, agent)
            else:
                self._lead_ad(t)
        self._ad_spend(day0, wd)

    # ------------------------------------------------------------------ marketing
    def _visit(self, t: int, src: B.TrafficSource, person: _Person) -> None:
        r = self.r
        if src.campaign_id is not None:
            self.clicks[src.key] += 1
            urls = self.urls[src.key]
            self._emit(t, {"event_id": self._eid("ck"), "type": "ad_click", "occurred_at": self._ts(t, "site"),
                           "source": "site", "identity": {"visitor_id": person.vid},
                           "campaign_id": src.campaign_id, "channel": src.channel,
                           "landing_url": urls[int(r() * len(urls))], "utm": self.utm[src.key]})
        x = r()
        p = src.p_chat
        if x < p:
            self._chat(t + self._uniform_ms(10, 600), person, src, "visitor")
            return
        p += B.PROACTIVE_OPERATOR
        if x < p:
            self._chat(t + self._uniform_ms(30, 180), person, src, "operator")
            return
        p += B.PROACTIVE_BOT
        if x < p:
            self._chat(t + self._uniform_ms(20, 120), person, src, "bot")
            return
        p += src.p_form * (0.5 if person.deal else 1.0)
        if x < p:
            self._form(t + self._uniform_ms(60, 900), person, src)
            return
        p += src.p_call
        if x < p:
            tc = t + self._uniform_ms(60, 1800)
            answered, agent, wait = self._call_in(tc, person, src, "sales")
            if answered:
                speed = 0.45 + 0.55 * math.exp(-wait / 60.0)
                self._qualify(tc + 5 * MINUTE_MS, person, src, 1.3 * speed, agent)

    def _lead_obj(self, t: int, person: _Person, src: B.TrafficSource, source: str, form: str,
                  email: bool, phone: bool) -> dict:
        ident = {}
        if person.vid is not None:
            ident["visitor_id"] = person.vid
        if email:
            ident["email"] = self._email(person)
        if phone:
            ident["phone"] = self._phone_out(person)
        obj = {"event_id": self._eid("ld"), "type": "lead", "occurred_at": self._ts(t, source), "source": source,
               "identity": ident, "lead_id": self._id("L"), "channel": src.channel}
        if src.campaign_id is not None:
            obj["campaign_id"] = src.campaign_id
        obj["form"] = form
        return obj

    def _lead(self, t: int, obj: dict, deal: tuple[int, bool] | None) -> None:
        """Emit a lead; when its deal names only phone + crm id, it sometimes arrives after the deal."""
        deliver = None
        if deal is not None and deal[1] and self.ooo > 0 and "phone" in obj["identity"] and self.r() < 0.5:
            deliver = deal[0] + self._uniform_ms(60, 3 * 3600)
            if deliver >= self.horizon:
                deliver = None
        self._emit(t, obj, deliver)

    def _form(self, t: int, person: _Person, src: B.TrafficSource) -> None:
        r = self.r
        has_phone = r() < 0.65
        obj = self._lead_obj(t, person, src, "site", "site_form", True, has_phone)
        factor, agent = self._follow_up(t, person, has_phone)
        self._lead(t, obj, self._qualify(t, person, src, factor, agent))

    def _lead_ad(self, t: int) -> None:
        person = self._person(False)
        src = self.lead_ad_src
        has_phone = self.r() < 0.7
        obj = self._lead_obj(t, person, src, "ads-meta", "lead_ad", True, has_phone)
        factor, agent = self._follow_up(t, person, has_phone)
        self._lead(t, obj, self._qualify(t, person, src, factor, agent))

    def _follow_up(self, t: int, person: _Person, phone: bool) -> tuple[float, _Op | None]:
        """Sales calls a new lead back; the longer it takes, the colder the lead."""
        if not phone:
            return 0.55, None  # an e-mail reply, no event
        slot = self._slot(t)
        if self.duty_call[slot]:
            tc = t + int(self._lognorm(25 * 60, 0.8) * (1 + 2 * self.call_pressure[slot]) * 1000)
        else:
            tc = self._next_open(t, self.next_call)
            if tc is None:
                return 0.4, None
        answered, agent = self._call_out(tc, person, "sales")
        delay_h = (tc - t) / HOUR_MS
        return (0.35 + 0.65 * math.exp(-delay_h / 2.0)) * (1.0 if answered else 0.45), agent

    def _ad_spend(self, day0: int, wd: int) -> None:
        r = self.r
        day = self._local_date(day0 + HOUR_MS)
        for s in B.SOURCES:
            if s.campaign_id is None:
                continue
            tracked = self.clicks[s.key]
            if s.cpc > 0:
                clicks = round(tracked * (1.04 + 0.16 * r()))
                cost = clicks * s.cpc * (0.9 + 0.2 * r())
                impressions = round(clicks / (s.ctr * (0.85 + 0.3 * r()))) if clicks else int(2000 * r())
            elif s.weekday_mult[wd] >= 1.0:  # an e-mail send
                clicks = tracked
                cost = s.fixed_daily_cost * (0.95 + 0.1 * r())
                impressions = int(self.cfg.visitors_per_day * (25 + 5 * r()))
            else:
                continue
            t = day0 + DAY_MS + self._uniform_ms(3600, 5 * 3600)
            obj = {"event_id": self._eid("sp"), "type": "ad_spend", "occurred_at": self._ts(t, s.spend_source),
                   "source": s.spend_source, "campaign_id": s.campaign_id, "channel": s.channel, "date": day,
                   "cost": f"{cost:.2f}", "currency": "USD", "impressions": impressions, "clicks": clicks}
            self._emit(t, obj)
            if r() < 0.12:  # the network restates the day
                t2 = t + self._uniform_ms(6 * 3600, 3 * 86400)
                obj2 = dict(obj, event_id=self._eid("sp"), occurred_at=self._ts(t2, s.spend_source),
                            cost=f"{cost * (0.93 + 0.12 * r()):.2f}")
                self._emit(t2, obj2)

    # ------------------------------------------------------------------ contact centre: chat
    def _pick_chat_op(self, t: int, slot: int, exclude: _Op | None = None) -> tuple[_Op | None, int]:
        ops = self.duty_chat[slot]
        n = len(ops)
        if not n:
            return None, 0
        r = self.r
        bg = min(0.7, 0.05 + 0.6 * self.chat_pressure[slot])  # busy with e-mail, CRM notes, a colleague
        self.rr += 1
        start = self.rr % n
        for i in range(min(n, 6)):
            op = ops[(start + i) % n]
            if op is exclude or op.busy_until > t:
                continue
            h = op.open
            while h and h[0] <= t:
                heapq.heappop(h)
            if len(h) < op.p.max_chats and r() >= bg:
                return op, len(h)
        return None, 0

    def _any_chat_op(self, t: int, exclude: _Op | None = None) -> _Op | None:
        ops = [o for o in self.duty_chat[self._slot(t)] if o is not exclude]
        return ops[int(self.r() * len(ops))] if ops else None

    def _msg(self, t: int, conv: str, vid: str | None, source: str, author: str,
             op: _Op | None = None, template: str | None = None, text_length: int | None = None) -> None:
        obj = {"event_id": self._eid("m"), "type": "message", "occurred_at": self._ts(t, source), "source": source}
        if vid is not None:
            obj["identity"] = {"visitor_id": vid}
        obj["conversation_id"] = conv
        obj["author"] = author
        if op is not None:
            obj["operator_id"] = op.id
        if template is not None:
            obj["template_id"] = template
        if text_length is not None:
            obj["text_length"] = text_length
        self._emit(t, obj)

    def _close(self, t: int, conv: str, source: str, resolved: bool | None) -> None:
        obj = {"event_id": self._eid("cc"), "type": "conversation_closed", "occurred_at": self._ts(t, source),
               "source": source, "conversation_id": conv}
        if resolved is not None:
            obj["resolved"] = resolved
        self._emit(t, obj)

    def _chat(self, t0: int, person: _Person, src: B.TrafficSource, initiated_by: str,
              support: bool = False) -> None:
        r, rng = self.r, self.rng
        messenger = r() < B.MESSENGER_SHARE
        source = "messenger-hub" if messenger else "site-chat"
        slot = self._slot(t0)
        pressure = self.chat_pressure[slot]
        op: _Op | None = None
        open_n = 0
        if initiated_by == "operator":
            op, open_n = self._pick_chat_op(t0, slot)
            if op is None:
                initiated_by = "bot"
        conv = self._id("conv")
        vid = person.vid
        ident: dict = {"visitor_id": vid}
        if messenger and r() < 0.5:
            ident["phone"] = self._phone_out(person)
        obj = {"event_id": self._eid("cs"), "type": "conversation_started", "occurred_at": self._ts(t0, source),
               "source": source, "identity": ident, "conversation_id": conv,
               "channel": "messenger" if messenger else "chat", "initiated_by": initiated_by}
        if src.campaign_id is not None and not support:
            obj["campaign_id"] = src.campaign_id
        self._emit(t0, obj)

        t = t0
        if initiated_by != "visitor":  # an invitation: most visitors ignore it
            t += self._uniform_ms(0.5, 3)
            if initiated_by == "operator":
                self._msg(t, conv, vid, source, "operator", op, "invite-1" if r() < 0.8 else None, 60)
            else:
                self._msg(t, conv, vid, source, "bot", None, "bot-invite", 45)
            if r() < 0.6:
                self._close(t + self._uniform_ms(300, 1200), conv, source, False)
                return
        t1 = t + self._uniform_ms(2, 30)
        self._msg(t1, conv, vid, source, "visitor", text_length=int(self._lognorm(45, 0.6)))
        patience = self._lognorm(B.PATIENCE_MESSENGER_S if messenger else B.PATIENCE_CHAT_S, 0.7)

        # --- the triage bot answers first on part of the chats in working hours (issue 17)
        bot_first = initiated_by == "visitor" and bool(self.duty_chat[slot]) and r() < B.BOT_TRIAGE_SHARE
        if bot_first:
            tb = t1 + self._uniform_ms(1, 3)
            self._msg(tb, conv, vid, source, "bot", None, "bot-triage", 90)
            if r() < B.BOT_CONTAINED:  # an FAQ answer settles it: no operator
                t2 = tb + self._uniform_ms(10, 60)
                self._msg(t2, conv, vid, source, "visitor", text_length=int(self._lognorm(30, 0.5)))
                t3 = t2 + self._uniform_ms(1, 3)
                self._msg(t3, conv, vid, source, "bot", None, "bot-faq", 240)
                self._close(t3 + self._uniform_ms(30, 240), conv, source, True)
                return
            patience *= 2.0  # "an operator will join you" buys time

        # --- first response
        frt: float | None = None
        overnight = False  # a messenger message left at night waits for the morning shift
        if op is not None:  # the inviting operator answers the reply
            frt = self._lognorm(op.p.frt_median_s * 0.5, 0.5) * (1 + 0.35 * open_n)
        else:
            op, open_n = self._pick_chat_op(t1, slot)
            if op is not None:
                frt = self._lognorm(op.p.frt_median_s, 0.55) * (1 + 2.5 * pressure) * (1 + 0.35 * open_n)
                if messenger:
                    frt *= 3
        if op is None:
            night = not self.duty_chat[slot]
            if not bot_first and (night or r() < B.BOT_AT_PEAK):
                tb = t1 + self._uniform_ms(1.5, 4)
                self._msg(tb, conv, vid, source, "bot", None, "bot-after-hours" if night else "bot-hello", 80)
                if night and not messenger:
                    self._bot_takes_contact(tb, conv, vid, source, person, src, support)
                    return
                if night:  # messenger: the morning shift answers
                    tm = self._next_open(t1, self.next_chat)
                    op = self._any_chat_op(tm) if tm is not None else None
                    if op is None:
                        self._close(tb + self._uniform_ms(600, 3600), conv, source, False)
                        return
                    frt = (tm - t1) / 1000 + self._lognorm(op.p.frt_median_s * 2, 0.5)
                    overnight = True
                else:
                    patience *= 2.5  # the bot's "an operator will join shortly" buys some time
                    wait = rng.expovariate(1.0 / (150 * (1 + 2 * pressure)))
                    if wait > patience:
                        self._close(t1 + int(patience * 1000), conv, source, False)
                        return
                    op = self._any_chat_op(t1)
                    frt = wait
            else:
                wait = rng.expovariate(1.0 / (240 * (1 + 2 * pressure)))
                if wait < patience:
                    op = self._any_chat_op(t1)
                    frt = wait
        if bot_first and frt is not None:  # the operator joins after the bot's answer
            frt = max(frt, (tb - t1) / 1000 + 0.5)
        if op is None or frt is None or (frt > patience and not overnight):
            # missed: nobody answered while the visitor waited
            t_gone = t1 + int(patience * 1000)
            if op is not None and frt is not None and r() < 0.4:  # the late answer reaches an empty room
                ta = t1 + int(frt * 1000)
                self._msg(ta, conv, vid, source, "operator", op,
                          "greeting-1" if r() < op.p.template_habit + 0.3 else None, int(self._lognorm(70, 0.5)))
                self._close(ta + self._uniform_ms(120, 600), conv, source, False)
                heapq.heappush(op.open, ta + 60_000)
            elif r() < 0.85:
                self._close(t_gone + self._uniform_ms(5, 60), conv, source, False)
            return

        # --- the dialogue
        t = t1 + int(frt * 1000)
        self._msg(t, conv, vid, source, "operator", op,
                  ("greeting-1" if r() < 0.7 else "greeting-2") if r() < min(0.9, op.p.template_habit + 0.3) else None,
                  int(self._lognorm(70, 0.5)))
        involved = [op]
        cur = op
        turns = 1
        while turns < 8 and r() < 0.62:
            turns += 1
        speed = 0.35 + 0.65 * math.exp(-frt / 150.0)
        cap_p = (0.05 if support else 0.55) * min(1.5, person.intent) * speed * cur.p.skill
        cap_turn = 1 + int(r() * turns) if r() < cap_p else 0
        lead: tuple[int, dict] | None = None
        transfers = 0
        think = (90.0, 900.0) if messenger else (10.0, 90.0)
        for k in range(1, turns + 1):
            t += self._uniform_ms(*think)
            self._msg(t, conv, vid, source, "visitor", text_length=int(self._lognorm(50, 0.7)))
            if r() < 0.3:
                t += self._uniform_ms(4, 25)
                self._msg(t, conv, vid, source, "visitor", text_length=int(self._lognorm(30, 0.7)))
            if k == cap_turn:
                tl = t + self._uniform_ms(2, 20)
                email = r() < 0.7
                phone = not email or r() < 0.5
                lead = (tl, self._lead_obj(tl, person, src, source, "chat", email, phone))
            if k > 1 and r() < cur.p.transfer_rate:
                other = self._pick_chat_op(t, self._slot(t), exclude=cur)[0] or self._any_chat_op(t, cur)
                if other is not None:
                    t += self._uniform_ms(10, 45)
                    self._emit(t, {"event_id": self._eid("tr"), "type": "conversation_transferred",
                                   "occurred_at": self._ts(t, source), "source": source,
                                   "conversation_id": conv, "from_operator_id": cur.id,
                                   "to_operator_id": other.id})
                    cur = other
                    involved.append(other)
                    transfers += 1
            art = self._lognorm(cur.p.frt_median_s * 0.6, 0.5) * (1 + pressure) * (2 if messenger else 1)
            t += int(art * 1000)
            self._msg(t, conv, vid, source, "operator", cur,
                      f"tpl-{1 + int(r() * 12)}" if r() < cur.p.template_habit else None,
                      int(self._lognorm(90, 0.6)))
        t_close = t + self._uniform_ms(20, 200)
        resolved = r() < 0.85 - 0.2 * transfers - (0.15 if frt > 60 else 0.0)
        self._close(t_close, conv, source, resolved)
        for o in involved:
            heapq.heappush(o.open, t_close)
        quality = (0.6 if resolved else -1.0) - 0.5 * transfers - min(1.0, frt / 240.0)
        self._survey(t_close, source, cur, quality, conv=conv, ident={"visitor_id": vid} if r() < 0.7 else None,
                     csat_p=0.22, nps_p=0.08)
        if lead is not None:
            tl, obj = lead
            self._lead(tl, obj, self._qualify(tl, person, src, speed * (1.1 if resolved else 0.8), cur))
        elif not support and resolved and person.phone is not None:
            self._qualify(t_close, person, src, 0.6 * speed, cur)

    def _bot_takes_contact(self, t: int, conv: str, vid: str | None, source: str, person: _Person,
                           src: B.TrafficSource, support: bool) -> None:
        """At night the bot asks for a phone number; sales calls back in the morning."""
        r = self.r
        if not support and r() < 0.38:
            t += self._uniform_ms(20, 120)
            self._msg(t, conv, vid, source, "visitor", text_length=int(self._lognorm(20, 0.4)))
            tl = t + 1500
            obj = self._lead_obj(tl, person, src, source, "chat", r() < 0.4, True)
            t = tl + self._uniform_ms(1.5, 3)
            self._msg(t, conv, vid, source, "bot", None, "bot-thanks", 60)
            self._close(t + self._uniform_ms(30, 180), conv, source, True)
            factor, agent = self._follow_up(t, person, True)
            self._lead(tl, obj, self._qualify(tl, person, src, factor, agent))
        else:
            self._close(t + self._uniform_ms(60, 600), conv, source, False)

    # ------------------------------------------------------------------ contact centre: calls
    def _pick_agent(self, t: int, slot: int) -> tuple[_Op | None, float]:
        ops = self.duty_call[slot]
        n = len(ops)
        if not n:
            return None, 0.0
        r = self.r
        bg = min(0.7, 0.03 + 0.5 * self.call_pressure[slot])
        self.rr += 1
        start = self.rr % n
        best, best_t = None, 0
        for i in range(min(n, 6)):
            op = ops[(start + i) % n]
            free_at = op.busy_until
            if free_at <= t:
                if r() >= bg:
                    return op, 0.0
                free_at = t + int(self.rng.expovariate(1 / 45.0) * 1000)  # back from other work
            if best is None or free_at < best_t:
                best, best_t = op, free_at
        return best, (best_t - t) / 1000

    def _call_in(self, t: int, person: _Person, src: B.TrafficSource | None,
                 queue: str) -> tuple[bool, _Op | None, float]:
        """An inbound call; returns (answered, agent, wait seconds)."""
        r = self.r
        slot = self._slot(t)
        agent, wait = self._pick_agent(t, slot)
        answered_at = None
        if agent is None:  # after hours or everybody at lunch: it rings out
            outcome, ended = "missed", t + self._uniform_ms(20, 45)
        else:
            wait += 3 + 12 * r()
            patience = self._lognorm(B.CALL_PATIENCE_S, 0.6)
            if wait > B.RING_TIMEOUT_S and patience > B.RING_TIMEOUT_S:
                outcome, ended = "missed", t + int(B.RING_TIMEOUT_S * 1000)
            elif wait > patience:
                outcome, ended = "abandoned", t + int(patience * 1000)
            else:
                outcome = "answered"
                answered_at = t + int(wait * 1000)
                talk = self._lognorm(B.TALK_MEDIAN_S * (0.6 if queue == "support" else 1.0), 0.6)
                ended = answered_at + int(talk * 1000)
                agent.busy_until = ended + self._uniform_ms(20, 60)
        obj = {"event_id": self._eid("call"), "type": "call_completed", "occurred_at": "", "source": "pbx",
               "identity": {"phone": self._phone_out(person)}, "call_id": self._id("call"),
               "direction": "inbound"}
        self._call_times(obj, t, answered_at, ended)
        obj["outcome"] = outcome
        if answered_at is not None:
            obj["operator_id"] = agent.id
        obj["queue"] = queue
        if src is not None and src.tracking_number:
            obj["tracking_number"] = src.tracking_number
            if src.campaign_id is not None:
                obj["campaign_id"] = src.campaign_id
        self._emit(ended, obj)
        if answered_at is not None:
            quality = 0.5 - min(1.5, wait / 60.0)
            self._survey(ended, "pbx", agent, quality, call=obj["call_id"],
                         ident={"phone": self._phone_out(person)} if r() < 0.7 else None, csat_p=0.12, nps_p=0.10)
            return True, agent, wait
        if queue == "sales" and r() < 0.5:  # call the number back
            tc = ended + int(self._lognorm(20 * 60, 0.7) * 1000) if self.duty_call[slot] \
                else self._next_open(ended, self.next_call)
            if tc is not None:
                answered, agent2 = self._call_out(tc, person, queue)
                if answered:
                    return True, agent2, 30 + (tc - t) / 1000
        return False, None, 0.0

    def _call_times(self, obj: dict, started: int, answered: int | None, ended: int) -> None:
        pz, p3 = _SOURCE_TZ["pbx"]
        x = self.r()
        tz = 0 if x < pz else (1 if x < p3 else 2)
        fmt = self._fmt
        obj["occurred_at"] = fmt(ended, tz)
        obj["started_at"] = fmt(started, tz)
        if answered is not None:
            obj["answered_at"] = fmt(answered, tz)
        obj["ended_at"] = fmt(ended, tz)

    def _call_out(self, t: int, person: _Person, queue: str) -> tuple[bool, _Op | None]:
        r = self.r
        ops = self.duty_call[self._slot(t)] or [o for o in self.ops if o.p.calls] or self.ops
        agent = ops[int(r() * len(ops))]
        x = r()
        answered_at = None
        if x < 0.6:
            outcome = "answered"
            answered_at = t + self._uniform_ms(5, 25)
            ended = answered_at + int(self._lognorm(B.TALK_MEDIAN_S * 0.8, 0.6) * 1000)
        elif x < 0.82:
            outcome, ended = "missed", t + self._uniform_ms(30, 50)
        elif x < 0.92:
            outcome, ended = "busy", t + self._uniform_ms(2, 6)
        else:
            outcome, ended = "failed", t + self._uniform_ms(1, 3)
        obj = {"event_id": self._eid("call"), "type": "call_completed", "occurred_at": "", "source": "pbx",
               "identity": {"phone": self._phone_out(person)}, "call_id": self._id("call"),
               "direction": "outbound"}
        self._call_times(obj, t, answered_at, ended)
        obj["outcome"] = outcome
        obj["operator_id"] = agent.id
        obj["queue"] = queue
        self._emit(ended, obj)
        return answered_at is not None, agent

    # ------------------------------------------------------------------ CRM, billing, surveys
    def _survey(self, t: int, source: str, op: _Op, quality: float, *, conv: str | None = None,
                call: str | None = None, ident: dict | None = None, csat_p: float, nps_p: float) -> None:
        r, rng = self.r, self.rng
        for survey, p in (("csat", csat_p), ("nps", nps_p)):
            if r() >= p:
                continue
            ts = t + self._uniform_ms(30, 4 * 3600)
            if survey == "csat":
                score = min(5, max(1, round(3.9 + quality + op.p.csat_bias + rng.gauss(0, 0.8))))
            else:
                score = min(10, max(0, round(7.6 + 1.6 * quality + 2 * op.p.csat_bias + rng.gauss(0, 1.6))))
            obj = {"event_id": self._eid("sv"), "type": "survey_response", "occurred_at": self._ts(ts, source),
                   "source": source}
            if ident is not None:
                obj["identity"] = ident
            obj["survey"] = survey
            obj["score"] = score
            if conv is not None:
                obj["conversation_id"] = conv
            if call is not None:
                obj["call_id"] = call
            if r() < 0.5:
                obj["operator_id"] = op.id
            self._emit(ts, obj)

    def _qualify(self, t: int, person: _Person, src: B.TrafficSource, factor: float,
                 op: _Op | None) -> tuple[int, bool] | None:
        """Decide the CRM outcome for a person who became a sales opportunity.

        Returns (deal_won time, identity is phone + crm id only) for a won deal.
        """
        if person.deal:
            return None
        r = self.r
        p = min(0.9, src.intent * person.intent * factor * (op.p.skill if op is not None else 1.0))
        x = r()
        if x < p:
            person.deal = True
            return self._deal_won(t, person, src, op)
        if x < p + (1 - p) * 0.35:
            person.deal = True
            tl = t + int(self._lognorm(7 * 86400, 0.8) * 1000)
            if tl < self.horizon:
                self._emit(tl, {"event_id": self._eid("dl"), "type": "deal_lost", "occurred_at": self._ts(tl, "crm"),
                                "source": "crm", "identity": self._crm_identity(person)[0],
                                "deal_id": self._id("D"), "reason": B.LOST_REASONS[int(r() * 6)]})
        return None

    def _crm_identity(self, person: _Person) -> tuple[dict, bool]:
        if person.crm is None:
            person.crm = f"crm-{self.run}-{person.pid}"
        crm = person.crm
        x = self.r()
        if person.email is not None and person.phone is not None:
            if x < 0.40:
                return {"email": self._email_out(person.email), "crm_contact_id": crm}, False
            if x < 0.65:
                return {"email": self._email_out(person.email), "phone": self._phone_out(person),
                        "crm_contact_id": crm}, False
            if x < 0.94:
                return {"phone": self._phone_out(person), "crm_contact_id": crm}, True
        elif person.email is not None:
            if x < 0.95:
                return {"email": self._email_out(person.email), "crm_contact_id": crm}, False
        elif person.phone is not None:
            return {"phone": self._phone_out(person), "crm_contact_id": crm}, True
        # the sales rep typed a work address nobody else knows: an unattributable customer
        return {"email": f"buyer{person.pid}@corp.example", "crm_contact_id": crm}, False

    def _deal_won(self, t: int, person: _Person, src: B.TrafficSource, op: _Op | None) -> tuple[int, bool] | None:
        r = self.r
        if r() < 0.3:
            tw = t + self._uniform_ms(3600, 8 * 3600)
        else:
            tw = t + int(min(60 * 86400, self._lognorm(3 * 86400, 0.8)) * 1000)
        if tw >= self.horizon:
            return None
        revenue = round(self._lognorm(src.ticket, 0.5) * (op.p.skill if op is not None else 1.0), 2)
        ident, phone_only = self._crm_identity(person)
        deal_id = self._id("D")
        obj = {"event_id": self._eid("dw"), "type": "deal_won", "occurred_at": self._ts(tw, "crm"), "source": "crm",
               "identity": ident, "deal_id": deal_id,
               "revenue": revenue if r() < 0.5 else f"{revenue:.2f}", "currency": "USD"}
        self._emit(tw, obj)
        if r() < 0.02:  # the deal is re-saved with a corrected amount
            t2 = tw + self._uniform_ms(3600, 5 * 86400)
            self._emit(t2, dict(obj, event_id=self._eid("dw"), occurred_at=self._ts(t2, "crm"),
                                revenue=f"{revenue * (0.85 + 0.1 * r()):.2f}"))
        if r() < B.PAYMENT_PLAN_SHARE:
            amount = max(9.0, round(revenue * (0.05 + 0.1 * r()), 2))
            self._payments(person, tw + int((1 + 11 * r()) * DAY_MS), amount, deal_id)  # the balance, on delivery
        return tw, phone_only

    def _payments(self, person: _Person, tp: int, amount: float, deal_id: str | None) -> None:
        """Installments about monthly until the customer stops (or the simulation ends)."""
        r = self.r
        while tp < self.horizon:
            obj = {"event_id": self._eid("pm"), "type": "payment", "occurred_at": self._ts(tp, "billing"),
                   "source": "billing",
                   "identity": ({"crm_contact_id": person.crm} if r() < 0.8 else
                                {"crm_contact_id": person.crm, "email": self._email_out(self._email(person))}),
                   "payment_id": self._id("P"), "amount": f"{amount:.2f}", "currency": "USD"}
            if deal_id is not None and r() < 0.6:
                obj["deal_id"] = deal_id
            self._emit(tp, obj)
            if r() > 0.85:
                break
            tp += int((28 + 5 * r()) * DAY_MS)


def iter_batches(cfg: SimulationConfig) -> Iterator[list[tuple[int, int, int, bytes]]]:
    """Events in delivery order, a day at a time: lists of (deliver_ms, seq, flag, line bytes).

    ``flag`` is VALID, DUPLICATE (an exact copy of an earlier line) or INVALID.
    """
    return _Simulation(cfg).days()


def iter_lines(cfg: SimulationConfig) -> Iterator[bytes]:
    """JSON lines as bytes (no newline), in delivery order: the fast path for big volumes."""
    for batch in iter_batches(cfg):
        for item in batch:
            yield item[3]


def simulate(cfg: SimulationConfig | None = None) -> Iterator[str]:
    """JSON lines as str (no newline), in delivery order."""
    for batch in iter_batches(cfg or SimulationConfig()):
        for item in batch:
            yield item[3].decode()


def write_jsonl(cfg: SimulationConfig, path) -> dict:
    """Write the simulation to ``path``; returns {lines, valid, duplicates, invalid}."""
    counts = [0, 0, 0]
    gc_was_on = gc.isenabled()
    gc.disable()  # the simulation makes no reference cycles; collecting costs ~15% at volume
    try:
        with open(path, "wb") as f:
            for batch in iter_batches(cfg):
                for item in batch:
                    counts[item[2]] += 1
                if batch:
                    f.write(b"\n".join(item[3] for item in batch))
                    f.write(b"\n")
    finally:
        if gc_was_on:
            gc.enable()
    return {"lines": sum(counts), "valid": counts[VALID], "duplicates": counts[DUPLICATE],
            "invalid": counts[INVALID]}


LINES_PER_VISITOR_DAY = 1.67  # lines per unit of visitors_per_day per day, measured on the default business


def config_for_lines(lines: int, *, days: int = 30, seed: int = 7, **kw) -> SimulationConfig:
    """A config that produces roughly ``lines`` lines (for benchmarks)."""
    vpd = max(1, round(lines / (days * LINES_PER_VISITOR_DAY)))
    return SimulationConfig(days=days, seed=seed, visitors_per_day=vpd, **kw)
