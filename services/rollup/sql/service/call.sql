-- Items of inbound calls (rollup of `service`, migration 0034): one row per inbound call winner
-- (x the profiles its identity key matches, as the reference's join), dated by its start, channel
-- `call` (S9). Values as services/attribution/kpis/sql/service.sql's call part with live = 1.
SELECT
    c.call_id AS id,
    toDate32(c.started_at) AS day,
    'call' AS channel,
    toUInt8(0) AS conv_n,
    CAST(NULL AS Nullable(Float64)) AS frt,
    toFloat64(0) AS turn_sum,
    toUInt32(0) AS turn_n,
    toUInt8(0) AS sla_n,
    toUInt8(0) AS sla_ok,
    toUInt8(0) AS missed,
    CAST(NULL AS Nullable(Int64)) AS deadline,
    toUInt8(0) AS transferred,
    toUInt8(0) AS captured,
    toUInt8(1) AS offered,
    toUInt8(c.outcome = 'answered') AS answered,
    toUInt8(c.outcome = 'missed') AS missed_calls,
    toUInt8(c.outcome = 'abandoned') AS abandoned,
    if(c.outcome = 'answered' AND c.answered_at IS NOT NULL,
       (toUnixTimestamp64Milli(assumeNotNull(c.answered_at)) - toUnixTimestamp64Milli(c.started_at)) / 1000, NULL) AS wait,
    if(c.outcome = 'answered' AND c.answered_at IS NOT NULL,
       (toUnixTimestamp64Milli(c.ended_at) - toUnixTimestamp64Milli(assumeNotNull(c.answered_at))) / 1000, NULL) AS talk,
    toUInt8(c.outcome NOT IN ('missed', 'abandoned')) AS other,
    toUInt8(arrayExists(d -> d.1 >= c.started_at AND d.1 <= addMilliseconds(c.started_at, {conversion_window_ms:Int64}), k.won)) AS hit,
    arrayMap(d -> concat(hex(sipHash128(d.2)), '\t', toString(d.3)),
             arrayFilter(d -> d.1 >= c.started_at AND d.1 <= addMilliseconds(c.started_at, {conversion_window_ms:Int64}), k.won))
        AS deals,
    toUInt8(0) AS csat_n,
    toUInt8(0) AS csat_ok,
    toUInt8(0) AS nps_n,
    toUInt8(0) AS nps_promoters,
    toUInt8(0) AS nps_detractors,
    toUInt8(0) AS bot_n,
    toUInt8(0) AS bot_kept,
    CAST(NULL AS Nullable(Float64)) AS handoff
FROM
(
    SELECT call_id, key_h, key_n, toString(outcome) AS outcome, started_at, answered_at, ended_at
    FROM call_winners
    WHERE direction = 'inbound' AND call_id IN (SELECT key FROM rollup_ids)
) AS c
LEFT JOIN
(
    SELECT k_key_h, k_key_n, won
    FROM profile_contact_keys
    WHERE k_key_h IN (SELECT key_h FROM call_winners WHERE call_id IN (SELECT key FROM rollup_ids))
) AS k ON k.k_key_h = c.key_h AND k.k_key_n = c.key_n
