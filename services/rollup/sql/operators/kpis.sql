-- KPIs by operator from the rollup (migration 0035): the reference's parameters and output
-- (services/attribution/kpis/sql/operators.sql; readings S1-S4, S10, O1-O5, B1-B4).
--
-- Parameters: date_from, date_to (Date32, half-open period); nothing else (the items were
-- computed with the settings' windows and SLA targets).
--
-- Rows: every operator with items, all time (O1: `items` > 0 over every day); figures: the
-- sums of the period's days.
--   quantiles   the reference's quantilesExactInclusive(0.5, 0.9) and mean over the period's
--               value -> count entries as rows, netted per (operator, value), each value
--               repeated its net count times (rows and a hash GROUP BY: merging the maps with
--               sumMap costs several times more at 10M events)
--   concurrency maxIntersections: the highest running sum (at least 0) of the period's interval
--               ends' deltas in point order, each point's deltas summed together (a window's
--               peers: a stored +1 and its retraction's -1 cancel); the ends' encoding
--               (ms * 4 + order) keeps the reference's order at one instant, and all the ends
--               at one encoded point have one sign, so their net delta gives the same maximum
--               (a window over the points costs half of a sumMap of them)
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
        SELECT v_operator, metric, quantilesExactInclusive(0.5, 0.9)(value) AS q, avg(value) AS mean, count() AS n
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
        ARRAY JOIN range(toUInt64(net)) AS copy
        GROUP BY v_operator, metric
    )
    GROUP BY v_operator
) AS v ON v.v_operator = a.operator_id
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
