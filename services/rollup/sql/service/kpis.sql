-- KPIs by conversation channel read from the rollup (rollup_service, migration 0034): the same
-- parameters, columns and values as services/attribution/kpis/sql/service.sql (the reference).
-- Readings: docs/kpi-readings.md S1-S10, L1-L3, B1-B4.
--
-- Per channel: sums over the days in [date_from, date_to); the row set is every channel with an
-- item all-time (S8). Exact quantiles from value -> count maps (quantileExactInclusive's formula:
-- h = level * (n - 1) + 1, x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h])). Missed
-- conversations and what depends on them (lost revenue's `other` base and deals) are decided
-- here with the query's "now": pending conversations are kept as deadline (ms) -> count.
WITH
    toUnixTimestamp64Milli(coalesce({now:Nullable(DateTime64(3, 'UTC'))},
                                    (SELECT max(occurred_at) FROM raw_events))) AS now_ms,
    -- the level-quantile of the values whose sorted keys are ks and cumulative counts cum (n values)
    (lv, ks, cum, n) -> if(n = 0, NULL,
        if(toUInt64(lv * (n - 1) + 1) >= n, ks[-1],
           ks[arrayFirstIndex(c -> c >= toUInt64(lv * (n - 1) + 1), cum)]
           + ((lv * (n - 1) + 1) - toUInt64(lv * (n - 1) + 1))
             * (ks[arrayFirstIndex(c -> c > toUInt64(lv * (n - 1) + 1), cum)]
                - ks[arrayFirstIndex(c -> c >= toUInt64(lv * (n - 1) + 1), cum)]))) AS quantile_at,
    -- the (keys, counts) of a merged map without keys that were taken out
    m -> arrayFilter((k, c) -> c > 0, m.1, m.2) AS live_keys,
    m -> arrayFilter(c -> c > 0, m.2) AS live_counts
SELECT
    channel,
    toInt64(if(channel = 'call', offered, conv_n)) AS conversations,
    quantile_at(0.5, frt_k, arrayCumSum(frt_c), frt_n) AS frt_median_s,
    quantile_at(0.9, frt_k, arrayCumSum(frt_c), frt_n) AS frt_p90_s,
    if(frt_n = 0, NULL, arraySum(arrayMap((k, c) -> k * c, frt_k, frt_c)) / frt_n) AS frt_mean_s,
    turn_sum / nullIf(turn_n, 0) AS art_s,
    sla_ok / nullIf(sla_n, 0) AS sla_rate,
    if(channel IN ('call', '(none)'), NULL, toInt64(missed)) AS missed_conversations,
    if(channel IN ('call', '(none)'), NULL, transferred / nullIf(conv_n, 0)) AS transfer_rate,
    if(channel IN ('chat', 'messenger'), captured / nullIf(conv_n, 0), NULL) AS contact_capture_rate,
    if(channel = 'call', toInt64(offered), NULL) AS calls_offered,
    if(channel = 'call', answered / nullIf(offered, 0), NULL) AS answer_rate,
    if(channel = 'call', toInt64(missed_calls), NULL) AS missed_calls,
    if(channel = 'call', toInt64(abandoned), NULL) AS abandoned_calls,
    if(wait_n = 0, NULL, arraySum(arrayMap((k, c) -> k * c, wait_k, wait_c)) / wait_n) AS wait_mean_s,
    quantile_at(0.5, wait_k, arrayCumSum(wait_c), wait_n) AS wait_median_s,
    talk_sum / nullIf(talk_n, 0) AS talk_mean_s,
    csat_ok / nullIf(csat_n, 0) AS csat,
    100 * (toFloat64(nps_promoters) - toFloat64(nps_detractors)) / nullIf(nps_n, 0) AS nps,
    -- missed x r x v (L1-L3): null when r or v is undefined
    if(channel = '(none)', NULL,
       toFloat64(if(channel = 'call', missed_calls + abandoned, missed))
       * (other_converted / nullIf(other_n, 0))
       * if(empty(other_deals), NULL, arrayAvg(arrayMap(d -> toFloat64(splitByChar('\t', d)[-1]), other_deals))))
        AS lost_revenue,
    if(channel IN ('call', '(none)'), NULL, toInt64(bot_n)) AS bot_conversations,
    if(channel IN ('call', '(none)'), NULL, toInt64(bot_kept)) AS bot_contained,
    if(channel IN ('call', '(none)'), NULL, bot_kept / nullIf(bot_n, 0)) AS bot_containment_rate,
    quantile_at(0.5, handoff_k, arrayCumSum(handoff_c), handoff_n) AS handoff_wait_median_s,
    quantile_at(0.9, handoff_k, arrayCumSum(handoff_c), handoff_n) AS handoff_wait_p90_s
FROM
(
    SELECT
        channel,
        conv_n, turn_sum, turn_n, sla_n, sla_ok, transferred, captured, offered, answered, missed_calls,
        abandoned, talk_sum, talk_n, csat_n, csat_ok, nps_n, nps_promoters, nps_detractors, bot_n, bot_kept,
        live_keys(frt_m) AS frt_k, live_counts(frt_m) AS frt_c, arraySum(frt_c) AS frt_n,
        live_keys(wait_m) AS wait_k, live_counts(wait_m) AS wait_c, arraySum(wait_c) AS wait_n,
        live_keys(handoff_m) AS handoff_k, live_counts(handoff_m) AS handoff_c, arraySum(handoff_c) AS handoff_n,
        -- pending conversations: missed once now reaches their deadline, else an `other` contact
        missed_fixed + arraySum((k, c) -> if(k <= now_ms, c, 0), pending_m.1, pending_m.2) AS missed,
        other_fixed + arraySum((k, c) -> if(k > now_ms, c, 0), pending_m.1, pending_m.2) AS other_n,
        other_hit_fixed + arraySum((k, c) -> if(k > now_ms, c, 0), pending_hit_m.1, pending_hit_m.2)
            AS other_converted,
        -- the distinct deals (`deal_id \t revenue`) found by `other` contacts (L3)
        arrayDistinct(arrayConcat(
            live_keys(deals_m),
            arrayMap(d -> substring(d, position(d, '\t') + 1),
                     arrayFilter((d, c) -> c > 0 AND toInt64(substring(d, 1, position(d, '\t') - 1)) > now_ms,
                                 pending_deals_m.1, pending_deals_m.2)))) AS other_deals
    FROM
    (
        SELECT
            channel,
            sumIf(conv_n, live) AS conv_n,
            sumMapIf(frt, live) AS frt_m,
            sumIf(turn_sum, live) AS turn_sum,
            sumIf(turn_n, live) AS turn_n,
            sumIf(sla_n, live) AS sla_n,
            sumIf(sla_ok, live) AS sla_ok,
            sumIf(missed, live) AS missed_fixed,
            sumIf(transferred, live) AS transferred,
            sumIf(captured, live) AS captured,
            sumIf(offered, live) AS offered,
            sumIf(answered, live) AS answered,
            sumIf(missed_calls, live) AS missed_calls,
            sumIf(abandoned, live) AS abandoned,
            sumMapIf(wait, live) AS wait_m,
            sumIf(talk_sum, live) AS talk_sum,
            sumIf(talk_n, live) AS talk_n,
            sumIf(other, live) AS other_fixed,
            sumIf(other_hit, live) AS other_hit_fixed,
            sumMapIf(pending, live) AS pending_m,
            sumMapIf(pending_hit, live) AS pending_hit_m,
            sumMapIf(deals, live) AS deals_m,
            sumMapIf(pending_deals, live) AS pending_deals_m,
            sumIf(csat_n, live) AS csat_n,
            sumIf(csat_ok, live) AS csat_ok,
            sumIf(nps_n, live) AS nps_n,
            sumIf(nps_promoters, live) AS nps_promoters,
            sumIf(nps_detractors, live) AS nps_detractors,
            sumIf(bot_n, live) AS bot_n,
            sumIf(bot_kept, live) AS bot_kept,
            sumMapIf(handoff, live) AS handoff_m
        FROM
        (
            SELECT *, day >= {date_from:Date32} AND day < {date_to:Date32} AS live
            FROM rollup_service
        )
        GROUP BY channel
        -- the all-time row set (S8): a channel with an item on any day
        HAVING sum(items) > 0
    )
)
ORDER BY channel
