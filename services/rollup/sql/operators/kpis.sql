-- KPIs by operator from the rollup (migration 0035): the reference's parameters and output
-- (services/attribution/kpis/sql/operators.sql; readings S1-S4, S10, O1-O5, B1-B4).
--
-- Parameters: date_from, date_to (Date32, half-open period); nothing else (the items were
-- computed with the settings' windows and SLA targets).
--
-- Rows: every operator with items, all time (O1: `items` > 0 over every day); figures: the
-- sums of the period's days.
--   quantiles   the reference's quantilesExactInclusive(0.5, 0.9) and mean over the period's
--               values, read as rows from rollup_quantiles (migration 0039): each row's value
--               repeated its count times; an (operator, metric) with a retraction not merged
--               yet (a -1 row) is netted per value first. An operator holds a value or two a
--               day, so the rows cost what the values do; reading them as rows (not as the map
--               entries of rollup_operators) and taking ClickHouse's own quantile is what is fast
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
        -- the sums only (not the maps: they are most of the table)
        SELECT operator_id, items, handled, converted, messages, templated, transfers, sla_n, sla_ok, art_sum, art_n,
               csat_n, csat_ok, nps_n, nps_promoters, nps_detractors, bot_n,
               day >= {date_from:Date32} AND day < {date_to:Date32} AS live
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
        SELECT grp AS v_operator, metric, quantilesExactInclusive(0.5, 0.9)(value) AS q, avg(value) AS mean,
               count() AS n
        FROM
        (
            -- an (operator, metric) without a retraction in the period (a -1 row not merged with
            -- its +1 yet): its rows as they are
            SELECT grp, metric, value, n AS c
            FROM rollup_quantiles
            WHERE grouping = 'operators' AND day >= {date_from:Date32} AND day < {date_to:Date32} AND n > 0
              AND (grp, metric) NOT IN (
                    SELECT grp, metric FROM rollup_quantiles
                    WHERE grouping = 'operators' AND day >= {date_from:Date32} AND day < {date_to:Date32} AND n < 0)
            UNION ALL
            -- one with: netted per value first (a net below 0, from two refreshes of one entity that
            -- raced, is left out; a rebuild repairs it)
            SELECT grp, metric, value, sum(n) AS c
            FROM rollup_quantiles
            WHERE grouping = 'operators' AND day >= {date_from:Date32} AND day < {date_to:Date32}
              AND (grp, metric) IN (
                    SELECT grp, metric FROM rollup_quantiles
                    WHERE grouping = 'operators' AND day >= {date_from:Date32} AND day < {date_to:Date32} AND n < 0)
            GROUP BY grp, metric, value
            HAVING c > 0
        )
        ARRAY JOIN range(toUInt64(c)) AS copy
        GROUP BY grp, metric
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
