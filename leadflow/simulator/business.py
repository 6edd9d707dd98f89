"""The simulated business: a furniture web shop with a small contact centre.

Everything here is static description (no randomness, no state): traffic
sources and campaigns, operators and their shifts, daily and weekly load
curves. ``generate.py`` turns it into events.

The story the numbers are meant to tell (see ``leadflow.simulator`` docs):

* search traffic is expensive but converts; display is cheap, brings first
  touches and rarely closes itself (first-touch vs last-touch attribution
  disagree about it); email and direct mostly bring *returning* people;
* the contact centre is thin at lunch (13:00-14:00) and at weekends, and
  busiest at 10-12 and 15-17, so missed chats and calls pile up there;
* operators differ: fast and skilled (anna, elena), slow and template-heavy
  (grace, dmitri), transfer-happy (boris, grace);
* the slower the first response, the lower the chance of a sale.
"""
from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SLOT_MIN = 15  # duty tables have a 15-minute resolution
SLOTS_PER_DAY = 24 * 60 // SLOT_MIN
SLOTS_PER_WEEK = 7 * SLOTS_PER_DAY


@dataclass(frozen=True, slots=True)
class TrafficSource:
    """Where a visit comes from. Paid sources are campaigns (``campaign_id`` set)."""

    key: str
    channel: str  # marketing channel (events.md)
    campaign_id: str | None
    spend_source: str | None  # producing system of its ad_spend / ad_click events
    new_weight: float  # share among first visits
    return_weight: float  # share among returning visits
    weekday_mult: tuple[float, ...]  # traffic multiplier by weekday, Monday first
    cpc: float  # USD per platform click (0: unpaid)
    ctr: float  # clicks / impressions
    fixed_daily_cost: float  # e.g. an email send; charged on days with weekday_mult >= 1
    intent: float  # base chance that a qualified contact (lead, answered call) buys
    ticket: float  # median deal revenue, USD
    p_chat: float  # chance a visit starts a chat
    p_form: float  # chance a visit leaves a site form
    p_call: float  # chance a visit phones the number shown on the site
    tracking_number: str | None
    landing_paths: tuple[str, ...]
    utm_source: str | None

    @property
    def paid(self) -> bool:
        return self.campaign_id is not None


_ALL = (1.0,) * 7

SOURCES: tuple[TrafficSource, ...] = (
    TrafficSource("search-brand", "search_ads", "search-brand", "ads-search", 0.08, 0.22, _ALL,
                  2.75, 0.080, 0.0, 0.30, 520.0, 0.12, 0.040, 0.060, "+18005550100",
                  ("/", "/sofas", "/contacts"), "search"),
    TrafficSource("search-generic", "search_ads", "search-sofas", "ads-search", 0.20, 0.05, _ALL,
                  6.00, 0.035, 0.0, 0.19, 640.0, 0.10, 0.035, 0.040, "+18005550101",
                  ("/sofas", "/sofas/corner", "/sale"), "search"),
    TrafficSource("social-prospecting", "social_ads", "social-spring", "ads-meta", 0.22, 0.04, _ALL,
                  2.00, 0.012, 0.0, 0.08, 380.0, 0.06, 0.020, 0.012, "+18005550102",
                  ("/sale", "/lookbook"), "meta"),
    TrafficSource("display-retarget", "display_ads", "display-retarget", "ads-display", 0.12, 0.16, _ALL,
                  1.20, 0.004, 0.0, 0.025, 420.0, 0.05, 0.012, 0.010, "+18005550103",
                  ("/sale", "/sofas"), "display"),
    TrafficSource("email-newsletter", "email", "email-weekly", "esp", 0.01, 0.20,
                  (0.4, 2.6, 0.9, 2.6, 0.9, 0.2, 0.2),
                  0.0, 0.0, 85.0, 0.24, 480.0, 0.09, 0.030, 0.030, "+18005550104",
                  ("/new", "/sale"), "newsletter"),
    TrafficSource("organic", "organic", None, None, 0.20, 0.08, _ALL,
                  0.0, 0.0, 0.0, 0.15, 560.0, 0.09, 0.030, 0.035, "+18005550199",
                  ("/", "/blog/choose-a-sofa", "/sofas"), None),
    TrafficSource("referral", "referral", None, None, 0.08, 0.03, _ALL,
                  0.0, 0.0, 0.0, 0.17, 600.0, 0.10, 0.035, 0.030, "+18005550199",
                  ("/", "/sofas"), None),
    TrafficSource("direct", "direct", None, None, 0.09, 0.22, _ALL,
                  0.0, 0.0, 0.0, 0.22, 560.0, 0.11, 0.030, 0.060, "+18005550199",
                  ("/", "/contacts", "/account"), None),
)

LEAD_AD_SOURCE = "social-prospecting"  # lead-ad forms filled without a site visit
GENERAL_NUMBER = "+18005550199"  # the number on the site for unpaid traffic (no campaign)


@dataclass(frozen=True, slots=True)
class OperatorProfile:
    """One contact-centre operator. Times are local minutes from midnight."""

    name: str
    chat: bool
    calls: bool
    frt_median_s: float  # median first response when free and the centre is quiet
    skill: float  # multiplies the chance of a sale
    template_habit: float  # share of replies that are canned templates
    transfer_rate: float  # chance, per visitor turn, to pass the conversation on
    max_chats: int  # conversations held at once
    weekdays: tuple[int, ...]  # Monday = 0
    shift_start: int
    shift_end: int
    lunch_start: int
    lunch_len: int = 60
    csat_bias: float = 0.0  # added to the satisfaction score before rounding

    @property
    def operator_id(self) -> str:
        return f"op-{self.name}"

    def on_duty(self, weekday: int, minute: int) -> bool:
        return (weekday in self.weekdays and self.shift_start <= minute < self.shift_end
                and not self.lunch_start <= minute < self.lunch_start + self.lunch_len)


_WD = (0, 1, 2, 3, 4)

# Ordered so that any prefix of 8+ profiles still covers weekdays, weekends and calls.
OPERATORS: tuple[OperatorProfile, ...] = (
    OperatorProfile("anna", True, False, 12, 1.25, 0.25, 0.03, 6, _WD, 8 * 60, 17 * 60, 13 * 60, csat_bias=0.4),
    OperatorProfile("boris", True, False, 45, 0.90, 0.15, 0.14, 4, _WD, 9 * 60, 18 * 60, 13 * 60),
    OperatorProfile("chen", False, True, 20, 1.15, 0.10, 0.04, 1, _WD, 8 * 60, 17 * 60, 13 * 60, csat_bias=0.3),
    OperatorProfile("dmitri", True, True, 80, 0.85, 0.65, 0.06, 3, _WD, 10 * 60, 19 * 60, 13 * 60, csat_bias=-0.3),
    OperatorProfile("elena", True, False, 20, 1.15, 0.20, 0.04, 5, (1, 2, 3, 4, 5), 9 * 60, 18 * 60, 13 * 60 + 30,
                    csat_bias=0.3),
    OperatorProfile("farid", False, True, 30, 1.00, 0.10, 0.05, 1, _WD, 12 * 60, 21 * 60, 16 * 60 + 30),
    OperatorProfile("grace", True, False, 180, 0.80, 0.70, 0.15, 3, _WD, 13 * 60, 22 * 60, 17 * 60, csat_bias=-0.5),
    OperatorProfile("hiro", True, True, 35, 1.05, 0.30, 0.05, 4, (0, 5, 6), 10 * 60, 19 * 60, 14 * 60),
    OperatorProfile("irina", False, True, 25, 1.10, 0.10, 0.04, 1, _WD, 9 * 60, 18 * 60, 13 * 60),
    OperatorProfile("jamal", True, False, 60, 1.00, 0.35, 0.07, 4, (2, 3, 4, 5, 6), 11 * 60, 20 * 60, 15 * 60),
    OperatorProfile("kate", True, False, 150, 0.90, 0.45, 0.08, 4, _WD, 7 * 60, 16 * 60, 12 * 60),
    OperatorProfile("leo", False, True, 30, 0.95, 0.10, 0.05, 1, (5, 6), 10 * 60, 18 * 60, 13 * 60),
)

# Visits by local hour (relative weights): morning and afternoon peaks, a lunch dip.
HOURLY_WEEKDAY = (0.12, 0.07, 0.04, 0.03, 0.03, 0.05, 0.12, 0.30, 0.55, 0.80, 1.00, 1.00,
                  0.80, 0.62, 0.78, 0.95, 1.00, 0.85, 0.62, 0.52, 0.48, 0.42, 0.30, 0.20)
HOURLY_WEEKEND = (0.15, 0.09, 0.05, 0.04, 0.04, 0.05, 0.08, 0.14, 0.25, 0.42, 0.58, 0.66,
                  0.66, 0.60, 0.62, 0.64, 0.62, 0.56, 0.50, 0.48, 0.45, 0.40, 0.32, 0.22)
WEEKDAY_FACTOR = (1.10, 1.05, 1.00, 1.00, 0.92, 0.62, 0.55)  # Monday first

# Arrivals, per visit of the day
RETURNING_SHARE = 0.22  # visits by somebody seen before (another channel, often email/direct/brand)
SUPPORT_CHATS_PER_VISIT = 0.02  # past visitors and customers with a question
SUPPORT_CALLS_PER_VISIT = 0.04  # people whose phone is known, calling the support queue
NEW_CALLERS_PER_VISIT = 0.015  # callers never seen on the site (a flyer, word of mouth)
LEAD_ADS_PER_VISIT = 0.012  # lead-ad forms filled inside the social network

# Chat
MESSENGER_SHARE = 0.18
PROACTIVE_OPERATOR = 0.03  # extra share of visits that get an operator invitation
PROACTIVE_BOT = 0.02
PATIENCE_CHAT_S = 75.0  # median seconds a chat visitor waits for the first answer
PATIENCE_MESSENGER_S = 1800.0
BOT_AT_PEAK = 0.55  # chance the bot steps in when no operator is free in working hours
# The triage bot (issue 17): in working hours it answers first on part of the visitors' chats,
# settles some by itself (delivery times, order status) and hands the rest over to operators.
BOT_TRIAGE_SHARE = 0.25  # share of visitor-initiated chats in working hours the bot answers first
BOT_CONTAINED = 0.3  # share of those it settles without an operator

# Calls
CALL_PATIENCE_S = 55.0  # median seconds a caller waits in the queue
RING_TIMEOUT_S = 75.0  # the queue gives up ("missed") after this
TALK_MEDIAN_S = 210.0

# Outcomes
LOST_REASONS = ("price", "no answer", "competitor", "not qualified", "delivery time", "changed mind")
PAYMENT_PLAN_SHARE = 0.45  # customers who keep paying (installments, care plans)

# Names for e-mail addresses.
FIRST_NAMES = ("anna", "ivan", "maria", "john", "olga", "peter", "sara", "li", "omar", "eva",
               "tom", "nina", "alex", "kim", "yuri", "lena", "mark", "zoe", "paul", "ada")
LAST_NAMES = ("smith", "petrova", "kim", "brown", "ivanov", "garcia", "lee", "novak", "khan",
              "miller", "sato", "rossi", "weber", "silva", "moore")
EMAIL_DOMAINS = ("example.org", "example.com", "mail.example.net", "example.co")


def hourly_load(weekday: int) -> tuple[float, ...]:
    return HOURLY_WEEKEND if weekday >= 5 else HOURLY_WEEKDAY


PEAK_LOAD = max(max(HOURLY_WEEKDAY), max(HOURLY_WEEKEND))


def operator_profiles(n: int) -> list[tuple[str, OperatorProfile]]:
    """``n`` operators as (operator_id, profile). Past 12, profiles repeat as new people."""
    out = []
    for i in range(n):
        p = OPERATORS[i % len(OPERATORS)]
        k = i // len(OPERATORS)
        out.append((p.operator_id if k == 0 else f"{p.operator_id}{k + 1}", p))
    return out


def default_operator_count(visitors_per_day: int) -> int:
    """10 operators for 300 visitors a day, more as traffic grows (staffing follows load)."""
    return max(10, round(10 * visitors_per_day / 300))
