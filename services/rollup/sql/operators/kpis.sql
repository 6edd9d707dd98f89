-- KPIs by operator from the rollup (migration 0035): the reference's parameters and output
-- (services/attribution/kpis/sql/operators.sql; readings S1-S4, S10, O1-O5, B1-B4).
--
-- Parameters: date_from, date_to (Date32, half-open period); nothing else (the items were
-- computed with the settings' windows and SLA targets).
--
-- Rows: every operator with items, all time (O1: `items` > 0 over every day); figures: the
-- sums of the period's days.
--   quantiles   the reference's quantilesExactInclusive(0.5, 0.9) and mean over the period's
--               value -> count entries as rows, netted per (operator, value) (rows and a hash
--               GROUP BY: merging the maps with sumMap costs several times more at 10M events),
--               then ClickHouse's formula applied to the sorted (value, count) pairs, so no
--               value is repeated its count times
--   concurrency maxIntersections: the highest running sum (at least 0) of the period's interval
--               ends' deltas in point order, each point's deltas summed together (a stored +1
--               and its retraction's -1 cancel); the ends' encoding (ms * 4 + order) keeps the
--               reference's order at one instant, and all the ends at one encoded point have
--               one sign, so their net delta gives the same maximum. Read per (operator, UTC
--               day of the point) from rollup_operator_peaks (migration 0038): the running sum
--               at a point is the net of the days before plus the day's own running sum, so
--               the maximum is the largest (carry + the day's peak). A day whose points are not
--               all of the period's items (an interval crossing the period's first or last
--               midnight) is computed from its points (rollup_operator_points)
SELECT
    a.operator_id AS operator_id,
    toInt64(handled) AS conversations,
    if(frt_n = 0, NULL, frt_q[1]) AS frt_median_s,
    if(frt_n = 0, NULL, frt_q[2]) AS frt_p90_s,
    if(frt_n = 0, NULL, frt_mean) AS frt_mean_s,
    art_sum / nullIf(art_n, 0) AS art_s,
    sla_ok / nullIf(sla_n, 0) AS sla_rate,
    toInt64(transfers) AS transfers,
    templated / nullIf(messages, 0) AS template_share,
    csat_ok / nullIf(csat_n, 0) AS csat,
    100 * (toFloat64(nps_promoters) - toFloat64(nps_detractors)) / nullIf(nps_n, 0) AS nps,
    converted / nullIf(handled, 0) AS operator_conversion_rate,
    toInt64(m.max_conc) AS max_concurrency,
    toInt64(bot_n) AS bot_conversations,
    CAST(NULL AS Nullable(Int64)) AS bot_contained,
    CAST(NULL AS Nullable(Float64)) AS bot_containment_rate,
    if(handoff_n = 0, NULL, handoff_q[1]) AS handoff_wait_median_s,
    if(handoff_n = 0, NULL, handoff_q[2]) AS handoff_wait_p90_s
FROM
(
    SELECT
        operator_id,
        sumIf(handled, live) AS handled,
        sumIf(converted, live) AS converted,
        sumIf(messages, live) AS messages,
        sumIf(templated, live) AS templated,
        sumIf(transfers, live) AS transfers,
        sumIf(sla_n, live) AS sla_n,
        sumIf(sla_ok, live) AS sla_ok,
        sumIf(art_sum, live) AS art_sum,
        sumIf(art_n, live) AS art_n,
        sumIf(csat_n, live) AS csat_n,
        sumIf(csat_ok, live) AS csat_ok,
        sumIf(nps_n, live) AS nps_n,
        sumIf(nps_promoters, live) AS nps_promoters,
        sumIf(nps_detractors, live) AS nps_detractors,
        sumIf(bot_n, live) AS bot_n
    FROM
    (
        SELECT *, day >= {date_from:Date32} AND day < {date_to:Date32} AS live
        FROM rollup_operators
    )
    GROUP BY operator_id
    HAVING sum(items) > 0
) AS a
LEFT JOIN
(
    SELECT
        v_operator,
        anyIf(q, metric = 'frt') AS frt_q,
        sumIf(n, metric = 'frt') AS frt_n,
        anyIf(mean, metric = 'frt') AS frt_mean,
        anyIf(q, metric = 'handoff') AS handoff_q,
        sumIf(n, metric = 'handoff') AS handoff_n
    FROM
    (
        SELECT
            v_operator, metric, n, total / n AS mean,
            -- quantilesExactInclusive(0.5, 0.9) without repeating the values: of the n sorted values
            -- a_1..a_n, h = level * (n - 1) + 1, k = floor(h), a_k + (h - k) * (a_(k+1) - a_k);
            -- a_r is the first value whose running count reaches r
            arrayMap(h -> vs[arrayFirstIndex(c -> c >= toInt64(h), cum)].1
                          + (h - toFloat64(toInt64(h)))
                            * (vs[arrayFirstIndex(c -> c >= least(toInt64(h) + 1, n), cum)].1
                               - vs[arrayFirstIndex(c -> c >= toInt64(h), cum)].1),
                     [0.5 * toFloat64(n - 1) + 1, 0.9 * toFloat64(n - 1) + 1]) AS q
        FROM
        (
            SELECT v_operator, metric, arraySort(groupArray((value, net))) AS vs, arrayCumSum(arrayMap(x -> x.2, vs)) AS cum,
                   cum[-1] AS n, sum(value * net) AS total
            FROM
            (
                -- a value's net count is >= 0 unless two refreshes of one entity raced (a rebuild
                -- repairs that; the query still answers)
                SELECT operator_id AS v_operator, tupleElement(m, 1) AS metric, value, sum(c) AS net
                FROM rollup_operators
                ARRAY JOIN [('frt', frt), ('handoff', handoff)] AS m
                ARRAY JOIN tupleElement(tupleElement(m, 2), 1) AS value, tupleElement(tupleElement(m, 2), 2) AS c
                WHERE day >= {date_from:Date32} AND day < {date_to:Date32}
                GROUP BY v_operator, metric, value
                HAVING net > 0
            )
            GROUP BY v_operator, metric
        )
    )
    GROUP BY v_operator
) AS v ON v.v_operator = a.operator_id
LEFT JOIN
(
    -- the days in point order, each day's peak raised by the net of the days before it
    SELECT operator_id, greatest(0, max(carry + peak)) AS max_conc
    FROM
    (
        SELECT operator_id, peak,
               sum(net) OVER (PARTITION BY operator_id ORDER BY pday ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                   AS carry
        FROM
        (
            -- a day whose points all belong to items of the period: as stored
            SELECT operator_id, pday, net, peak
            FROM rollup_operator_peaks FINAL
            WHERE points > 0 AND first_day >= {date_from:Date32} AND last_day < {date_to:Date32}
            UNION ALL
            -- a day the period cuts through: its points of the period's items
            SELECT operator_id, pday, sum(d) AS net, max(run) AS peak
            FROM
            (
                SELECT operator_id, pday, d, sum(d) OVER (PARTITION BY operator_id, pday ORDER BY point) AS run
                FROM
                (
                    SELECT operator_id, pday, point, sum(delta) AS d
                    FROM rollup_operator_points
                    WHERE (operator_id, pday) IN (
                            SELECT operator_id, pday
                            FROM rollup_operator_peaks FINAL
                            WHERE points > 0 AND last_day >= {date_from:Date32} AND first_day < {date_to:Date32}
                              AND (first_day < {date_from:Date32} OR last_day >= {date_to:Date32}))
                      AND day >= {date_from:Date32} AND day < {date_to:Date32}
                    GROUP BY operator_id, pday, point
                    HAVING d != 0
                )
            )
            GROUP BY operator_id, pday
        )
    )
    GROUP BY operator_id
) AS m ON m.operator_id = a.operator_id
ORDER BY operator_id
