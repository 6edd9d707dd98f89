-- KPIs by campaign from the rollups (rollup_campaigns, rollup_campaign_channels, migration
-- 0033; their items are the channels' items with a campaign): the same parameters, columns
-- and rows as services/attribution/kpis/sql/campaigns.sql. Every model: {rollup:Identifier} =
-- rollup_campaigns_<model> (migration 0037; markov's credits summed when asked). Rows: every campaign with a present item, all time (M8). The
-- row's channel: the channel of its earliest spend row (one spend winner per campaign and
-- day: the channel on its first spend day), else of its first touch (the smallest
-- (touch_at, event_id) key), read from each campaign's first spend day and first touched day
-- only (a touch is dated by its touch_at, the key's first part).
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
        campaign_id AS key,
        toDecimal128(sumIf(spend, live), 6) AS spend_sum,
        toUInt64(sumIf(spend_rows, live)) AS spend_rows,
        toUInt64(sumIf(leads, live)) AS lead_n,
        toUInt64(sumIf(converted, live)) AS converted_n,
        sumIf(conversions, live) AS conv_sum,
        sumIf(revenue, live) AS rev_sum
    FROM
    (
        SELECT *, day >= {date_from:Date32} AND day < {date_to:Date32} AS live
        -- the model's view (migration 0037): the non-credit rows and the model's credits
        FROM {rollup:Identifier}
    )
    GROUP BY key
    HAVING sum(n) != 0
) AS m
LEFT JOIN
(
    -- the row channel from the first day with spend and the first day with a touch (nets of
    -- presence are never negative: a day's sum is positive iff one of its rows is)
    SELECT campaign_id,
           CAST(argMinIf(channel, day, spend_n > 0) AS String) AS spend_channel,
           CAST(argMinIf(channel, first, first != '') AS String) AS touch_channel
    FROM
    (
        SELECT campaign_id, day, channel, spend_n,
               arrayFilter((k, c) -> c > 0, t.1, t.2) AS present,
               if(empty(present), '', arrayMin(present)) AS first
        FROM
        (
            SELECT campaign_id, day, channel, sum(spend_rows) AS spend_n, sumMap(touches) AS t
            FROM rollup_campaign_channels
            WHERE (campaign_id, day) IN
            (
                SELECT campaign_id, arrayJoin([minIf(day, spend_n > 0), minIf(day, touch_n > 0)])
                FROM
                (
                    SELECT campaign_id, day, sum(spend_rows) AS spend_n, sum(n) AS touch_n
                    FROM rollup_campaign_channels
                    GROUP BY campaign_id, day
                )
                GROUP BY campaign_id
            )
            GROUP BY campaign_id, day, channel
        )
    )
    GROUP BY campaign_id
) AS r ON r.campaign_id = m.key
ORDER BY campaign_id
