-- KPIs by operator from the rollup (migration 0035): the reference's parameters and output
-- (services/attribution/kpis/sql/operators.sql; readings S1-S4, S10, O1-O5, B1-B4).
--
-- Parameters: date_from, date_to (Date32, half-open period); nothing else (the items were
-- computed with the settings' windows and SLA targets).
--
-- Rows: every operator with items, all time (O1: `items` > 0 over every day); figures: the
-- sums of the period's days. Exact quantiles (quantilesExactInclusive: h = level * (n - 1) + 1,
-- the n-th and (n+1)-th smallest values, linear between) from the merged value -> count maps;
-- max_concurrency (maxIntersections) as the highest running sum of the merged point -> delta
-- map of the period's interval ends, in point order (the ends' encoding keeps the reference's
-- order at one instant: an instant's ends come before its starts, those of empty intervals after).
SELECT
    a.operator_id AS operator_id,
    toInt64(p.handled) AS conversations,
    p.frt_q[1] AS frt_median_s,
    p.frt_q[2] AS frt_p90_s,
    p.frt_mean AS frt_mean_s,
    p.art_sum / nullIf(p.art_n, 0) AS art_s,
    p.sla_ok / nullIf(p.sla_n, 0) AS sla_rate,
    toInt64(p.transfers) AS transfers,
    p.templated / nullIf(p.messages, 0) AS template_share,
    p.csat_ok / nullIf(p.csat_n, 0) AS csat,
    100 * (toFloat64(p.nps_promoters) - toFloat64(p.nps_detractors)) / nullIf(p.nps_n, 0) AS nps,
    p.converted / nullIf(p.handled, 0) AS operator_conversion_rate,
    toInt64(p.max_conc) AS max_concurrency,
    toInt64(p.bot_n) AS bot_conversations,
    CAST(NULL AS Nullable(Int64)) AS bot_contained,
    CAST(NULL AS Nullable(Float64)) AS bot_containment_rate,
    p.handoff_q[1] AS handoff_wait_median_s,
    p.handoff_q[2] AS handoff_wait_p90_s
FROM
(
    SELECT operator_id
    FROM rollup_operators
    GROUP BY operator_id
    HAVING sum(items) > 0
) AS a
LEFT JOIN
(
    SELECT
        operator_id,
        handled, converted, messages, templated, transfers, sla_n, sla_ok, art_sum, art_n,
        csat_n, csat_ok, nps_n, nps_promoters, nps_detractors, bot_n,
        -- the maps' members (count > 0), keys sorted by sumMap
        arrayFilter((k, c) -> c > 0, frt_m.1, frt_m.2) AS fk,
        arrayFilter(c -> c > 0, frt_m.2) AS fc,
        arrayMap(level -> (
                arraySum(fc) AS n_all,
                arrayCumSum(fc) AS fcum,
                level * (n_all - 1) + 1 AS h,
                toUInt64(h) AS n,
                fk[arrayFirstIndex(c -> c >= n, fcum)] AS lo,
                fk[arrayFirstIndex(c -> c >= n + 1, fcum)] AS hi,
                if(n >= n_all, fk[length(fk)], lo + (h - n) * (hi - lo))
            ).7, [0.5, 0.9]) AS frt_qs,
        if(empty(fk), [NULL, NULL], CAST(frt_qs AS Array(Nullable(Float64)))) AS frt_q,
        if(empty(fk), NULL, arraySum(arrayMap((k, c) -> k * c, fk, fc)) / arraySum(fc)) AS frt_mean,
        arrayFilter((k, c) -> c > 0, handoff_m.1, handoff_m.2) AS hk,
        arrayFilter(c -> c > 0, handoff_m.2) AS hc,
        arrayMap(level -> (
                arraySum(hc) AS n_all,
                arrayCumSum(hc) AS hcum,
                level * (n_all - 1) + 1 AS h,
                toUInt64(h) AS n,
                hk[arrayFirstIndex(c -> c >= n, hcum)] AS lo,
                hk[arrayFirstIndex(c -> c >= n + 1, hcum)] AS hi,
                if(n >= n_all, hk[length(hk)], lo + (h - n) * (hi - lo))
            ).7, [0.5, 0.9]) AS handoff_qs,
        if(empty(hk), [NULL, NULL], CAST(handoff_qs AS Array(Nullable(Float64)))) AS handoff_q,
        greatest(0, arrayMax(arrayPushFront(arrayCumSum(conc_m.2), 0))) AS max_conc
    FROM
    (
        SELECT
            operator_id,
            sum(handled) AS handled,
            sum(converted) AS converted,
            sum(messages) AS messages,
            sum(templated) AS templated,
            sum(transfers) AS transfers,
            sum(sla_n) AS sla_n,
            sum(sla_ok) AS sla_ok,
            sum(art_sum) AS art_sum,
            sum(art_n) AS art_n,
            sum(csat_n) AS csat_n,
            sum(csat_ok) AS csat_ok,
            sum(nps_n) AS nps_n,
            sum(nps_promoters) AS nps_promoters,
            sum(nps_detractors) AS nps_detractors,
            sum(bot_n) AS bot_n,
            sumMap(frt) AS frt_m,
            sumMap(handoff) AS handoff_m,
            sumMap(conc) AS conc_m
        FROM rollup_operators
        WHERE day >= {date_from:Date32} AND day < {date_to:Date32}
        GROUP BY operator_id
    )
) AS p ON p.operator_id = a.operator_id
ORDER BY operator_id
