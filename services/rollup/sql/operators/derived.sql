-- The operators' day peaks (rollup_operator_peaks, migration 0038) of every (operator, point
-- day) the refreshed entities (temporary table `rollup_entities`) ever had an interval end in,
-- recomputed from the points as they are now. Run by refresh.py after the items are written.
--
-- The days come from all of the entities' item rows, retracted ones included, so a retry after
-- a crash between the items' insert and this statement recomputes the same days (a retry is a
-- replay). A day left without points gets a row with points = 0. The version is the statement's
-- start (now64 is one value per query): of two refreshes of one day, the one that read later
-- wins, and it saw every point written before it read.
INSERT INTO rollup_operator_peaks (operator_id, pday, net, peak, first_day, last_day, points, version)
WITH touched AS
(
    SELECT DISTINCT operator_id, toInt32(intDiv(p, 345600000)) AS pday
    FROM rollup_items_operators
    ARRAY JOIN [conc_b, conc_e] AS p
    WHERE entity IN (SELECT key FROM rollup_entities) AND handled = 1
)
SELECT
    t.operator_id,
    t.pday,
    s.net,
    s.peak,
    s.first_day,
    s.last_day,
    s.points,
    toUInt64(toUnixTimestamp64Nano(now64(9)))
FROM touched AS t
LEFT JOIN
(
    SELECT operator_id, pday, sum(d) AS net, max(run) AS peak, min(day) AS first_day, max(day) AS last_day,
           count() AS points
    FROM
    (
        SELECT operator_id, pday, day, d, sum(d) OVER (PARTITION BY operator_id, pday ORDER BY point) AS run
        FROM
        (
            SELECT operator_id, pday, point, day, sum(delta) AS d
            FROM rollup_operator_points
            WHERE (operator_id, pday) IN (SELECT operator_id, pday FROM touched)
            GROUP BY operator_id, pday, point, day
            HAVING d != 0
        )
    )
    GROUP BY operator_id, pday
) AS s ON s.operator_id = t.operator_id AND s.pday = t.pday
