-- 0038: operators' max concurrency read per (operator, day of the point) instead of per interval
-- end (issue 18; services/rollup/sql/operators/derived.sql and kpis.sql).
--
-- rollup_operator_points: the handled items' interval ends (0035's conc_b / conc_e, encoded as
-- the reference's maxIntersections: ms * 4 + order) as signed rows, keyed by operator and
-- `pday`, the point's UTC day (days since 1970-01-01, intDiv(point, 4 * 86,400,000)); `day` is
-- the item's day (its conversation's or call's start), which decides the period it counts in.
-- Filled from the item log by a materialized view; a retracted end nets to 0 and merges away.
--
-- rollup_operator_peaks: per (operator, pday) what the query needs of that day's points: `net`
-- (their deltas summed), `peak` (the highest running sum from the day's start, points in order,
-- the deltas of one point together), `first_day` / `last_day` (the earliest and latest item day
-- among them) and `points` (0: none left). Recomputed from the points for every day an entity
-- touched, each time the rollup stage refreshes it (derived.sql); the newest `version` wins.
-- A period that holds every item of a day reads its row; the few days where the period cuts
-- through the items (intervals that cross the period's first or last midnight) are computed
-- from the points. Both are backfilled here from the item log.
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS rollup_operator_points
(
    operator_id String,
    pday        Int32,
    point       Int64,
    day         Date32,
    delta       Int64
)
ENGINE = SummingMergeTree
ORDER BY (operator_id, pday, point, day)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

CREATE TABLE IF NOT EXISTS rollup_operator_peaks
(
    operator_id String,
    pday        Int32,
    net         Int64,
    peak        Int64,
    first_day   Date32,
    last_day    Date32,
    points      UInt64,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (operator_id, pday)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

TRUNCATE TABLE rollup_operator_points;

INSERT INTO rollup_operator_points (operator_id, pday, point, day, delta)
SELECT operator_id, toInt32(intDiv(p.1, 345600000)), p.1, day, p.2
FROM rollup_items_operators
ARRAY JOIN [(conc_b, toInt64(sign)), (conc_e, -toInt64(sign))] AS p
WHERE handled = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_operator_points_mv TO rollup_operator_points AS
SELECT operator_id, toInt32(intDiv(p.1, 345600000)) AS pday, p.1 AS point, day, p.2 AS delta
FROM rollup_items_operators
ARRAY JOIN [(conc_b, toInt64(sign)), (conc_e, -toInt64(sign))] AS p
WHERE handled = 1;

TRUNCATE TABLE rollup_operator_peaks;

INSERT INTO rollup_operator_peaks (operator_id, pday, net, peak, first_day, last_day, points, version)
SELECT operator_id, pday, sum(d), max(run), min(day), max(day), count(), 1
FROM
(
    SELECT operator_id, pday, day, d, sum(d) OVER (PARTITION BY operator_id, pday ORDER BY point) AS run
    FROM
    (
        SELECT operator_id, pday, point, day, sum(delta) AS d
        FROM rollup_operator_points
        GROUP BY operator_id, pday, point, day
        HAVING d != 0
    )
)
GROUP BY operator_id, pday;
