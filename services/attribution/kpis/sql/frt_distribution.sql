-- First response time distribution per conversation channel, against the
-- channel's SLA target (kpis.md `first_response_s`, `sla_rate`).
-- Shared by the HTML report and the "Contact centre" dashboard
-- (services/attribution/kpis/extra.py runs it).
-- Readings: docs/kpi-readings.md S1, S2, S4: visitor-initiated conversations
-- with at least one visitor message, selected by the date of their start; a
-- conversation without a human reply is in the bucket `no reply`. Per channel,
-- the conversations of the buckets with within_sla = 1 are the numerator of
-- the service grouping's sla_rate, and all buckets its denominator.
--
-- Parameters (server-side binding):
--   date_from, date_to  Date32          half-open period [date_from, date_to) of UTC dates
--   sla_channels        Array(String)   channels with an SLA target ...
--   sla_seconds         Array(Float64)  ... and their targets in seconds
--   channels            Array(String)   conversation channels to include; [] = all
--   operators           Array(String)   operators who sent the first reply; [] = all
--                                       (with a filter, `no reply` rows stay 0)
--
-- One row per (channel, bucket) for every channel with such a conversation in
-- the period, every bucket included (zeros too). Buckets end at
-- 10 s, 30 s, 1 min, 2 min, 5 min, 15 min, 30 min, 1 h, 4 h, then > 4 h and
-- `no reply`. The SLA targets of the contract (30 s, 5 min, 1 h) are bucket
-- ends, so a bucket is either wholly within its channel's target or not.
WITH
    [10., 30., 60., 120., 300., 900., 1800., 3600., 14400., inf, nan] AS upper_edges,
    ['≤10s', '10-30s', '30s-1m', '1-2m', '2-5m', '5-15m', '15-30m', '30m-1h', '1-4h', '>4h', 'no reply'] AS labels
SELECT
    c.channel AS channel,
    toUInt8(b) AS bucket,
    labels[b] AS bucket_label,
    if(b <= 10, upper_edges[b], NULL) AS upper_s,
    toInt64(ifNull(f.conversations, 0)) AS conversations,
    c.sla_s AS sla_s,
    toUInt8(c.sla_s IS NOT NULL AND b <= 10 AND upper_edges[b] <= c.sla_s) AS within_sla
FROM
(
    SELECT DISTINCT
        toString(channel) AS channel,
        if(indexOf({sla_channels:Array(String)}, channel) = 0, NULL,
           arrayElement({sla_seconds:Array(Float64)}, indexOf({sla_channels:Array(String)}, channel))) AS sla_s
    FROM conversations
    WHERE channel != 'call' AND initiated_by = 'visitor' AND visitor_messages > 0
      AND toDate32(assumeNotNull(started_at)) >= {date_from:Date32}
      AND toDate32(assumeNotNull(started_at)) < {date_to:Date32}
      AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, toString(channel)))
) AS c
CROSS JOIN (SELECT toUInt8(number + 1) AS b FROM numbers(11)) AS buckets
LEFT JOIN
(
    SELECT
        toString(channel) AS channel,
        toUInt8(if(frt_s IS NULL, 11, arrayFirstIndex(e -> assumeNotNull(frt_s) <= e, upper_edges))) AS fb,
        count() AS conversations
    FROM conversations
    WHERE channel != 'call' AND initiated_by = 'visitor' AND visitor_messages > 0
      AND toDate32(assumeNotNull(started_at)) >= {date_from:Date32}
      AND toDate32(assumeNotNull(started_at)) < {date_to:Date32}
      AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, toString(channel)))
      AND (empty({operators:Array(String)}) OR has({operators:Array(String)}, first_reply_operator))
    GROUP BY channel, fb
) AS f ON f.channel = c.channel AND f.fb = buckets.b
ORDER BY channel, bucket
