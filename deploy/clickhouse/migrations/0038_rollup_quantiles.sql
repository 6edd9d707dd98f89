-- 0038: the exact quantiles of the operators and service rollups kept by value bucket (issue 18),
-- so a median or a p90 reads the period's bucket counts (days x groups x buckets) and then the
-- values of the one or two buckets its ranks fall in, instead of every distinct value of the
-- period (services/rollup/sql/quantiles.sql reads them).
--
-- rollup_quantile_buckets  per (grouping, metric, group, day, bucket): the signed count of values
--                          and their signed sum (the mean)
-- rollup_quantiles         per (grouping, metric, group, bucket, day, value): the signed count,
--                          ordered so one bucket's values are one range of the primary key
-- grouping: 'operators' (group = operator_id; metrics frt, handoff) or 'service' (group =
-- channel; metrics frt, wait, handoff). rollup_quantiles is fed from the item logs (migrations
-- 0034, 0035) by materialized views, as rollup_operators and rollup_service are, and
-- rollup_quantile_buckets from rollup_quantiles: a retracted item's -1 takes its value out of
-- both.
--
-- The bucket of a value v (seconds) is floor(log2(1 + v) * 32), mirrored below 0: 32 buckets per
-- doubling, non-decreasing in v (so the buckets' order is the values' order); a bucket is ~2% of
-- its values wide (at 60 s, 1.3 s: at most ~1,300 distinct millisecond values a day).
--
-- Existing item rows are copied in at the end. Apply it with the stages stopped (as every
-- migration): an item row written between the views' creation and the copy would count twice.
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

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_quantile_buckets_mv TO rollup_quantile_buckets AS
SELECT grouping, metric, grp, day, bucket, sum(c) AS n, sum(c * value) AS total
FROM (SELECT grouping, metric, grp, day, bucket, value, n AS c FROM rollup_quantiles)
GROUP BY grouping, metric, grp, day, bucket;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_quantiles_operators_mv TO rollup_quantiles AS
SELECT 'operators' AS grouping, metric, grp, bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, operator_id AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value,
           if(value >= 0, toInt32(floor(log2(1 + value) * 32)), -1 - toInt32(floor(log2(1 - value) * 32))) AS bucket
    FROM rollup_items_operators
    ARRAY JOIN [('frt', frt), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, bucket, day, value;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_quantiles_service_mv TO rollup_quantiles AS
SELECT 'service' AS grouping, metric, grp, bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, channel AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value,
           if(value >= 0, toInt32(floor(log2(1 + value) * 32)), -1 - toInt32(floor(log2(1 - value) * 32))) AS bucket
    FROM rollup_items_service
    ARRAY JOIN [('frt', frt), ('wait', wait), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, bucket, day, value;

-- the item rows stored before this migration (the buckets follow through their view)
INSERT INTO rollup_quantiles
SELECT 'operators' AS grouping, metric, grp, bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, operator_id AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value,
           if(value >= 0, toInt32(floor(log2(1 + value) * 32)), -1 - toInt32(floor(log2(1 - value) * 32))) AS bucket
    FROM rollup_items_operators
    ARRAY JOIN [('frt', frt), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, bucket, day, value;

INSERT INTO rollup_quantiles
SELECT 'service' AS grouping, metric, grp, bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, channel AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value,
           if(value >= 0, toInt32(floor(log2(1 + value) * 32)), -1 - toInt32(floor(log2(1 - value) * 32))) AS bucket
    FROM rollup_items_service
    ARRAY JOIN [('frt', frt), ('wait', wait), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, bucket, day, value
