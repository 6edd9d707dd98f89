-- Conversions and attributed revenue by touch channel under every attribution
-- model at once, for comparing the models side by side (kpis.md "Attribution
-- models"). Shared by the HTML report and the "Marketing attribution"
-- dashboard (services/attribution/kpis/extra.py runs it).
-- Readings: docs/kpi-readings.md M1, M3, A4: conversions are dated by won_at;
-- for each model, `conversions` and `revenue` equal the `channels` grouping's
-- values under that model.
--
-- Parameters (server-side binding):
--   date_from, date_to  Date32         half-open period [date_from, date_to) of UTC dates
--   channels            Array(String)  touch channels to include; [] = all
--
-- One row per (channel, model) with a credit of a conversion won in the period.
SELECT
    credit_channel AS channel,
    toString(model) AS model,
    sum(credit) AS conversions,
    sum(credit * toFloat64(revenue)) AS revenue
FROM model_credits
ARRAY JOIN channels AS credit_channel, credits AS credit
WHERE toDate32(won_at) >= {date_from:Date32} AND toDate32(won_at) < {date_to:Date32}
  AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, credit_channel))
GROUP BY channel, model
ORDER BY channel, indexOf(['first_touch', 'last_touch', 'linear', 'time_decay', 'position_based', 'markov'], model)
