-- 0039: the service rollup's response times kept by value bucket as well (issue 18), so a
-- median or a p90 of a channel reads the period's bucket counts (days x channels x buckets) and
-- then only the values of the buckets its ranks fall in, instead of every distinct value of the
-- period (services/rollup/sql/service/kpis.sql). A channel holds thousands of distinct values a
-- day; an operator a few, so the operators' rollup reads its values directly (0035).
--
-- rollup_quantile_buckets  per (grouping, metric, group, day, bucket): the signed count of values
--                          and their signed sum (the mean)
-- rollup_quantiles         per (grouping, metric, group, bucket, day, value): the signed count,
--                          ordered so that one bucket's values are one range of the primary key
-- grouping 'service': group = the conversation channel, metrics frt, wait, handoff (the item
-- log's columns, migration 0034). The values are fed from the item log by a materialized view, as
-- rollup_service is, and the buckets from the values: a retracted item's -1 takes its value out of both.
--
-- The bucket of a value v (seconds) is floor(log2(1 + v) * 8), mirrored below 0: 8 buckets per
-- doubling, non-decreasing in v, so the buckets' order is the values' order; at 60 s a bucket is
-- 5.3 s wide, at 1 h 5 min.
--
-- The item rows stored before this migration are copied in at the end (run migrations with the
-- stages stopped, as always: an item row written between the views' creation and the copy would
-- count twice).
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS rollup_quantile_buckets
(
    grouping LowCardinality(String),
    metric   LowCardinality(String),
    grp      String,
    day      Date32,
    bucket   Int32,
    n        SimpleAggregateFunction(sum, Int64),
    total    SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (grouping, metric, grp, day, bucket)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

CREATE TABLE IF NOT EXISTS rollup_quantiles
(
    grouping LowCardinality(String),
    metric   LowCardinality(String),
    grp      String,
    bucket   Int32,
    day      Date32,
    value    Float64,
    n        SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (grouping, metric, grp, bucket, day, value)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

TRUNCATE TABLE rollup_quantile_buckets;

TRUNCATE TABLE rollup_quantiles;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_quantiles_service_mv TO rollup_quantiles AS
SELECT 'service' AS grouping, metric, grp, bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, channel AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value,
           if(value >= 0, toInt32(floor(log2(1 + value) * 8)), -1 - toInt32(floor(log2(1 - value) * 8))) AS bucket
    FROM rollup_items_service
    ARRAY JOIN [('frt', frt), ('wait', wait), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, bucket, day, value;

-- the buckets follow the values (the view fires on the rows the view above writes)
CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_quantile_buckets_mv TO rollup_quantile_buckets AS
SELECT grouping, metric, grp, day, bucket, sum(c) AS n, sum(c * value) AS total
FROM (SELECT grouping, metric, grp, day, bucket, value, n AS c FROM rollup_quantiles)
GROUP BY grouping, metric, grp, day, bucket;

-- the item rows stored before this migration (the same SELECT as the view's; the buckets follow)
INSERT INTO rollup_quantiles
SELECT 'service' AS grouping, metric, grp, bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, channel AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value,
           if(value >= 0, toInt32(floor(log2(1 + value) * 8)), -1 - toInt32(floor(log2(1 - value) * 8))) AS bucket
    FROM rollup_items_service
    ARRAY JOIN [('frt', frt), ('wait', wait), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, bucket, day, value
