-- The exact medians and p90s (the reference's quantilesExactInclusive(0.5, 0.9)) and the means of
-- a grouping's response times over the period [date_from, date_to), read by value bucket
-- (migration 0038). Included in a grouping's kpis.sql where it says @quantiles@, with
-- @grouping@ replaced by the grouping's name (services/rollup/refresh.py kpis_sql).
-- Output: q_grp, metric, q ([median, p90]), mean, n (values in the period).
--
-- ClickHouse's formula over the n sorted values a_1..a_n: h = level * (n - 1) + 1, k = floor(h),
-- result a_k + (h - k) * (a_(k+1) - a_k) (a_n when k >= n). So each quantile needs the values of
-- two ranks:
--   1. the period's count per (group, metric, bucket), summed over its days (days x groups x
--      buckets rows), gives n, the mean, and for each rank wanted its bucket (the first whose
--      running count reaches it) and its place among that bucket's values;
--   2. only those buckets' values are read (a range of rollup_quantiles' primary key each),
--      netted per value, and the rank's value is the one whose running count reaches its place.
-- A net count below 0 (two refreshes of one entity that raced; a rebuild repairs it) is left out,
-- as the values are.
WITH
    -- the period's count (and sum) of values per (group, metric, bucket)
    hist AS
    (
        SELECT grp, metric, bucket, sum(n) AS bn, sum(total) AS bt
        FROM rollup_quantile_buckets
        WHERE grouping = @grouping@ AND day >= {date_from:Date32} AND day < {date_to:Date32}
        GROUP BY grp, metric, bucket
        HAVING bn > 0
    ),
    -- per (group, metric): n, the levels' h and k, and the ranks wanted (k of each level, then k + 1)
    ranks AS
    (
        SELECT grp, metric, sum(bn) AS n, sum(bt) AS total,
               arraySort(groupArray((bucket, bn))) AS hs, arrayCumSum(arrayMap(x -> x.2, hs)) AS cum,
               arrayMap(level -> level * toFloat64(n - 1) + 1, [0.5, 0.9]) AS h,
               arrayMap(x -> toInt64(x), h) AS k,
               arrayConcat(k, arrayMap(x -> least(x + 1, n), k)) AS wanted
        FROM hist
        GROUP BY grp, metric
    ),
    -- each wanted rank's bucket and place among that bucket's values
    places AS
    (
        SELECT grp, metric, i, arrayFirstIndex(c -> c >= wanted_rank, cum) AS pos, hs[pos].1 AS bucket,
               wanted_rank - if(pos = 1, 0, cum[pos - 1]) AS place
        FROM ranks
        ARRAY JOIN wanted AS wanted_rank, arrayEnumerate(wanted) AS i
    ),
    -- those buckets' values, netted, in order
    vals AS
    (
        SELECT grp, metric, bucket, arraySort(groupArray((value, vn))) AS vs, arrayCumSum(arrayMap(x -> x.2, vs)) AS vcum
        FROM
        (
            SELECT grp, metric, bucket, value, sum(n) AS vn
            FROM rollup_quantiles
            WHERE grouping = @grouping@ AND day >= {date_from:Date32} AND day < {date_to:Date32}
              AND (grp, metric, bucket) IN (SELECT grp, metric, bucket FROM places)
            GROUP BY grp, metric, bucket, value
            HAVING vn > 0
        )
        GROUP BY grp, metric, bucket
    )
SELECT
    w.grp AS q_grp,
    w.metric AS metric,
    arrayMap(j -> a[j] + (w.h[j] - toFloat64(w.k[j])) * (a[j + 2] - a[j]), [1, 2]) AS q,
    w.total / w.n AS mean,
    w.n AS n
FROM ranks AS w
INNER JOIN
(
    -- the values of the wanted ranks, in the order of `wanted`
    SELECT p.grp AS grp, p.metric AS metric,
           arrayMap(x -> x.2, arraySort(groupArray((p.i, v.vs[arrayFirstIndex(c -> c >= p.place, v.vcum)].1)))) AS a
    FROM places AS p
    INNER JOIN vals AS v ON v.grp = p.grp AND v.metric = p.metric AND v.bucket = p.bucket
    GROUP BY p.grp, p.metric
) AS b ON b.grp = w.grp AND b.metric = w.metric
