-- KPIs by campaign: kpis.md "Marketing KPIs", output key set `campaigns`.
-- Readings: docs/kpi-readings.md M1-M5, M8, A4.
--
-- Parameters (server-side binding):
--   date_from, date_to    Date32  half-open period [date_from, date_to) of UTC dates
--   model                 String  attribution model of conversions and revenue
--   credits               Identifier  'credits_' || model: the view of the model's credits (migration 0025)
--   conversion_window_ms  Int64   converted_leads window after the lead (M5)
--
-- Rows: every campaign_id of any ad_spend or touch, all time (M8); touches,
-- leads and credits without a campaign land in no row (A4). The row's channel
-- is the channel of its earliest (date, occurred_at, event_id) spend row, else
-- of its first (touch_at, event_id) touch. Converted leads need the person:
-- the period's leads are joined by identity key to the current identity keys of
-- converting persons (persons with a winning deal: their profiles, migration
-- 0010, with their deals' times); leads of everybody else are only counted.
SELECT
    key AS campaign_id,
    if(spend_channel != '', spend_channel, touch_channel) AS channel,
    if(spend_rows = 0, NULL, toFloat64(spend_sum)) AS spend,
    toInt64(lead_n) AS leads,
    spend / nullIf(lead_n, 0) AS cpl,
    toInt64(converted_n) AS converted_leads,
    converted_n / nullIf(lead_n, 0) AS conversion_rate,
    conv_sum AS conversions,
    rev_sum AS revenue,
    spend / nullIf(conv_sum, 0) AS cpa,
    (rev_sum - spend) / nullIf(spend, 0) AS romi
FROM
(
    SELECT
        key,
        max(spend_channel) AS spend_channel,
        max(touch_channel) AS touch_channel,
        sum(spend_sum) AS spend_sum,
        sum(spend_rows) AS spend_rows,
        sum(lead_n) AS lead_n,
        sum(converted_n) AS converted_n,
        sum(conv_sum) AS conv_sum,
        sum(rev_sum) AS rev_sum
    FROM
    (
        -- spend (M3) and the campaign's spend channel (M8)
        SELECT
            campaign_id AS key,
            argMin(toString(channel), (date, occurred_at, event_id)) AS spend_channel,
            '' AS touch_channel,
            toDecimal128(sumIf(cost, date >= {date_from:Date32} AND date < {date_to:Date32}), 6) AS spend_sum,
            toUInt64(countIf(date >= {date_from:Date32} AND date < {date_to:Date32})) AS spend_rows,
            toUInt64(0) AS lead_n,
            toUInt64(0) AS converted_n,
            toFloat64(0) AS conv_sum,
            toFloat64(0) AS rev_sum
        FROM spend_winners
        GROUP BY key

        UNION ALL

        -- campaigns of touches and the channel of their first touch (M8), by
        -- (touch_at, event_id); clicks come pre-aggregated per (campaign, channel)
        SELECT
            campaign_id,
            '',
            argMin(channel, first),
            toDecimal128(0, 6),
            toUInt64(0),
            toUInt64(0),
            toUInt64(0),
            toFloat64(0),
            toFloat64(0)
        FROM
        (
            SELECT campaign_id, toString(channel) AS channel, minMerge(first) AS first
            FROM click_firsts
            WHERE campaign_id != ''
            GROUP BY campaign_id, channel
            UNION ALL
            SELECT campaign_id, channel, (lead_at, event_id)
            FROM lead_winners
            WHERE campaign_id != ''
            UNION ALL
            SELECT campaign_id, toString(channel), (assumeNotNull(started_at), started_event_id)
            FROM conversations
            WHERE campaign_id != ''
            UNION ALL
            SELECT campaign_id, 'call', (started_at, event_id)
            FROM
            (
                -- the winners (as call_winners) of the calls that have an inbound row with a
                -- campaign: every inbound winner with a campaign is one of them
                SELECT call_id, direction, campaign_id, started_at, event_id
                FROM calls
                WHERE call_id IN (SELECT call_id FROM calls WHERE direction = 'inbound' AND campaign_id != '')
                ORDER BY call_id, occurred_at DESC, event_id DESC
                LIMIT 1 BY call_id
            )
            WHERE direction = 'inbound' AND campaign_id != ''
        )
        GROUP BY campaign_id

        UNION ALL

        -- credits of the chosen model for conversions won in the period (A4)
        SELECT
            credit_campaign,
            '',
            '',
            toDecimal128(0, 6),
            toUInt64(0),
            toUInt64(0),
            toUInt64(0),
            sumIf(credit, won_in_period),
            sumIf(credit * revenue_f, won_in_period)
        FROM
        (
            SELECT
                campaigns,
                credits,
                toFloat64(revenue) AS revenue_f,
                toDate32(won_at) >= {date_from:Date32} AND toDate32(won_at) < {date_to:Date32} AS won_in_period
            FROM {credits:Identifier}
            WHERE model = {model:String}
        )
        ARRAY JOIN campaigns AS credit_campaign, credits AS credit
        WHERE credit_campaign != ''
        GROUP BY credit_campaign

        UNION ALL

        -- leads in the period (whoever the person)
        SELECT
            campaign_id,
            '',
            '',
            toDecimal128(0, 6),
            toUInt64(0),
            toUInt64(1),
            toUInt64(0),
            toFloat64(0),
            toFloat64(0)
        FROM lead_winners
        WHERE campaign_id != ''
          AND toDate32(lead_at) >= {date_from:Date32} AND toDate32(lead_at) < {date_to:Date32}

        UNION ALL

        -- leads of converting persons in the period, converted when their person
        -- won a deal in [lead_at, lead_at + window]
        SELECT
            l.campaign_id,
            '',
            '',
            toDecimal128(0, 6),
            toUInt64(0),
            toUInt64(0),
            toUInt64(arrayExists(w -> w >= l.lead_at AND w <= addMilliseconds(l.lead_at, {conversion_window_ms:Int64}), p.won)),
            toFloat64(0),
            toFloat64(0)
        FROM
        (
            SELECT identity_key, lead_at, campaign_id
            FROM lead_winners
            WHERE campaign_id != ''
              AND toDate32(lead_at) >= {date_from:Date32} AND toDate32(lead_at) < {date_to:Date32}
        ) AS l
        INNER JOIN
        -- the current identity keys of converting persons (view, migration 0010)
        converting_person_keys AS p ON p.k_key_h = cityHash64(l.identity_key)
        WHERE murmurHash3_128(l.identity_key) = p.k_key_n
    )
    GROUP BY key
)
ORDER BY campaign_id
