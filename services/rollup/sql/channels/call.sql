-- Items of calls (call_id) whose winner is inbound: a touch of channel 'call', on its start date.
SELECT
    call_id AS id,
    toDate32(started_at) AS day,
    'call' AS channel,
    campaign_id,
    '' AS model, toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows,
    toInt64(0) AS leads, toInt64(0) AS converted,
    toFloat64(0) AS conversions, toFloat64(0) AS revenue,
    toInt64(0) AS customers, toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n,
    concat(leftPad(toString(toUnixTimestamp64Milli(started_at)), 16, '0'), '\t', event_id) AS touch
FROM call_winners
WHERE call_id IN (SELECT key FROM rollup_ids) AND direction = 'inbound'
