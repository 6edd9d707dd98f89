-- KPIs by touch channel: kpis.md "Marketing KPIs", output key set `channels`.
-- Readings: docs/kpi-readings.md M1-M8, A4, A5.
--
-- Parameters (server-side binding):
--   date_from, date_to    Date32  half-open period [date_from, date_to) of UTC dates
--   model                 String  attribution model of conversions and revenue
--   credits               Identifier  'credits_' || model: the view of the model's credits (migration 0025)
--   conversion_window_ms  Int64   converted_leads window after the lead (M5)
--
-- Shape: sources aggregated to (channel, partial sums), unioned, summed per
-- channel. The row set is all-time (M2): a source row outside the period still
-- creates its channel row, with zero or null figures.
--   1. ad spend winners (spend; channel rows of spend)
--   2. attribution credits of the model (conversions, revenue; the (none) row)
--   3. lead winners (leads in the period; channel rows of leads), and the channel
--      rows of the other touches (clicks from click_firsts, migration 0008)
--   4. converting persons (a person with a winning deal), from their profiles
--      (migration 0010, written by the attribution stage): customers and ltv by
--      the channel of the person's first-ever touch; converted leads by the
--      lead's channel, the period's leads joined by identity key to the current
--      identity keys of converting persons. Nobody else converts, so nobody else
--      needs a person. A fact whose identity key has no person has no person (no
--      conversion, customer or ltv).
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
        key,
        sum(spend_sum) AS spend_sum,
        sum(spend_rows) AS spend_rows,
        sum(lead_n) AS lead_n,
        sum(converted_n) AS converted_n,
        sum(conv_sum) AS conv_sum,
        sum(rev_sum) AS rev_sum,
        sum(cust_n) AS cust_n,
        sum(ltv_sum) AS ltv_sum,
        sum(ltv_n) AS ltv_n
    FROM
    (
        -- 1. spend (M3: null without a spend row in the period)
        SELECT
            toString(channel) AS key,
            toDecimal128(sumIf(cost, date >= {date_from:Date32} AND date < {date_to:Date32}), 6) AS spend_sum,
            toUInt64(countIf(date >= {date_from:Date32} AND date < {date_to:Date32})) AS spend_rows,
            toUInt64(0) AS lead_n,
            toUInt64(0) AS converted_n,
            toFloat64(0) AS conv_sum,
            toFloat64(0) AS rev_sum,
            toUInt64(0) AS cust_n,
            toDecimal128(0, 6) AS ltv_sum,
            toUInt64(0) AS ltv_n
        FROM spend_winners
        GROUP BY key

        UNION ALL

        -- 2. credits of the chosen model for conversions won in the period
        SELECT
            toString(credit_channel) AS key,
            toDecimal128(0, 6),
            toUInt64(0),
            toUInt64(0),
            toUInt64(0),
            sumIf(credit, won_in_period),
            sumIf(credit * revenue_f, won_in_period),
            toUInt64(0),
            toDecimal128(0, 6),
            toUInt64(0)
        FROM
        (
            SELECT
                channels,
                credits,
                toFloat64(revenue) AS revenue_f,
                toDate32(won_at) >= {date_from:Date32} AND toDate32(won_at) < {date_to:Date32} AS won_in_period
            FROM {credits:Identifier}
            WHERE model = {model:String}
        )
        ARRAY JOIN channels AS credit_channel, credits AS credit
        GROUP BY key

        UNION ALL

        -- 3. leads in the period (whoever the person) and the channel rows of touches (M2)
        SELECT
            channel,
            toDecimal128(0, 6),
            toUInt64(0),
            toUInt64(countIf(toDate32(lead_at) >= {date_from:Date32} AND toDate32(lead_at) < {date_to:Date32})),
            toUInt64(0),
            toFloat64(0),
            toFloat64(0),
            toUInt64(0),
            toDecimal128(0, 6),
            toUInt64(0)
        FROM lead_winners
        GROUP BY channel

        UNION ALL

        SELECT
            ch,
            toDecimal128(0, 6), toUInt64(0), toUInt64(0), toUInt64(0), toFloat64(0), toFloat64(0),
            toUInt64(0), toDecimal128(0, 6), toUInt64(0)
        FROM
        (
            SELECT DISTINCT toString(channel) AS ch FROM click_firsts
            UNION ALL
            SELECT DISTINCT toString(channel) FROM conversations
            UNION ALL
            SELECT 'call' FROM call_winners WHERE direction = 'inbound' LIMIT 1
        )

        UNION ALL

        -- 4a. customers and ltv: converting persons by the channel of their first-ever touch
        -- (their profiles, migration 0010)
        SELECT
            first_channel,
            toDecimal128(0, 6), toUInt64(0), toUInt64(0), toUInt64(0), toFloat64(0), toFloat64(0),
            toUInt64(toDate32(arrayMin(w -> w.1, won)) >= {date_from:Date32} AND toDate32(arrayMin(w -> w.1, won)) < {date_to:Date32}),
            toDecimal128(value, 6),
            toUInt64(1)
        FROM person_profiles FINAL
        WHERE notEmpty(won)

        UNION ALL

        -- 4b. converted leads: leads of the period whose person won a deal in [lead_at, lead_at + window]
        SELECT
            toString(l.channel),
            toDecimal128(0, 6), toUInt64(0), toUInt64(0),
            toUInt64(arrayExists(w -> w >= l.lead_at AND w <= addMilliseconds(l.lead_at, {conversion_window_ms:Int64}), p.won)),
            toFloat64(0), toFloat64(0), toUInt64(0), toDecimal128(0, 6), toUInt64(0)
        FROM
        (
            SELECT identity_key, lead_at, channel
            FROM lead_winners
            WHERE toDate32(lead_at) >= {date_from:Date32} AND toDate32(lead_at) < {date_to:Date32}
        ) AS l
        INNER JOIN
        -- the current identity keys of converting persons (view, migration 0010)
        converting_person_keys AS p ON p.k_key_h = cityHash64(l.identity_key)
        WHERE murmurHash3_128(l.identity_key) = p.k_key_n
    )
    GROUP BY key
)
ORDER BY channel
