-- Staffing by hour of week and conversation channel, Erlang C: contract v1.1 section 3.
-- Shared by `leadflow kpis staffing`, the HTML report and the "Contact centre" dashboard
-- (services/attribution/kpis/staffing.py runs it). Readings: docs/kpi-readings.md K1-K8.
--
-- Parameters (server-side binding):
--   date_from, date_to   Date32          half-open period [date_from, date_to) of UTC dates; an open
--                                        end is the day of the first / after the last contact (K1)
--   tz                   String          time zone of the hour of week (business hours' zone)
--   sla_channels         Array(String)   channels with a first-response target ...
--   sla_seconds          Array(Float64)  ... and their targets in seconds (the Erlang C target)
--   call_target_s        Float64         answer target of calls (20 s)
--   service_level        Float64         share of contacts to answer within the target (0.8)
--   channels             Array(String)   channels to include; [] = all
--
-- Shape: inbound contacts (visitor-initiated conversations of a non-`call` channel, inbound
-- calls) give the contacts and their handle times by hour of week; every operator's handling
-- intervals (as max_concurrency, O5) give their mean concurrency per channel and the
-- operators seen in each clock hour. Rows: every channel of an inbound contact (all time)
-- x the 168 hours of the week (weekday 0 = Monday).
WITH
    -- inbound contacts, all time: channel, start, first operator, time from the first operator
    -- message to the close (conversations), or answered duration (calls) (K3)
    inbound AS
    (
        SELECT toString(channel) AS ch, assumeNotNull(started_at) AS at, first_operator AS op,
               if(first_operator_at IS NULL OR closed_at IS NULL, NULL,
                  greatest(0, toUnixTimestamp64Milli(assumeNotNull(closed_at))
                              - toUnixTimestamp64Milli(assumeNotNull(first_operator_at))) / 1000) AS raw_s
        FROM conversations
        WHERE channel != 'call' AND initiated_by = 'visitor'
        UNION ALL
        SELECT 'call', started_at, '',
               if(outcome = 'answered' AND answered_at IS NOT NULL,
                  (toUnixTimestamp64Milli(ended_at) - toUnixTimestamp64Milli(assumeNotNull(answered_at))) / 1000, NULL)
        FROM call_winners
        WHERE direction = 'inbound'
    ),
    -- the period, bounded by the contacts when open (K1)
    (SELECT (toDate32(min(at)), toDate32(max(at)) + 1) FROM inbound) AS span,
    greatest({date_from:Date32}, span.1) AS d0,
    least({date_to:Date32}, span.2) AS d1,
    toDateTime64(d0, 3, 'UTC') AS p0,
    toDateTime64(d1, 3, 'UTC') AS p1,
    -- every operator's handling intervals of the period, as for max_concurrency (O5)
    handling AS
    (
        SELECT toString(channel) AS ch, ot.1 AS op, greatest(start, ot.4) AS b, greatest(conv_end, start, ot.4) AS e
        FROM
        (
            SELECT channel, assumeNotNull(started_at) AS start, operators,
                   ifNull(closed_at, greatest(ifNull(last_event_at, start), start)) AS conv_end
            FROM conversations
            WHERE channel != 'call' AND notEmpty(operators) AND started_at >= p0 AND started_at < p1
        )
        ARRAY JOIN operators AS ot
        UNION ALL
        SELECT 'call', operator_id, ifNull(answered_at, started_at), ended_at
        FROM call_winners
        WHERE direction = 'inbound' AND outcome = 'answered' AND operator_id != ''
          AND started_at >= p0 AND started_at < p1
    )
SELECT
    channel,
    weekday,
    hour,
    contacts_per_hour,
    aht_s,
    target_s,
    {service_level:Float64} AS service_level,
    agents_needed,
    agents_observed,
    agents_needed - agents_observed AS gap
FROM
(
    SELECT
        s.channel AS channel,
        s.weekday AS weekday,
        s.hour AS hour,
        ifNull(c.contacts, 0) / nullIf(hw.n_hours, 0) AS contacts_per_hour,
        -- K3: the slot's mean handle time, else the channel's over the period
        if(ifNull(c.contacts, 0) = 0, NULL,
           coalesce(c.handle_sum / nullIf(c.handle_n, 0), c.ch_handle_sum / nullIf(c.ch_handle_n, 0))) AS aht_s,
        if(s.channel = 'call', {call_target_s:Float64},
           if(indexOf({sla_channels:Array(String)}, s.channel) = 0, NULL,
              arrayElement({sla_seconds:Array(Float64)}, indexOf({sla_channels:Array(String)}, s.channel)))) AS target_s,
        ifNull(sn.seen, 0) / nullIf(hw.n_hours, 0) AS agents_observed,
        -- Erlang C (K4): the smallest n > A with 1 - C(n, A) e^{-(n - A) T / aht} >= service level;
        -- C(n, A) from Poisson terms p_k = A^k e^-A / k!: C = X / (sum_{k<n} p_k + X), X = p_n n / (n - A)
        contacts_per_hour * aht_s / 3600 AS erlangs,
        arrayMap(k -> exp(k * log(greatest(ifNull(erlangs, 0), 1e-300)) - ifNull(erlangs, 0) - lgamma(k + 1)),
                 range(0, toUInt32(floor(ifNull(erlangs, 0))) + 62 + toUInt32(ceil(8 * sqrt(ifNull(erlangs, 0))))))
            AS terms,
        arrayCumSum(terms) AS cum,
        if(ifNull(contacts_per_hour, 0) = 0 OR aht_s IS NULL OR target_s IS NULL, NULL,
           if(erlangs = 0, 1,
              nullIf(arrayFirst(
                  n -> 1 - (terms[n + 1] * n / (n - erlangs)) / (cum[n] + terms[n + 1] * n / (n - erlangs))
                           * exp(-(n - erlangs) * target_s / aht_s) >= {service_level:Float64},
                  range(toUInt32(floor(erlangs)) + 1, length(terms))), 0))) AS agents_needed
    FROM
    (
        -- every channel of an inbound contact (all time) x the 168 hours of the week
        SELECT ch AS channel, toUInt8(intDiv(n, 24)) AS weekday, toUInt8(n % 24) AS hour
        FROM (SELECT DISTINCT ch FROM inbound) AS chs
        CROSS JOIN (SELECT toUInt32(number) AS n FROM numbers(168)) AS w
        WHERE empty({channels:Array(String)}) OR has({channels:Array(String)}, ch)
    ) AS s
    LEFT JOIN
    (
        -- clock hours of the period by hour of week (K2)
        SELECT toUInt8(toDayOfWeek(h, 0, {tz:String}) - 1) AS weekday, toUInt8(toHour(h, {tz:String})) AS hour,
               count() AS n_hours
        FROM (SELECT addHours(p0, arrayJoin(range(toUInt32(greatest(0, dateDiff('hour', p0, p1)))))) AS h)
        GROUP BY weekday, hour
    ) AS hw ON hw.weekday = s.weekday AND hw.hour = s.hour
    LEFT JOIN
    (
        -- inbound contacts of the period by hour of week and their handle times: a conversation's
        -- is divided by its first operator's mean concurrency on the channel (K3)
        SELECT ch, weekday, hour, contacts, handle_sum, handle_n,
               sum(handle_sum) OVER (PARTITION BY ch) AS ch_handle_sum,
               sum(handle_n) OVER (PARTITION BY ch) AS ch_handle_n
        FROM
        (
            SELECT x.ch AS ch, toUInt8(toDayOfWeek(x.at, 0, {tz:String}) - 1) AS weekday,
                   toUInt8(toHour(x.at, {tz:String})) AS hour, count() AS contacts,
                   sum(handle_s) AS handle_sum, count(handle_s) AS handle_n
            FROM
            (
                SELECT x.ch AS ch, x.at AS at, if(x.ch = 'call', x.raw_s, x.raw_s / k.conc) AS handle_s
                FROM (SELECT * FROM inbound WHERE at >= p0 AND at < p1) AS x
                LEFT JOIN
                (
                    -- mean concurrency: busy time / time with at least one interval open
                    SELECT ch, op,
                           arraySort(arrayConcat(groupArray((toUnixTimestamp64Milli(b), 1)),
                                                 groupArray((toUnixTimestamp64Milli(e), -1)))) AS ev,
                           arrayCumSum(arrayMap(v -> v.2, ev)) AS open_n,
                           arraySum(arrayMap(i -> if(open_n[i] > 0, ev[i + 1].1 - ev[i].1, 0),
                                             range(1, toUInt32(length(ev))))) AS union_ms,
                           sum(toUnixTimestamp64Milli(e) - toUnixTimestamp64Milli(b)) AS busy_ms,
                           if(union_ms = 0, 1., busy_ms / union_ms) AS conc
                    FROM handling
                    WHERE ch != 'call'
                    GROUP BY ch, op
                ) AS k ON k.ch = x.ch AND k.op = x.op
            ) AS x
            GROUP BY ch, weekday, hour
        )
    ) AS c ON c.ch = s.channel AND c.weekday = s.weekday AND c.hour = s.hour
    LEFT JOIN
    (
        -- operators seen in each clock hour (an interval touches the hour), by hour of week (K5)
        SELECT ch, toUInt8(toDayOfWeek(hs, 0, {tz:String}) - 1) AS weekday, toUInt8(toHour(hs, {tz:String})) AS hour,
               sum(ops) AS seen
        FROM
        (
            SELECT ch, toDateTime64(toInt64(hr) * 3600, 3, 'UTC') AS hs, uniqExact(op) AS ops
            FROM
            (
                SELECT ch, op,
                       arrayJoin(range(toUInt32(intDiv(toUnixTimestamp64Milli(b), 3600000)),
                                       toUInt32(intDiv(greatest(toUnixTimestamp64Milli(b), toUnixTimestamp64Milli(e) - 1),
                                                       3600000)) + 1)) AS hr
                FROM handling
            )
            WHERE hs >= p0 AND hs < p1
            GROUP BY ch, hr
        )
        GROUP BY ch, weekday, hour
    ) AS sn ON sn.ch = s.channel AND sn.weekday = s.weekday AND sn.hour = s.hour
)
ORDER BY channel, weekday, hour
