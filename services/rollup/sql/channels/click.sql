-- Items of click pairs (channel \t campaign_id): the pair's first click (click_firsts),
-- a touch: its channel row (M2) and, with a campaign, its campaign row and first touch (M8).
SELECT
    concat(channel, '\t', campaign_id) AS id,
    toDate32(f.1) AS day,
    channel,
    campaign_id,
    '' AS model, toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows,
    toInt64(0) AS leads, toInt64(0) AS converted,
    toFloat64(0) AS conversions, toFloat64(0) AS revenue,
    toInt64(0) AS customers, toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n,
    concat(leftPad(toString(toUnixTimestamp64Milli(f.1)), 16, '0'), '\t', f.2) AS touch
FROM
(
    SELECT toString(channel) AS channel, campaign_id, minMerge(first) AS f
    FROM click_firsts
    WHERE concat(toString(channel), '\t', campaign_id) IN (SELECT key FROM rollup_ids)
    GROUP BY channel, campaign_id
)
