"""Business metrics (prometheus-client), updated as events flow through the stages.

Every one of them is a counter or a histogram, so the series of several workers
add up: Prometheus sums them with `sum by (channel)`, and the rates, shares and
baselines the alerts need are PromQL recording rules over these counters
(deploy/prometheus/rules.yml), not gauges kept in a process. That way a rate
"over the last hour, against the same hour of the previous weeks" survives
restarts and any number of workers, and an alert needs no warehouse query.

| metric | labels | counted by | when |
|---|---|---|---|
| `leadflow_leads_total` | channel | enrich | a `lead` event is stored for the first time |
| `leadflow_leads_converted_total` | channel | attribution | a lead gets its first conversion: a deal of its person won within 90 days after the lead (kpis.md `converted_leads`) |
| `leadflow_conversions_total` | channel | attribution | a deal is credited for the first time; channel = its last-touch channel, `(none)` without touches |
| `leadflow_contacts_total` | channel | enrich | a visitor-initiated `conversation_started`, or an inbound `call_completed` (channel `call`) |
| `leadflow_contacts_missed_total` | channel, outcome | enrich | a conversation becomes missed (closed with no operator or bot reply, kpis.md S5) -> `missed`; an inbound call with outcome `missed` / `abandoned` |
| `leadflow_first_response_seconds` | channel | enrich | the first human reply of a visitor-initiated conversation appears (histogram, buckets around the SLA targets) |
| `leadflow_first_response_sla_total` | channel, result | enrich | the conversation's SLA outcome is decided: `met` (first reply within the channel's target), `breached` (later, or closed without one) |

The conversion rate of a channel is `leads_converted / leads` over a window
(the flow form of kpis.md `conversion_rate`); its baseline is the same ratio
over the same hours of the previous three weeks (recording rules
`leadflow:conversion_rate:ratio1h` and `leadflow:conversion_rate:baseline1h`).

Counting is by processing time and at least once: a batch is counted after its
writes succeeded, so a retried batch counts once; a crash (which also resets
this process's counters) may count at most the batch in flight twice. Time-
based outcomes without an event (a conversation never closed, missed after
`missed_after_hours`) are not counted here; the warehouse KPIs have them.

Label values are bounded: channels come from the configuration (plus `call`
and `(none)`); anything else counts as `other`.
"""
from __future__ import annotations

import logging
from collections import Counter as Tally
from datetime import timedelta
from typing import Any, Iterable

from clickhouse_connect.driver.client import Client
from prometheus_client import Counter, Histogram

from leadflow.config import Settings
from services.enrich import conversations as conv

log = logging.getLogger(__name__)

NONE_CHANNEL = "(none)"
OTHER = "other"
CALL = "call"
# kpis.md: a lead is converted by a conversion within 90 days after it.
CONVERSION_WINDOW = timedelta(days=90)

# Around the default first-response targets (chat 30 s, messenger 5 min, social and email 1 h),
# with each target an exact bucket bound, so `le="30"` etc. read the SLA share directly.
FRT_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800, 2700, 3600, 5400,
               7200, 14400, 28800, 86400)

LEADS = Counter("leadflow_leads_total", "Leads stored for the first time, by the lead's marketing channel",
                ["channel"])
LEADS_CONVERTED = Counter(
    "leadflow_leads_converted_total",
    "Leads that got their first conversion (a deal of their person won within 90 days after the lead), "
    "by the lead's channel", ["channel"])
CONVERSIONS = Counter("leadflow_conversions_total",
                      "Conversions (deals won, counted when first credited), by last-touch channel", ["channel"])
CONTACTS = Counter("leadflow_contacts_total",
                   "Inbound contacts: visitor-initiated conversations started and inbound calls", ["channel"])
CONTACTS_MISSED = Counter(
    "leadflow_contacts_missed_total",
    "Inbound contacts nobody answered: conversations closed without a reply (outcome=missed), inbound calls "
    "missed or abandoned", ["channel", "outcome"])
FIRST_RESPONSE = Histogram("leadflow_first_response_seconds",
                           "First human response time of visitor-initiated conversations", ["channel"],
                           buckets=FRT_BUCKETS)
FIRST_RESPONSE_SLA = Counter(
    "leadflow_first_response_sla_total",
    "Visitor-initiated conversations by first-response SLA outcome (met, breached = late or no reply)",
    ["channel", "result"])


class ChannelLabels:
    """Channel label values allowed by the configuration; anything else is `other`."""

    def __init__(self, settings: Settings):
        self.marketing = tuple(settings.marketing_channels)
        self.conversation = tuple(settings.conversation_channels)
        self.sla = {c: float(s) for c, s in settings.sla_seconds.items()}
        self.allowed = frozenset(self.marketing + self.conversation + (CALL, NONE_CHANNEL))

    def __call__(self, channel: str | None) -> str:
        return channel if channel in self.allowed else OTHER


class EnrichMetrics:
    """Leads, contacts, missed contacts and first responses, from the enrich stage's batches."""

    def __init__(self, settings: Settings):
        self.label = ChannelLabels(settings)
        self.missed_after = timedelta(hours=settings.missed_after_hours)
        self.hours = settings.business_hours
        # Create every series the alert ratios divide by at 0, so the first increment shows in increase().
        for ch in self.label.marketing:
            LEADS.labels(channel=ch)
        for ch in self.label.conversation + (CALL,):
            CONTACTS.labels(channel=ch)
            CONTACTS_MISSED.labels(channel=ch, outcome="missed")
        CONTACTS_MISSED.labels(channel=CALL, outcome="abandoned")
        for ch in self.label.sla:
            if ch in self.label.allowed:
                for result in ("met", "breached"):
                    FIRST_RESPONSE_SLA.labels(channel=ch, result=result)

    def observe(self, events: Iterable[dict[str, Any]], conversations: tuple[dict, list[tuple]] | None = None) -> None:
        """Count one written batch: its stored events, and the conversation rows it recomputed.

        `conversations` is (events by conversation id, as loaded for the rows; the rows). A metrics
        problem is logged, never raised: the batch is written and must not be retried for it.
        """
        try:
            self._observe(events, conversations)
        except Exception:
            log.exception("business metrics: enrich batch not counted")

    def _observe(self, events: Iterable[dict[str, Any]], conversations: tuple[dict, list[tuple]] | None) -> None:
        batch_ids: set[str] = set()
        for event in events:
            batch_ids.add(event["event_id"])
            kind = event["type"]
            if kind == "lead":
                LEADS.labels(channel=self.label(event.get("channel"))).inc()
            elif kind == "conversation_started":
                if event.get("initiated_by") == "visitor":
                    CONTACTS.labels(channel=self.label(event.get("channel"))).inc()
            elif kind == "call_completed" and event.get("direction") == "inbound":
                CONTACTS.labels(channel=CALL).inc()
                if event.get("outcome") in ("missed", "abandoned"):
                    CONTACTS_MISSED.labels(channel=CALL, outcome=event["outcome"]).inc()
        if conversations:
            self._conversations(*conversations, batch_ids)

    def _conversations(self, events_by_id: dict, rows: list[tuple], batch_ids: set[str]) -> None:
        for row in rows:
            after = _conversation_state(row, self.label.sla)
            if after == (None, None, False):
                continue
            cid = row[_COL["conversation_id"]]
            earlier = [e for e in events_by_id.get(cid, ()) if e.event_id not in batch_ids]
            if earlier:
                before_row = conv.conversation_row(cid, earlier, version=0, missed_after=self.missed_after,
                                                   hours=self.hours)
                before = _conversation_state(before_row, self.label.sla)
            else:
                before = (None, None, False)
            channel = self.label(row[_COL["channel"]])
            frt, sla, missed = after
            if frt is not None and before[0] is None:
                FIRST_RESPONSE.labels(channel=channel).observe(frt)
            if sla is not None and before[1] is None:
                FIRST_RESPONSE_SLA.labels(channel=channel, result=sla).inc()
            if missed and not before[2]:
                CONTACTS_MISSED.labels(channel=channel, outcome="missed").inc()


_COL = {name: i for i, name in enumerate(conv.COLUMNS)}


def _conversation_state(row: tuple, sla: dict[str, float]) -> tuple[float | None, str | None, bool]:
    """(first response s, SLA outcome, missed) of a conversation row; None/False while undecided."""
    if row[_COL["initiated_by"]] != "visitor" or not row[_COL["visitor_messages"]]:
        return (None, None, False)
    frt = row[_COL["frt_s"]]
    closed = row[_COL["closed_at"]]
    first_any = row[_COL["first_any_reply_at"]]
    missed = closed is not None and (first_any is None or first_any > closed)
    target = sla.get(row[_COL["channel"]])
    outcome = None
    if target is not None:
        if frt is not None:
            outcome = "met" if frt <= target else "breached"
        elif closed is not None:
            outcome = "breached"
    return (frt, outcome, missed)


class AttributionMetrics:
    """Conversions by last-touch channel and converted leads by lead channel, from the attribution stage."""

    def __init__(self, settings: Settings):
        self.label = ChannelLabels(settings)
        for ch in self.label.marketing:
            LEADS_CONVERTED.labels(channel=ch)
        for ch in self.label.marketing + self.label.conversation + (CALL, NONE_CHANNEL):
            CONVERSIONS.labels(channel=ch)

    @staticmethod
    def uncredited(client: Client, deals: list[tuple]) -> set[str] | None:
        """The deals that have no credit row yet (call before writing this batch's credits); None if
        the warehouse could not say (then nothing is counted)."""
        ids = sorted({d[1] for d in deals})
        if not ids:
            return set()
        try:
            credited = client.query(
                "SELECT DISTINCT deal_id FROM attribution_credits WHERE deal_id IN {ids:Array(String)}",
                parameters={"ids": ids}).result_rows
        except Exception:
            log.exception("business metrics: cannot tell new conversions; this batch is not counted")
            return None
        return set(ids) - {r[0] for r in credited}

    def observe(self, deals: list[tuple], touches_by_person: dict[str, list], credit_rows: list[tuple],
                new_deals: set[str] | None) -> None:
        """Count the conversions of `new_deals` (credited for the first time by `credit_rows`).
        A metrics problem is logged, never raised."""
        if not new_deals:
            return
        try:
            self._observe(deals, touches_by_person, credit_rows, new_deals)
        except Exception:
            log.exception("business metrics: attribution batch not counted")

    def _observe(self, deals: list[tuple], touches_by_person: dict[str, list], credit_rows: list[tuple],
                 new_deals: set[str]) -> None:
        for row in credit_rows:
            deal_id, model, channels, credits = row[0], row[1], row[8], row[11]
            if model == "last_touch" and deal_id in new_deals:
                CONVERSIONS.labels(channel=self.label(channels[credits.index(max(credits))])).inc()
        won_by_person: dict[str, tuple[list, list]] = {}
        for person, deal_id, won_at, _revenue in deals:
            old, new = won_by_person.setdefault(person, ([], []))
            (new if deal_id in new_deals else old).append(won_at)
        converted: Tally = Tally()
        for person, (old, new) in won_by_person.items():
            if not new:
                continue
            for touch in touches_by_person.get(person, ()):
                if touch.kind != "lead":
                    continue
                end = touch.at + CONVERSION_WINDOW
                if any(touch.at <= w <= end for w in new) and not any(touch.at <= w <= end for w in old):
                    converted[self.label(touch.channel)] += 1
        for channel, n in converted.items():
            LEADS_CONVERTED.labels(channel=channel).inc(n)
