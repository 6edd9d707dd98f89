-- KPIs by touch channel from the rollup (rollup_channels, migration 0033): the same
-- parameters, columns and rows as services/attribution/kpis/sql/channels.sql.
-- Every model: {rollup:Identifier} = rollup_channels_<model> (migration 0037; markov's credits summed when asked). Rows: every channel with a
-- present item (n), all time (M2), with the model's credits; measures by their own date
-- in [date_from, date_to); ltv is all-time.
SELECT
    key AS channel,
    if(spend_rows = 0, NULL, toFloat64(spend_sum)) AS spend,
    toInt64(lead_n) AS leads,
    spend / nullIf(lead_n, 0) AS cpl,
    toInt64(converted_n) AS converted_leads,
    converted_n / nullIf(lead_n, 0) AS conversion_rate,
    conv_sum AS conversions,
    rev_sum AS revenue,
    spend / nullIf(conv_sum, 0) AS cpa,
    (rev_sum - spend) / nullIf(spend, 0) AS romi,
    toInt64(cust_n) AS customers,
    toFloat64(ltv_sum) / nullIf(ltv_n, 0) AS ltv
FROM
(
    SELECT
        CAST(channel AS String) AS key,
        toDecimal128(sumIf(spend, live), 6) AS spend_sum,
        toUInt64(sumIf(spend_rows, live)) AS spend_rows,
        toUInt64(sumIf(leads, live)) AS lead_n,
        toUInt64(sumIf(converted, live)) AS converted_n,
        sumIf(conversions, live) AS conv_sum,
        sumIf(revenue, live) AS rev_sum,
        toUInt64(sumIf(customers, live)) AS cust_n,
        toDecimal128(sum(ltv), 6) AS ltv_sum,
        toUInt64(sum(ltv_n)) AS ltv_n
    FROM
    (
        SELECT *, day >= {date_from:Date32} AND day < {date_to:Date32} AS live
        -- the model's view (migration 0037): the non-credit rows and the model's credits
        FROM {rollup:Identifier}
    )
    GROUP BY key
    HAVING sum(n) != 0
)
ORDER BY channel
