-- Items of started conversations (conversation_id): a touch, on its start date.
SELECT
    conversation_id AS id,
    toDate32(assumeNotNull(started_at)) AS day,
    toString(channel) AS channel,
    campaign_id,
    '' AS model, toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows,
    toInt64(0) AS leads, toInt64(0) AS converted,
    toFloat64(0) AS conversions, toFloat64(0) AS revenue,
    toInt64(0) AS customers, toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n,
    concat(leftPad(toString(toUnixTimestamp64Milli(assumeNotNull(started_at))), 16, '0'), '\t', started_event_id) AS touch
FROM conversations
WHERE conversation_id IN (SELECT key FROM rollup_ids)
