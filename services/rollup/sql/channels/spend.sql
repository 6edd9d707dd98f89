-- Items of spend winners (campaign_id \t date): the winner is the latest (occurred_at, event_id)
-- row, as spend_winners; it counts on its date for its channel and campaign.
SELECT
    concat(campaign_id, '\t', toString(date)) AS id,
    toDate32(date) AS day,
    toString(channel) AS channel,
    campaign_id,
    '' AS model, toDecimal128(cost, 6) AS spend, toInt64(1) AS spend_rows,
    toInt64(0) AS leads, toInt64(0) AS converted,
    toFloat64(0) AS conversions, toFloat64(0) AS revenue,
    toInt64(0) AS customers, toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n,
    '' AS touch
FROM ad_spend
WHERE concat(campaign_id, '\t', toString(date)) IN (SELECT key FROM rollup_ids)
ORDER BY campaign_id, date, occurred_at DESC, event_id DESC
LIMIT 1 BY campaign_id, date
