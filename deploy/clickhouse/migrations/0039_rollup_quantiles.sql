-- 0039: the exact quantiles of the service and operators rollups kept as rows (issue 18).
--
-- rollup_quantiles         per (grouping, metric, group, bucket, day, value): the signed count,
--                          ordered so that one bucket's values are one range of the primary key
-- rollup_quantile_buckets  per (grouping, metric, group, day, bucket): the signed count of values
--                          and their signed sum (the mean); service only
-- grouping 'service': group = the conversation channel, metrics frt, wait, handoff (the item
-- log's columns, migration 0034); 'operators': group = the operator, metrics frt, handoff
-- (migration 0035), bucket 0. The values are fed from the item logs by materialized views, as
-- rollup_service and rollup_operators are, and the service's buckets from its values: a
-- retracted item's -1 takes its value out of both.
--
-- service (services/rollup/sql/service/kpis.sql): a channel holds thousands of distinct values a
-- day, so a median or a p90 reads the period's bucket counts (days x channels x buckets), then
-- only the values of the buckets its ranks fall in. The bucket of a value v (seconds) is
-- floor(log2(1 + v) * 8), mirrored below 0: 8 buckets per doubling, non-decreasing in v, so the
-- buckets' order is the values' order; at 60 s a bucket is 5.3 s wide, at 1 h 5 min.
-- operators (services/rollup/sql/operators/kpis.sql): an operator holds a value or two a day, so
-- the period's rows are read as they are: as rows, not the map entries of rollup_operators.
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

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_quantiles_operators_mv TO rollup_quantiles AS
SELECT 'operators' AS grouping, metric, grp, toInt32(0) AS bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, operator_id AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value
    FROM rollup_items_operators
    ARRAY JOIN [('frt', frt), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, day, value;

-- the service's buckets follow its values (the view fires on the rows the view above writes)
CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_quantile_buckets_mv TO rollup_quantile_buckets AS
SELECT grouping, metric, grp, day, bucket, sum(c) AS n, sum(c * value) AS total
FROM (SELECT grouping, metric, grp, day, bucket, value, n AS c FROM rollup_quantiles WHERE grouping = 'service')
GROUP BY grouping, metric, grp, day, bucket;

-- the item rows stored before this migration (the same SELECTs as the views'; the buckets follow)
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
GROUP BY metric, grp, bucket, day, value;

INSERT INTO rollup_quantiles
SELECT 'operators' AS grouping, metric, grp, toInt32(0) AS bucket, day, value, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, operator_id AS grp, tupleElement(m, 1) AS metric, assumeNotNull(tupleElement(m, 2)) AS value
    FROM rollup_items_operators
    ARRAY JOIN [('frt', frt), ('handoff', handoff)] AS m
    WHERE tupleElement(m, 2) IS NOT NULL
)
GROUP BY metric, grp, day, value
