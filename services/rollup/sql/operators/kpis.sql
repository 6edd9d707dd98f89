-- KPIs by operator from the rollup (migration 0035): the reference's parameters and output
-- (services/attribution/kpis/sql/operators.sql; readings S1-S4, S10, O1-O5, B1-B4).
--
-- Parameters: date_from, date_to (Date32, half-open period); nothing else (the items were
-- computed with the settings' windows and SLA targets).
--
-- Rows: every operator with items, all time (O1: `items` > 0 over every day); figures: the
-- sums of the period's days.
--   quantiles   quantilesExactInclusive(0.5, 0.9) exactly: the merged value -> count map as
--               the sorted values (xs), h = level * (n - 1) + 1, xs[floor h] + (h - floor h) *
--               (xs[floor h + 1] - xs[floor h]), the largest value when floor h >= n
--   concurrency maxIntersections: the highest running sum (at least 0) of the period's interval
--               ends' deltas in point order, each point's deltas summed together (a window's
--               peers: a stored +1 and its retraction's -1 cancel); the ends' encoding
--               (ms * 4 + order) keeps the reference's order at one instant, and all the ends
--               at one encoded point have one sign, so their net delta gives the same maximum
--               (a window over the points costs half of a sumMap of them)
-- (Nested lambdas with aliases cost ~10 ms of analysis each: the steps are subqueries.)
SELECT
    a.operator_id AS operator_id,
    toInt64(handled) AS conversations,
    if(empty(frt_xs), NULL, frt_q[1]) AS frt_median_s,
    if(empty(frt_xs), NULL, frt_q[2]) AS frt_p90_s,
    if(empty(frt_xs), NULL, arraySum(frt_xs) / length(frt_xs)) AS frt_mean_s,
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
    if(empty(handoff_xs), NULL, handoff_q[1]) AS handoff_wait_median_s,
    if(empty(handoff_xs), NULL, handoff_q[2]) AS handoff_wait_p90_s
FROM
(
    SELECT
        *,
        arrayMap(h -> if(toUInt64(h) >= length(frt_xs), frt_xs[length(frt_xs)],
                         frt_xs[toUInt64(h)] + (h - toUInt64(h)) * (frt_xs[toUInt64(h) + 1] - frt_xs[toUInt64(h)])),
                 arrayMap(level -> level * (length(frt_xs) - 1) + 1, [0.5, 0.9])) AS frt_q,
        arrayMap(h -> if(toUInt64(h) >= length(handoff_xs), handoff_xs[length(handoff_xs)],
                         handoff_xs[toUInt64(h)] + (h - toUInt64(h)) * (handoff_xs[toUInt64(h) + 1] - handoff_xs[toUInt64(h)])),
                 arrayMap(level -> level * (length(handoff_xs) - 1) + 1, [0.5, 0.9])) AS handoff_q
    FROM
    (
        SELECT
            * EXCEPT (frt_m, handoff_m),
            -- the values in order, each as many times as counted
            arrayFlatten(arrayMap((k, c) -> arrayWithConstant(greatest(c, 0), k), frt_m.1, frt_m.2)) AS frt_xs,
            arrayFlatten(arrayMap((k, c) -> arrayWithConstant(greatest(c, 0), k), handoff_m.1, handoff_m.2)) AS handoff_xs
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
                sumIf(bot_n, live) AS bot_n,
                sumMapIf(frt, live) AS frt_m,
                sumMapIf(handoff, live) AS handoff_m
            FROM
            (
                SELECT *, day >= {date_from:Date32} AND day < {date_to:Date32} AS live
                FROM rollup_operators
            )
            GROUP BY operator_id
            HAVING sum(items) > 0
        )
    )
) AS a
LEFT JOIN
(
    SELECT operator_id, greatest(0, max(open)) AS max_conc
    FROM
    (
        SELECT operator_id, sum(delta) OVER (PARTITION BY operator_id ORDER BY point) AS open
        FROM rollup_operators
        ARRAY JOIN conc.1 AS point, conc.2 AS delta
        WHERE day >= {date_from:Date32} AND day < {date_to:Date32}
    )
    GROUP BY operator_id
) AS m ON m.operator_id = a.operator_id
ORDER BY operator_id
