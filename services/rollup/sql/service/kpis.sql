-- KPIs by conversation channel read from the rollup (rollup_service, migration 0034): the same
-- parameters, columns and values as services/attribution/kpis/sql/service.sql (the reference).
-- Readings: docs/kpi-readings.md S1-S10, L1-L3, B1-B4.
--
-- Rows of rollup_service are summed per (day, channel) first (parts not merged yet hold signed
-- rows; a day's net of each map key is >= 0), then per channel over the days in
-- [date_from, date_to); the row set is every channel with an item on any day (S8).
-- Exact quantiles and means (subquery v) by value bucket (migration 0039): the period's counts
-- per (channel, metric, bucket) give n, the mean, and for each rank the reference's
-- quantilesExactInclusive needs (h = level * (n - 1) + 1, k = floor(h): ranks k and k + 1) its
-- bucket and its place among that bucket's values; only those buckets' values are read
-- (about a tenth of the period's values), netted per value, and the formula
-- a_k + (h - k) * (a_(k+1) - a_k) applied. What is read grows with days x buckets plus the
-- values of a few buckets, not with every distinct value. Missed conversations and what depends
-- on them (lost revenue's `other` base and deals) are decided here with the query's "now": open
-- conversations are kept as deadline (ms) -> count, their deals with their deadline (subquery
-- dl: the distinct deals of lost revenue as rows, migration 0040).
WITH
    toUnixTimestamp64Milli(coalesce({now:Nullable(DateTime64(3, 'UTC'))},
                                    (SELECT max(occurred_at) FROM raw_events))) AS now_ms
SELECT
    a.channel AS channel,
    toInt64(if(channel = 'call', offered, conv_n)) AS conversations,
    if(frt_n = 0, NULL, frt_q[1]) AS frt_median_s,
    if(frt_n = 0, NULL, frt_q[2]) AS frt_p90_s,
    if(frt_n = 0, NULL, frt_mean) AS frt_mean_s,
    turn_sum / nullIf(turn_n, 0) AS art_s,
    sla_ok / nullIf(sla_n, 0) AS sla_rate,
    if(channel IN ('call', '(none)'), NULL, toInt64(missed)) AS missed_conversations,
    if(channel IN ('call', '(none)'), NULL, transferred / nullIf(conv_n, 0)) AS transfer_rate,
    if(channel IN ('chat', 'messenger'), captured / nullIf(conv_n, 0), NULL) AS contact_capture_rate,
    if(channel = 'call', toInt64(offered), NULL) AS calls_offered,
    if(channel = 'call', answered / nullIf(offered, 0), NULL) AS answer_rate,
    if(channel = 'call', toInt64(missed_calls), NULL) AS missed_calls,
    if(channel = 'call', toInt64(abandoned), NULL) AS abandoned_calls,
    if(wait_n = 0, NULL, wait_mean) AS wait_mean_s,
    if(wait_n = 0, NULL, wait_q[1]) AS wait_median_s,
    talk_sum / nullIf(talk_n, 0) AS talk_mean_s,
    csat_ok / nullIf(csat_n, 0) AS csat,
    100 * (toFloat64(nps_promoters) - toFloat64(nps_detractors)) / nullIf(nps_n, 0) AS nps,
    -- missed x r x v (L1-L3): null when r or v is undefined
    if(channel = '(none)', NULL,
       toFloat64(if(channel = 'call', missed_calls + abandoned, missed))
       * (other_converted / nullIf(other_n, 0))
       * dl.deal_revenue_mean)
        AS lost_revenue,
    if(channel IN ('call', '(none)'), NULL, toInt64(bot_n)) AS bot_conversations,
    if(channel IN ('call', '(none)'), NULL, toInt64(bot_kept)) AS bot_contained,
    if(channel IN ('call', '(none)'), NULL, bot_kept / nullIf(bot_n, 0)) AS bot_containment_rate,
    if(handoff_n = 0, NULL, handoff_q[1]) AS handoff_wait_median_s,
    if(handoff_n = 0, NULL, handoff_q[2]) AS handoff_wait_p90_s
FROM
(
    SELECT
        channel,
        sumIf(d_conv_n, live) AS conv_n,
        sumIf(d_turn_sum, live) AS turn_sum,
        sumIf(d_turn_n, live) AS turn_n,
        sumIf(d_sla_n, live) AS sla_n,
        sumIf(d_sla_ok, live) AS sla_ok,
        sumIf(d_transferred, live) AS transferred,
        sumIf(d_captured, live) AS captured,
        sumIf(d_offered, live) AS offered,
        sumIf(d_answered, live) AS answered,
        sumIf(d_missed_calls, live) AS missed_calls,
        sumIf(d_abandoned, live) AS abandoned,
        sumIf(d_talk_sum, live) AS talk_sum,
        sumIf(d_talk_n, live) AS talk_n,
        -- open conversations: missed once now reaches their deadline, else an `other` contact
        sumIf(d_missed, live) + sumIf(d_pending_missed, live) AS missed,
        sumIf(d_other, live) + sumIf(d_pending_other, live) AS other_n,
        sumIf(d_other_hit, live) + sumIf(d_pending_other_hit, live) AS other_converted,
        sumIf(d_csat_n, live) AS csat_n,
        sumIf(d_csat_ok, live) AS csat_ok,
        sumIf(d_nps_n, live) AS nps_n,
        sumIf(d_nps_promoters, live) AS nps_promoters,
        sumIf(d_nps_detractors, live) AS nps_detractors,
        sumIf(d_bot_n, live) AS bot_n,
        sumIf(d_bot_kept, live) AS bot_kept
    FROM
    (
        -- per (day, channel): the net of its rows; the measures only for the period's days
        SELECT
            day,
            channel,
            day >= {date_from:Date32} AND day < {date_to:Date32} AS live,
            sum(items) AS d_items,
            sumIf(conv_n, live) AS d_conv_n,
            sumIf(turn_sum, live) AS d_turn_sum,
            sumIf(turn_n, live) AS d_turn_n,
            sumIf(sla_n, live) AS d_sla_n,
            sumIf(sla_ok, live) AS d_sla_ok,
            sumIf(missed, live) AS d_missed,
            sumIf(transferred, live) AS d_transferred,
            sumIf(captured, live) AS d_captured,
            sumIf(offered, live) AS d_offered,
            sumIf(answered, live) AS d_answered,
            sumIf(missed_calls, live) AS d_missed_calls,
            sumIf(abandoned, live) AS d_abandoned,
            sumIf(talk_sum, live) AS d_talk_sum,
            sumIf(talk_n, live) AS d_talk_n,
            sumIf(other, live) AS d_other,
            sumIf(other_hit, live) AS d_other_hit,
            sumMapIf(pending, live) AS d_pending_m,
            arraySum((k, c) -> if(k <= now_ms, c, 0), d_pending_m.1, d_pending_m.2) AS d_pending_missed,
            arraySum((k, c) -> if(k > now_ms, c, 0), d_pending_m.1, d_pending_m.2) AS d_pending_other,
            sumMapIf(pending_hit, live) AS d_pending_hit_m,
            arraySum((k, c) -> if(k > now_ms, c, 0), d_pending_hit_m.1, d_pending_hit_m.2) AS d_pending_other_hit,
            sumIf(csat_n, live) AS d_csat_n,
            sumIf(csat_ok, live) AS d_csat_ok,
            sumIf(nps_n, live) AS d_nps_n,
            sumIf(nps_promoters, live) AS d_nps_promoters,
            sumIf(nps_detractors, live) AS d_nps_detractors,
            sumIf(bot_n, live) AS d_bot_n,
            sumIf(bot_kept, live) AS d_bot_kept
        FROM rollup_service
        GROUP BY day, channel
    )
    GROUP BY channel
    -- the all-time row set (S8): a channel with an item on any day
    HAVING sum(d_items) > 0
) AS a
LEFT JOIN
(
    -- the distinct (deal, revenue) found by `other` contacts of the period (L3), from
    -- rollup_service_deals (migration 0040): a row counts when its net is > 0 and its deadline
    -- is after now (a pending conversation's deal counts while it is not missed yet)
    SELECT channel AS d_channel, toNullable(avg(revenue)) AS deal_revenue_mean
    FROM
    (
        SELECT DISTINCT channel, deal, revenue
        FROM
        (
            SELECT channel, deal, revenue
            FROM rollup_service_deals
            WHERE day >= {date_from:Date32} AND day < {date_to:Date32} AND deadline > now_ms
            GROUP BY channel, day, deadline, deal, revenue
            HAVING sum(n) > 0
        )
    )
    GROUP BY channel
) AS dl ON dl.d_channel = a.channel
LEFT JOIN
(
    SELECT
        v_channel,
        anyIf(q, metric = 'frt') AS frt_q,
        sumIf(n, metric = 'frt') AS frt_n,
        anyIf(mean, metric = 'frt') AS frt_mean,
        anyIf(q, metric = 'wait') AS wait_q,
        sumIf(n, metric = 'wait') AS wait_n,
        anyIf(mean, metric = 'wait') AS wait_mean,
        anyIf(q, metric = 'handoff') AS handoff_q,
        sumIf(n, metric = 'handoff') AS handoff_n
    FROM
    (
        -- the exact quantiles by value bucket (migration 0039): the period's count per bucket gives
        -- n, the mean and, for each rank wanted (k of each level, then k + 1), its bucket and its
        -- place among that bucket's values; only those buckets' values are then read
        WITH
            ranks AS
            (
                SELECT grp, metric, n, total,
                       arrayMap(level -> level * toFloat64(n - 1) + 1, [0.5, 0.9]) AS h,
                       arrayMap(x -> toInt64(x), h) AS k,
                       arrayConcat(k, arrayMap(x -> least(x + 1, n), k)) AS wanted,
                       arrayMap(r -> arrayFirstIndex(c -> c >= r, cum), wanted) AS pos,
                       arrayMap(p -> hs[p].1, pos) AS buckets,
                       arrayMap((r, p) -> r - if(p = 1, 0, cum[p - 1]), wanted, pos) AS places
                FROM
                (
                    SELECT grp, metric, arraySort(groupArray((bucket, bn))) AS hs, arrayCumSum(arrayMap(x -> x.2, hs)) AS cum,
                           cum[-1] AS n, sum(bt) AS total
                    FROM
                    (
                        SELECT grp, metric, bucket, sum(n) AS bn, sum(total) AS bt
                        FROM rollup_quantile_buckets
                        WHERE grouping = 'service' AND day >= {date_from:Date32} AND day < {date_to:Date32}
                        GROUP BY grp, metric, bucket
                        HAVING bn > 0
                    )
                    GROUP BY grp, metric
                )
            ),
            vals AS
            (
                SELECT grp, metric, bucket, arraySort(groupArray((value, vn))) AS vs, arrayCumSum(arrayMap(x -> x.2, vs)) AS vcum
                FROM
                (
                    SELECT grp, metric, bucket, value, sum(n) AS vn
                    FROM rollup_quantiles
                    WHERE grouping = 'service' AND day >= {date_from:Date32} AND day < {date_to:Date32}
                      AND (grp, metric, bucket) IN (SELECT grp, metric, arrayJoin(buckets) FROM ranks)
                    GROUP BY grp, metric, bucket, value
                    HAVING vn > 0
                )
                GROUP BY grp, metric, bucket
            )
        SELECT
            grp AS v_channel, metric, any(r.n) AS rn, any(r.total) / rn AS mean, any(r.h) AS rh, any(r.k) AS rk,
            arrayMap(x -> x.2, arraySort(groupArray((i, v.vs[arrayFirstIndex(c -> c >= place, v.vcum)].1)))) AS a,
            -- quantilesExactInclusive's formula: a_k + (h - k) * (a_(k+1) - a_k)
            arrayMap(j -> a[j] + (rh[j] - toFloat64(rk[j])) * (a[j + 2] - a[j]), [1, 2]) AS q,
            rn AS n
        FROM
        (
            -- each rank wanted, with its bucket and its place among the bucket's values
            SELECT grp, metric, n, total, h, k, i, buckets[i] AS bucket, places[i] AS place
            FROM ranks
            ARRAY JOIN arrayEnumerate(wanted) AS i
        ) AS r
        INNER JOIN vals AS v ON v.grp = r.grp AND v.metric = r.metric AND v.bucket = r.bucket
        GROUP BY grp, metric
    )
    GROUP BY v_channel
) AS v ON v.v_channel = a.channel
ORDER BY channel
