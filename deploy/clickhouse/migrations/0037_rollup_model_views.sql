-- 0037: one view per attribution model over the marketing rollups (migration 0033), the
-- `{rollup:Identifier}` the channels and campaigns KPI queries read (services/rollup/sql/
-- channels/kpis.sql, campaigns/kpis.sql), as the facts path reads `credits_<model>`:
-- * a stored model: the rollup rows of every item that is not a credit (model '') and of
--   that model's credits;
-- * markov: the same non-credit rows, and the markov credits per won day and channel
--   (campaign) summed from `credits_markov` (migration 0025) when asked: removal effects
--   depend on every journey, so they are never stored. A markov query costs the chain's
--   solution, as on the facts path; every other model reads days x groups only.
-- A single SQL text then serves every model, which the generated dashboards need (their
-- model variable is interpolated into the view's name).
-- Frozen: later changes are new migrations.

CREATE VIEW IF NOT EXISTS rollup_channels_first_touch AS
SELECT day, CAST(channel AS String) AS channel, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue, toInt64(customers) AS customers, toDecimal128(ltv, 6) AS ltv, toInt64(ltv_n) AS ltv_n
FROM rollup_channels WHERE model IN ('', 'first_touch');

CREATE VIEW IF NOT EXISTS rollup_campaigns_first_touch AS
SELECT day, campaign_id, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue
FROM rollup_campaigns WHERE model IN ('', 'first_touch');

CREATE VIEW IF NOT EXISTS rollup_channels_last_touch AS
SELECT day, CAST(channel AS String) AS channel, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue, toInt64(customers) AS customers, toDecimal128(ltv, 6) AS ltv, toInt64(ltv_n) AS ltv_n
FROM rollup_channels WHERE model IN ('', 'last_touch');

CREATE VIEW IF NOT EXISTS rollup_campaigns_last_touch AS
SELECT day, campaign_id, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue
FROM rollup_campaigns WHERE model IN ('', 'last_touch');

CREATE VIEW IF NOT EXISTS rollup_channels_linear AS
SELECT day, CAST(channel AS String) AS channel, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue, toInt64(customers) AS customers, toDecimal128(ltv, 6) AS ltv, toInt64(ltv_n) AS ltv_n
FROM rollup_channels WHERE model IN ('', 'linear');

CREATE VIEW IF NOT EXISTS rollup_campaigns_linear AS
SELECT day, campaign_id, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue
FROM rollup_campaigns WHERE model IN ('', 'linear');

CREATE VIEW IF NOT EXISTS rollup_channels_time_decay AS
SELECT day, CAST(channel AS String) AS channel, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue, toInt64(customers) AS customers, toDecimal128(ltv, 6) AS ltv, toInt64(ltv_n) AS ltv_n
FROM rollup_channels WHERE model IN ('', 'time_decay');

CREATE VIEW IF NOT EXISTS rollup_campaigns_time_decay AS
SELECT day, campaign_id, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue
FROM rollup_campaigns WHERE model IN ('', 'time_decay');

CREATE VIEW IF NOT EXISTS rollup_channels_position_based AS
SELECT day, CAST(channel AS String) AS channel, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue, toInt64(customers) AS customers, toDecimal128(ltv, 6) AS ltv, toInt64(ltv_n) AS ltv_n
FROM rollup_channels WHERE model IN ('', 'position_based');

CREATE VIEW IF NOT EXISTS rollup_campaigns_position_based AS
SELECT day, campaign_id, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue
FROM rollup_campaigns WHERE model IN ('', 'position_based');

CREATE VIEW IF NOT EXISTS rollup_channels_markov AS
SELECT day, CAST(channel AS String) AS channel, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue, toInt64(customers) AS customers, toDecimal128(ltv, 6) AS ltv, toInt64(ltv_n) AS ltv_n
FROM rollup_channels WHERE model = ''
UNION ALL
SELECT toDate32(won_at) AS day, credit_channel AS channel, 'markov' AS model, toInt64(count()) AS n,
       toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows, toInt64(0) AS leads, toInt64(0) AS converted,
       sum(credit) AS conversions, sum(credit * toFloat64(revenue)) AS revenue, toInt64(0) AS customers,
       toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n
FROM credits_markov
ARRAY JOIN channels AS credit_channel, credits AS credit
GROUP BY day, channel;

CREATE VIEW IF NOT EXISTS rollup_campaigns_markov AS
SELECT day, campaign_id, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue
FROM rollup_campaigns WHERE model = ''
UNION ALL
SELECT toDate32(won_at) AS day, credit_campaign AS campaign_id, 'markov' AS model, toInt64(count()) AS n,
       toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows, toInt64(0) AS leads, toInt64(0) AS converted,
       sum(credit) AS conversions, sum(credit * toFloat64(revenue)) AS revenue
FROM credits_markov
ARRAY JOIN campaigns AS credit_campaign, credits AS credit
WHERE credit_campaign != ''
GROUP BY day, campaign_id;
