-- 0033: rollups of the marketing groupings `channels` and `campaigns` (issue 18,
-- services/rollup/refresh.py, sql/channels/ and sql/campaigns/).
--
-- One signed item log feeds both: an item carries the channel AND the campaign it
-- counts for (campaign_id '' when it counts for no campaign, A4), the model of a
-- credit ('' for every other item) and the dates of its measures:
--   spend         a spend winner: day = date, spend, spend_rows = 1
--   lead          a lead winner: day = lead date, leads = 1, converted = 1 when its person
--                 (converting_person_keys) won a deal in [lead_at, lead_at + window], touch
--   click         a (channel, campaign) pair of clicks: its first click's day and touch
--   deal          one row per credit of every stored model: day = won date, conversions,
--                 revenue (credit * revenue)
--   person        a converting person's profile: channel = first channel, day = first won
--                 date, customers = 1, ltv = value, ltv_n = 1 (ltv is all-time)
--   conversation  a started conversation: day = start date, touch
--   call          an inbound call winner: channel 'call', day = start date, touch
-- `touch` is the (touch_at, event_id) of a touch as a string that sorts as that tuple
-- (zero-padded epoch ms, tab, event_id): the first touch of a campaign (M8).
-- Every item is a presence (n = sum of sign): the all-time row sets (M2, M8).
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS rollup_items_channels
(
    entity      String,
    sign        Int8,
    day         Date32,
    channel     String,
    campaign_id String,
    model       String,
    spend       Decimal(38, 6),
    spend_rows  Int64,
    leads       Int64,
    converted   Int64,
    conversions Float64,
    revenue     Float64,
    customers   Int64,
    ltv         Decimal(38, 6),
    ltv_n       Int64,
    touch       String
)
ENGINE = MergeTree
ORDER BY entity;

-- channels: days x (channel, model); model '' holds every item that is not a credit
CREATE TABLE IF NOT EXISTS rollup_channels
(
    day         Date32,
    channel     LowCardinality(String),
    model       LowCardinality(String),
    n           SimpleAggregateFunction(sum, Int64),
    spend       SimpleAggregateFunction(sum, Decimal(38, 6)),
    spend_rows  SimpleAggregateFunction(sum, Int64),
    leads       SimpleAggregateFunction(sum, Int64),
    converted   SimpleAggregateFunction(sum, Int64),
    conversions SimpleAggregateFunction(sum, Float64),
    revenue     SimpleAggregateFunction(sum, Float64),
    customers   SimpleAggregateFunction(sum, Int64),
    ltv         SimpleAggregateFunction(sum, Decimal(38, 6)),
    ltv_n       SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, channel, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_channels_mv TO rollup_channels AS
SELECT day, channel, model,
       sum(toInt64(sign)) AS n,
       sum(sign * spend) AS spend,
       sum(sign * spend_rows) AS spend_rows,
       sum(sign * leads) AS leads,
       sum(sign * converted) AS converted,
       sum(sign * conversions) AS conversions,
       sum(sign * revenue) AS revenue,
       sum(sign * customers) AS customers,
       sum(sign * ltv) AS ltv,
       sum(sign * ltv_n) AS ltv_n
FROM rollup_items_channels
GROUP BY day, channel, model;

-- campaigns: days x (campaign, model), items with a campaign only. Apart from rollup_channels
-- so that a channels read does not grow with the number of campaigns (one table keyed by
-- both: channels 12 -> 29 ms at 3 years and 50 campaigns, leadflow.bench.rollup_marketing).
CREATE TABLE IF NOT EXISTS rollup_campaigns
(
    day         Date32,
    campaign_id String,
    model       LowCardinality(String),
    n           SimpleAggregateFunction(sum, Int64),
    spend       SimpleAggregateFunction(sum, Decimal(38, 6)),
    spend_rows  SimpleAggregateFunction(sum, Int64),
    leads       SimpleAggregateFunction(sum, Int64),
    converted   SimpleAggregateFunction(sum, Int64),
    conversions SimpleAggregateFunction(sum, Float64),
    revenue     SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, campaign_id, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_campaigns_mv TO rollup_campaigns AS
SELECT day, campaign_id, model,
       sum(toInt64(sign)) AS n,
       sum(sign * spend) AS spend,
       sum(sign * spend_rows) AS spend_rows,
       sum(sign * leads) AS leads,
       sum(sign * converted) AS converted,
       sum(sign * conversions) AS conversions,
       sum(sign * revenue) AS revenue
FROM rollup_items_channels
WHERE campaign_id != ''
GROUP BY day, campaign_id, model;

-- the row channel of campaigns (M8): the channel of the earliest spend row (one spend
-- winner per campaign and day: the channel of its first spend day), else of the first touch
-- (the smallest touch key of its first touch day). Keyed by campaign first: kpis.sql reads
-- it in order and takes each campaign's touch keys of one day only.
CREATE TABLE IF NOT EXISTS rollup_campaign_channels
(
    campaign_id String,
    day         Date32,
    channel     LowCardinality(String),
    spend_rows  SimpleAggregateFunction(sum, Int64),
    n           SimpleAggregateFunction(sum, Int64),
    touches     SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(Int64)))
)
ENGINE = AggregatingMergeTree
ORDER BY (campaign_id, day, channel);

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_campaign_channels_mv TO rollup_campaign_channels AS
SELECT campaign_id, day, channel,
       sum(sign * spend_rows) AS spend_rows,
       sum(toInt64(sign) * (touch != '')) AS n,
       sumMap(if(touch = '', [], [touch]), if(touch = '', [], [toInt64(sign)])) AS touches
FROM rollup_items_channels
WHERE campaign_id != '' AND (touch != '' OR startsWith(entity, 'spend:'))
GROUP BY campaign_id, day, channel;
