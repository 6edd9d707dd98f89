-- 0034: the rollup of the `service` grouping (issue 18, services/rollup/): the service KPIs'
-- partial results per (start or response day, channel), so the service query reads days x
-- channels instead of every contact (reference: services/attribution/kpis/sql/service.sql).
--
-- rollup_items_service: a signed log of item rows (services/rollup/refresh.py), one per contact
-- (a conversation of a non-`call` channel, an inbound call: sql/service/conversation.sql, call.sql)
-- and per survey response (survey.sql), with the values it adds when its day is in the period:
--   day            the contact's start date / the response's date (the reference's `live`)
--   frt, wait, handoff   the values of the exact quantiles (NULL = none)
--   missed         a conversation missed whatever "now" is (closed, no reply before the deadline)
--   deadline       a conversation missed once "now" reaches this deadline (ms; not closed, no reply
--                  before it); NULL = its missed flag does not depend on now
--   other          a contact that is neither missed nor pending (conversation) / not missed or
--                  abandoned (call): the lost-revenue base (L2)
--   hit            a winning deal of its person within the conversion window after its start
--   deals          those deals, `hex(sipHash128(deal_id)) \t revenue` (the distinct deals of lost
--                  revenue, L3; a hash: no deal id in clear in the rollup)
CREATE TABLE IF NOT EXISTS rollup_items_service
(
    entity          String,
    sign            Int8,
    day             Date32,
    channel         String,
    conv_n          UInt8,
    frt             Nullable(Float64),
    turn_sum        Float64,
    turn_n          UInt32,
    sla_n           UInt8,
    sla_ok          UInt8,
    missed          UInt8,
    deadline        Nullable(Int64),
    transferred     UInt8,
    captured        UInt8,
    offered         UInt8,
    answered        UInt8,
    missed_calls    UInt8,
    abandoned       UInt8,
    wait            Nullable(Float64),
    talk            Nullable(Float64),
    other           UInt8,
    hit             UInt8,
    deals           Array(String),
    csat_n          UInt8,
    csat_ok         UInt8,
    nps_n           UInt8,
    nps_promoters   UInt8,
    nps_detractors  UInt8,
    bot_n           UInt8,
    bot_kept        UInt8,
    handoff         Nullable(Float64)
)
ENGINE = MergeTree
ORDER BY entity;

-- Per (day, channel): signed sums, value -> count maps for the exact quantiles, deadline -> count
-- maps for what depends on "now", deal -> count maps for the distinct deals. kpis.sql sums rows
-- (never relies on merges). `items`: the presence count (all-time row set, S8).
CREATE TABLE IF NOT EXISTS rollup_service
(
    day             Date32,
    channel         String,
    items           SimpleAggregateFunction(sum, Int64),
    conv_n          SimpleAggregateFunction(sum, Int64),
    frt             SimpleAggregateFunction(sumMap, Tuple(Array(Float64), Array(Int64))),
    turn_sum        SimpleAggregateFunction(sum, Float64),
    turn_n          SimpleAggregateFunction(sum, Int64),
    sla_n           SimpleAggregateFunction(sum, Int64),
    sla_ok          SimpleAggregateFunction(sum, Int64),
    missed          SimpleAggregateFunction(sum, Int64),
    transferred     SimpleAggregateFunction(sum, Int64),
    captured        SimpleAggregateFunction(sum, Int64),
    offered         SimpleAggregateFunction(sum, Int64),
    answered        SimpleAggregateFunction(sum, Int64),
    missed_calls    SimpleAggregateFunction(sum, Int64),
    abandoned       SimpleAggregateFunction(sum, Int64),
    wait            SimpleAggregateFunction(sumMap, Tuple(Array(Float64), Array(Int64))),
    talk_sum        SimpleAggregateFunction(sum, Float64),
    talk_n          SimpleAggregateFunction(sum, Int64),
    other           SimpleAggregateFunction(sum, Int64),
    other_hit       SimpleAggregateFunction(sum, Int64),
    -- pending conversations: deadline (ms) -> count, and those of them with a hit
    pending         SimpleAggregateFunction(sumMap, Tuple(Array(Int64), Array(Int64))),
    pending_hit     SimpleAggregateFunction(sumMap, Tuple(Array(Int64), Array(Int64))),
    -- deals found by `other` contacts, and by pending ones (`deadline \t deal hash \t revenue`)
    deals           SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(Int64))),
    pending_deals   SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(Int64))),
    csat_n          SimpleAggregateFunction(sum, Int64),
    csat_ok         SimpleAggregateFunction(sum, Int64),
    nps_n           SimpleAggregateFunction(sum, Int64),
    nps_promoters   SimpleAggregateFunction(sum, Int64),
    nps_detractors  SimpleAggregateFunction(sum, Int64),
    bot_n           SimpleAggregateFunction(sum, Int64),
    bot_kept        SimpleAggregateFunction(sum, Int64),
    handoff         SimpleAggregateFunction(sumMap, Tuple(Array(Float64), Array(Int64)))
)
ENGINE = AggregatingMergeTree
ORDER BY (day, channel);

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_service_mv TO rollup_service AS
SELECT
    it.day AS day,
    it.channel AS channel,
    sum(toInt64(it.sign)) AS items,
    sum(it.sign * it.conv_n) AS conv_n,
    sumMap(if(it.frt IS NULL, [], [assumeNotNull(it.frt)]), if(it.frt IS NULL, [], [toInt64(it.sign)])) AS frt,
    sum(it.sign * it.turn_sum) AS turn_sum,
    sum(it.sign * it.turn_n) AS turn_n,
    sum(it.sign * it.sla_n) AS sla_n,
    sum(it.sign * it.sla_ok) AS sla_ok,
    sum(it.sign * it.missed) AS missed,
    sum(it.sign * it.transferred) AS transferred,
    sum(it.sign * it.captured) AS captured,
    sum(it.sign * it.offered) AS offered,
    sum(it.sign * it.answered) AS answered,
    sum(it.sign * it.missed_calls) AS missed_calls,
    sum(it.sign * it.abandoned) AS abandoned,
    sumMap(if(it.wait IS NULL, [], [assumeNotNull(it.wait)]), if(it.wait IS NULL, [], [toInt64(it.sign)])) AS wait,
    sum(it.sign * ifNull(it.talk, 0.)) AS talk_sum,
    sum(it.sign * (it.talk IS NOT NULL)) AS talk_n,
    sum(it.sign * it.other) AS other,
    sum(it.sign * (it.other AND it.hit)) AS other_hit,
    sumMap(if(it.deadline IS NULL, [], [assumeNotNull(it.deadline)]), if(it.deadline IS NULL, [], [toInt64(it.sign)])) AS pending,
    sumMap(if(it.deadline IS NULL OR it.hit = 0, [], [assumeNotNull(it.deadline)]),
           if(it.deadline IS NULL OR it.hit = 0, [], [toInt64(it.sign)])) AS pending_hit,
    sumMap(if(it.other = 1, it.deals, []), arrayMap(d -> toInt64(it.sign), if(it.other = 1, it.deals, []))) AS deals,
    sumMap(if(it.deadline IS NULL, [], arrayMap(d -> concat(toString(assumeNotNull(it.deadline)), '\t', d), it.deals)),
           arrayMap(d -> toInt64(it.sign), if(it.deadline IS NULL, [], it.deals))) AS pending_deals,
    sum(it.sign * it.csat_n) AS csat_n,
    sum(it.sign * it.csat_ok) AS csat_ok,
    sum(it.sign * it.nps_n) AS nps_n,
    sum(it.sign * it.nps_promoters) AS nps_promoters,
    sum(it.sign * it.nps_detractors) AS nps_detractors,
    sum(it.sign * it.bot_n) AS bot_n,
    sum(it.sign * it.bot_kept) AS bot_kept,
    sumMap(if(it.handoff IS NULL, [], [assumeNotNull(it.handoff)]), if(it.handoff IS NULL, [], [toInt64(it.sign)])) AS handoff
FROM rollup_items_service AS it
GROUP BY it.day, it.channel;
