-- Spend, leads, conversions and attributed revenue per UTC day and touch
-- channel (kpis.md "Marketing KPIs ... by day"). Shared by the HTML report and
-- the "Marketing attribution" dashboard (services/attribution/kpis/extra.py).
-- Readings: docs/kpi-readings.md M1 (spend by its `date`, leads by the date of
-- occurred_at, conversions by the date of won_at), D2, D3.
--
-- Parameters (server-side binding):
--   date_from, date_to  Date32         half-open period [date_from, date_to) of UTC dates
--   model               String         attribution model of conversions and revenue
--   credits             Identifier     'credits_' || model: the view of the model's credits (migration 0025)
--   channels            Array(String)  touch channels to include; [] = all
--   campaigns           Array(String)  campaigns to include; [] = all (touches without a campaign then drop out)
--
-- One row per (day, channel) with any figure; `t` is the day's midnight (UTC).
SELECT
    toDateTime(day, 'UTC') AS t,
    channel,
    toFloat64(sum(spend)) AS spend,
    toInt64(sum(leads)) AS leads,
    sum(conversions) AS conversions,
    sum(revenue) AS revenue
FROM
(
    SELECT toDate32(date) AS day, toString(channel) AS channel, campaign_id, toDecimal128(cost, 6) AS spend,
           toUInt64(0) AS leads, toFloat64(0) AS conversions, toFloat64(0) AS revenue
    FROM spend_winners
    UNION ALL
    SELECT toDate32(lead_at), toString(channel), campaign_id, toDecimal128(0, 6), toUInt64(1), 0., 0.
    FROM lead_winners
    UNION ALL
    SELECT toDate32(won_at), credit_channel, credit_campaign, toDecimal128(0, 6), toUInt64(0),
           credit, credit * toFloat64(revenue)
    FROM {credits:Identifier}
    ARRAY JOIN channels AS credit_channel, campaigns AS credit_campaign, credits AS credit
    WHERE model = {model:String}
)
WHERE day >= {date_from:Date32} AND day < {date_to:Date32}
  AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, channel))
  AND (empty({campaigns:Array(String)}) OR has({campaigns:Array(String)}, campaign_id))
GROUP BY day, channel
ORDER BY day, channel
