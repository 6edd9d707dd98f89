-- Items of deals (deal_id): one row per credit of every stored model (attribution_credits;
-- markov is not stored), on the won date: the credit and credit * revenue (as the reference).
SELECT
    deal_id AS id,
    toDate32(won_at) AS day,
    credit_channel AS channel,
    credit_campaign AS campaign_id,
    toString(model) AS model, toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows,
    toInt64(0) AS leads, toInt64(0) AS converted,
    credit AS conversions, credit * toFloat64(revenue) AS revenue,
    toInt64(0) AS customers, toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n,
    '' AS touch
FROM attribution_credits FINAL
ARRAY JOIN channels AS credit_channel, campaigns AS credit_campaign, credits AS credit
WHERE deal_id IN (SELECT key FROM rollup_ids) AND model != 'markov'
