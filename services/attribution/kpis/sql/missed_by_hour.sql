-- Missed contacts by hour of week (kpis.md "Service KPIs ... by hour of week").
-- Shared by the terminal report, the HTML report and the "Contact centre"
-- dashboard (services/attribution/kpis/extra.py runs it).
-- Readings: docs/kpi-readings.md S1, S5, S9, L1: a contact is a conversation of a
-- non-`call` channel (selected by the date of its start) or an inbound call
-- (by the date of `started_at`); missed = a missed conversation (S5), or a
-- `missed` / `abandoned` inbound call. The sum over the week equals the
-- `service` grouping's missed_conversations + missed_calls + abandoned_calls.
--
-- Parameters (server-side binding):
--   date_from, date_to  Date32         half-open period [date_from, date_to) of UTC dates
--   missed_after_ms     Int64          deadline after the last visitor message (S5)
--   now                 Nullable(DateTime64(3, 'UTC'))  NULL = max(raw_events.occurred_at) (S5)
--   tz                  String         time zone of the hour of week (business hours' zone)
--   channels            Array(String)  contact channels to include; [] = all
--
-- One row for each of the 168 hours of the week (Monday 00:00 first), zeros included.
SELECT
    toUInt8(intDiv(n, 24) + 1) AS weekday,
    ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][intDiv(n, 24) + 1] AS weekday_name,
    toUInt8(n % 24) AS hour,
    toInt64(ifNull(h.contacts, 0)) AS contacts,
    toInt64(ifNull(h.missed, 0)) AS missed,
    toInt64(ifNull(h.missed_conversations, 0)) AS missed_conversations,
    toInt64(ifNull(h.missed_calls, 0)) AS missed_calls,
    h.missed / nullIf(h.contacts, 0) AS miss_rate
FROM (SELECT toUInt32(number) AS n FROM numbers(168)) AS w
LEFT JOIN
(
    SELECT
        toUInt32((toDayOfWeek(start, 0, {tz:String}) - 1) * 24 + toHour(start, {tz:String})) AS n,
        count() AS contacts,
        sum(is_missed) AS missed,
        sumIf(is_missed, channel != 'call') AS missed_conversations,
        sumIf(is_missed, channel = 'call') AS missed_calls
    FROM
    (
        SELECT
            toString(channel) AS channel,
            assumeNotNull(started_at) AS start,
            ifNull(closed_at, addMilliseconds(last_visitor_at, {missed_after_ms:Int64})) AS deadline,
            toUInt8(ifNull(
                initiated_by = 'visitor' AND visitor_messages > 0
                AND (first_any_reply_at IS NULL OR first_any_reply_at > deadline)
                AND (closed_at IS NOT NULL
                     OR deadline <= coalesce({now:Nullable(DateTime64(3, 'UTC'))},
                                             (SELECT max(occurred_at) FROM raw_events))),
                0)) AS is_missed
        FROM conversations
        WHERE channel != 'call'
          AND toDate32(start) >= {date_from:Date32} AND toDate32(start) < {date_to:Date32}
          AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, toString(channel)))

        UNION ALL

        SELECT
            'call',
            started_at,
            NULL,
            toUInt8(toString(outcome) IN ('missed', 'abandoned'))
        FROM call_winners
        WHERE direction = 'inbound'
          AND toDate32(started_at) >= {date_from:Date32} AND toDate32(started_at) < {date_to:Date32}
          AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, 'call'))
    )
    GROUP BY n
) AS h ON h.n = w.n
ORDER BY w.n
