-- KPIs by touch channel: kpis.md "Marketing KPIs", output key set `channels`.
-- Readings: docs/kpi-readings.md M1-M8, A4, A5.
--
-- Parameters (server-side binding):
--   date_from, date_to    Date32  half-open period [date_from, date_to) of UTC dates
--   model                 String  attribution model of conversions and revenue
--   conversion_window_ms  Int64   converted_leads window after the lead (M5)
--
-- Shape: three sources aggregated to (channel, partial sums), unioned, summed
-- per channel. The row set is all-time (M2): a source row outside the period
-- still creates its channel row, with zero or null figures.
--   1. ad spend winners (spend; channel rows of spend)
--   2. attribution credits of the model (conversions, revenue; the (none) row)
--   3. per person: leads and converted leads (by the lead's channel), customers
--      and ltv (by the channel of the person's first-ever touch), channel rows of
--      touches. Facts are resolved to persons with one hash join on the keys of
--      converting persons only (persons with a winning deal): every other fact
--      falls in the group of person '', which converts nothing. A fact whose
--      identity key has no person has no person (no conversion, customer or ltv).
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
            FROM attribution_credits FINAL
            WHERE model = {model:String}
        )
        ARRAY JOIN channels AS credit_channel, credits AS credit
        GROUP BY key

        UNION ALL

        -- 3. per person
        SELECT
            c.1 AS key,
            toDecimal128(0, 6),
            toUInt64(0),
            c.2,
            c.3,
            toFloat64(0),
            toFloat64(0),
            c.4,
            c.5,
            c.6
        FROM
        (
            SELECT
                arrayJoin(arrayConcat(
                    -- leads in the period, converted when the person won a deal in [lead_at, lead_at + window]
                    arrayMap(l -> CAST((l.1, 1, arrayExists(w -> w >= l.2 AND w <= addMilliseconds(l.2, {conversion_window_ms:Int64}), won), 0, 0, 0),
                                       'Tuple(String, UInt64, UInt64, UInt64, Decimal(38, 6), UInt64)'), period_leads),
                    -- a converting person: customer when the first conversion is in the period; ltv all time (M6, M7)
                    if(empty(won), CAST([], 'Array(Tuple(String, UInt64, UInt64, UInt64, Decimal(38, 6), UInt64))'),
                       [CAST((first_channel, 0, 0, toDate32(arrayMin(won)) >= {date_from:Date32} AND toDate32(arrayMin(won)) < {date_to:Date32}, value, 1),
                             'Tuple(String, UInt64, UInt64, UInt64, Decimal(38, 6), UInt64)')]),
                    -- the channel rows of touches (M2)
                    arrayMap(ch -> CAST((ch, 0, 0, 0, 0, 0), 'Tuple(String, UInt64, UInt64, UInt64, Decimal(38, 6), UInt64)'), touch_channels)
                )) AS c
            FROM
            (
                SELECT
                    person,
                    groupArrayIf(at, kind = 'deal') AS won,
                    sumIf(amount, kind IN ('deal', 'payment')) AS value,
                    -- first-ever touch by (touch_at, event_id); a sortable string key is ~2x faster than a tuple
                    if(countIf(kind = 'touch') = 0, '(none)',
                       argMinIf(channel, concat(leftPad(hex(toUInt64(toUnixTimestamp64Milli(at))), 16, '0'), event_id),
                                kind = 'touch')) AS first_channel,
                    groupUniqArrayIf(channel, kind = 'touch') AS touch_channels,
                    groupArrayIf((channel, at), kind = 'lead') AS period_leads
                FROM
                (
                    SELECT
                        p.person_id AS person,
                        f.kind AS kind,
                        f.at AS at,
                        f.event_id AS event_id,
                        f.channel AS channel,
                        f.amount AS amount
                    FROM
                    (
                        SELECT 'touch' AS kind, identity_key, touch_at AS at, event_id, toString(channel) AS channel,
                               toDecimal128(0, 6) AS amount
                        FROM touches
                        UNION ALL
                        SELECT 'lead', identity_key, lead_at, event_id, toString(channel), toDecimal128(0, 6)
                        FROM lead_winners
                        WHERE toDate32(lead_at) >= {date_from:Date32} AND toDate32(lead_at) < {date_to:Date32}
                        UNION ALL
                        SELECT 'deal', identity_key, won_at, event_id, '', toDecimal128(revenue, 6)
                        FROM deal_winners
                        UNION ALL
                        SELECT 'payment', identity_key, paid_at, event_id, '', toDecimal128(amount, 6)
                        FROM payment_winners
                    ) AS f
                    LEFT JOIN
                    (
                        -- the identity keys of converting persons (all their keys)
                        SELECT identity_key, person_id
                        FROM persons
                        WHERE person_id IN
                        (
                            SELECT person_id
                            FROM persons
                            WHERE identity_key IN (SELECT identity_key FROM deal_winners)
                        )
                    ) AS p ON p.identity_key = f.identity_key
                    -- deals and payments count only for a person; touches and leads of
                    -- everybody else share the person '' (rows and lead counts only)
                    WHERE f.kind IN ('touch', 'lead') OR p.person_id != ''
                )
                GROUP BY person
            )
        )
    )
    GROUP BY key
)
ORDER BY channel
